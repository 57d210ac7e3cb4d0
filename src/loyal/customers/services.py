"""Every write to customer records that has a business rule goes through a function here."""

from __future__ import annotations

import datetime as dt

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from loyal.accounts.models import AuditEntry, User
from loyal.customers.models import Consent, Customer, Interaction, Stage, StageChange
from loyal.customers.search import search_document


class RecordError(ValueError):
    """A change to the records was refused; the message is translated and shown as is."""


@transaction.atomic
def change_stage(
    customer: Customer,
    to_stage: str,
    *,
    reason: str = "",
    origin: str = StageChange.Origin.MANUAL,
    by: User | None = None,
    at: dt.datetime | None = None,
) -> StageChange | None:
    """Move ``customer`` to ``to_stage`` and keep the step in the stage history.

    Returns the new history entry, or None when the customer is already in that stage.
    """
    if to_stage not in Stage.values:
        raise RecordError(
            _("Unknown stage {stage!r}: use one of {choices}.").format(
                stage=to_stage, choices=", ".join(Stage.values)
            )
        )
    if customer.stage == to_stage and customer.stage_changed_at is not None:
        return None
    at = at or timezone.now()
    change = StageChange.objects.create(
        customer=customer,
        changed_at=at,
        from_stage="" if customer.stage_changed_at is None else customer.stage,
        to_stage=to_stage,
        reason=reason,
        origin=origin,
        changed_by=by,
    )
    customer.stage = to_stage
    customer.stage_changed_at = at
    customer.save(update_fields=["stage", "stage_changed_at", "updated_at"])
    AuditEntry.objects.create(
        actor=by,
        origin=origin,
        action="customer.change_stage",
        object_type="customer",
        object_id=str(customer.pk),
        details={"from": change.from_stage, "to": to_stage, "reason": reason},
    )
    return change


def record_interaction(
    customer: Customer,
    *,
    kind: str,
    occurred_at: dt.datetime,
    body: str = "",
    subject: str = "",
    direction: str = "",
    staff: User | None = None,
    outcome: str = "",
    external_id: str | None = None,
    source: str = "manual",
) -> Interaction:
    """Keep a call, email, chat, visit, note or complaint on the customer's record."""
    if kind not in Interaction.Kind.values:
        raise RecordError(
            _("Unknown interaction kind {kind!r}: use one of {choices}.").format(
                kind=kind, choices=", ".join(Interaction.Kind.values)
            )
        )
    interaction = Interaction(
        source=source,
        customer=customer,
        kind=kind,
        occurred_at=occurred_at,
        body=body,
        subject=subject,
        direction=direction,
        staff=staff,
        outcome=outcome,
        search_document=search_document(subject, body),
    )
    interaction.external_id = external_id or ""
    interaction.save()
    if not external_id:
        # Interactions entered by hand have no id elsewhere: their own primary key is the id.
        Interaction.objects.filter(pk=interaction.pk).update(external_id=str(interaction.pk))
        interaction.external_id = str(interaction.pk)
    return interaction


def record_consent(
    customer: Customer,
    channel: str,
    *,
    opted_in: bool,
    source: str = "",
    at: dt.datetime | None = None,
) -> Consent:
    """Keep an opt-in or opt-out of ``channel``; the latest one per channel is what counts."""
    if channel not in Consent.Channel.values:
        raise RecordError(
            _("Unknown channel {channel!r}: use one of {choices}.").format(
                channel=channel, choices=", ".join(Consent.Channel.values)
            )
        )
    return Consent.objects.create(
        customer=customer,
        channel=channel,
        opted_in=opted_in,
        source=source,
        recorded_at=at or timezone.now(),
    )
