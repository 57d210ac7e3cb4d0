"""Reads of customer records."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from loyal.customers.models import Consent, Customer, StageChange


@dataclass(frozen=True)
class JourneyStep:
    changed_at: dt.datetime
    from_stage: str
    to_stage: str
    reason: str
    origin: str
    changed_by: str


def stage_history(customer: Customer) -> list[JourneyStep]:
    """The customer's journey through the lifecycle stages, oldest first."""
    changes = (
        StageChange.objects.filter(customer=customer)
        .select_related("changed_by")
        .order_by("changed_at", "id")
    )
    return [
        JourneyStep(
            changed_at=change.changed_at,
            from_stage=change.from_stage,
            to_stage=change.to_stage,
            reason=change.reason,
            origin=change.origin,
            changed_by=change.changed_by.username if change.changed_by else "",
        )
        for change in changes
    ]


def stage_on(customer: Customer, when: dt.datetime) -> str | None:
    """Replay the history: the stage the customer was in at ``when`` (None before the first)."""
    stage = None
    for step in stage_history(customer):
        if step.changed_at > when:
            break
        stage = step.to_stage
    return stage


def current_consents(customer: Customer) -> dict[str, bool]:
    """The customer's latest choice per channel (channels never asked are absent)."""
    latest: dict[str, bool] = {}
    for consent in Consent.objects.filter(customer=customer).order_by("recorded_at", "id"):
        latest[consent.channel] = consent.opted_in
    return latest
