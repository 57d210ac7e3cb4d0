"""Customers: one record from first contact to leaving and coming back (R1, R2).

A customer keeps ONE record through every lifecycle stage; each stage change is kept in
``StageChange`` so the journey can be replayed. Interactions are kept without expiry.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from loyal.imports import kinds

DEFAULT_SOURCE = "default"


class Stage(models.TextChoices):
    PROSPECT = "prospect", _("Prospect")
    POTENTIAL_INTENT = "potential_intent", _("Potential intent")
    INTENT = "intent", _("Intent")
    CUSTOMER = "customer", _("Customer")
    AT_RISK = "at_risk", _("At risk")
    CHURNED = "churned", _("Churned")
    WON_BACK = "won_back", _("Won back")


assert tuple(Stage.values) == kinds.STAGES, "Stage choices and import kinds disagree"


class Tag(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)

    class Meta:
        verbose_name = _("tag")
        verbose_name_plural = _("tags")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Customer(models.Model):
    """A person or company the business sells to, from prospect to won back."""

    # The id in the system the record came from; unique per source (one shop, one CRM...).
    source = models.CharField(_("source"), max_length=50, default=DEFAULT_SOURCE)
    external_id = models.CharField(_("external id"), max_length=100)
    name = models.CharField(_("name"), max_length=200, blank=True)
    stage = models.CharField(
        _("stage"), max_length=20, choices=Stage.choices, default=Stage.PROSPECT
    )
    stage_changed_at = models.DateTimeField(_("stage changed at"), null=True, blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_customers",
        verbose_name=_("owner"),
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="customers", verbose_name=_("tags"))
    acquisition_source = models.CharField(_("acquisition source"), max_length=100, blank=True)
    acquisition_channel = models.CharField(_("acquisition channel"), max_length=100, blank=True)
    joined_at = models.DateTimeField(_("joined at"), null=True, blank=True)
    birthday = models.DateField(_("birthday"), null=True, blank=True)
    city = models.CharField(_("city"), max_length=100, blank=True)
    attributes = models.JSONField(_("attributes"), default=dict, blank=True)
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated at"), auto_now=True)

    class Meta:
        verbose_name = _("customer")
        verbose_name_plural = _("customers")
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"], name="customer_unique_external_id"
            )
        ]
        indexes = [models.Index(fields=["stage"]), models.Index(fields=["owner", "stage"])]

    def __str__(self) -> str:
        return self.name or self.external_id


class ContactPoint(models.Model):
    """A way to reach a customer: an email address, a phone number, a WeChat id."""

    class Kind(models.TextChoices):
        EMAIL = "email", _("Email")
        PHONE = "phone", _("Phone")
        WECHAT = "wechat", _("WeChat")

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="contact_points", db_index=False
    )  # indexed by the (customer, kind, value) unique constraint
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    value = models.CharField(_("value"), max_length=254)
    is_primary = models.BooleanField(_("primary"), default=True)

    class Meta:
        verbose_name = _("contact point")
        verbose_name_plural = _("contact points")
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "kind", "value"], name="contact_point_unique"
            )
        ]
        indexes = [models.Index(fields=["kind", "value"])]

    def __str__(self) -> str:
        return "{}: {}".format(self.kind, self.value)


class StageChange(models.Model):
    """One step of a customer's journey: from which stage to which, when, why and by whom."""

    class Origin(models.TextChoices):
        MANUAL = "manual", _("Manual")
        IMPORT = "import", _("Import")
        ANALYSIS = "analysis", _("Analysis")

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="stage_changes", db_index=False
    )  # indexed by (customer, changed_at)
    changed_at = models.DateTimeField(_("changed at"))
    from_stage = models.CharField(_("from stage"), max_length=20, choices=Stage.choices, blank=True)
    to_stage = models.CharField(_("to stage"), max_length=20, choices=Stage.choices)
    reason = models.CharField(_("reason"), max_length=200, blank=True)
    origin = models.CharField(
        _("origin"), max_length=20, choices=Origin.choices, default=Origin.MANUAL
    )
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name=_("changed by"),
    )

    class Meta:
        verbose_name = _("stage change")
        verbose_name_plural = _("stage changes")
        ordering = ["customer", "changed_at", "id"]
        indexes = [models.Index(fields=["customer", "changed_at"])]

    def __str__(self) -> str:
        return "{}: {} → {}".format(self.customer_id, self.from_stage or "∅", self.to_stage)


class Consent(models.Model):
    """One opt-in or opt-out of a channel; the latest per channel is the customer's choice."""

    class Channel(models.TextChoices):
        EMAIL = "email", _("Email")
        SMS = "sms", _("SMS")
        WECHAT = "wechat", _("WeChat")
        PHONE = "phone", _("Phone")

    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="consents", db_index=False
    )  # indexed by the (customer, channel, recorded_at) unique constraint
    channel = models.CharField(_("channel"), max_length=20, choices=Channel.choices)
    opted_in = models.BooleanField(_("opted in"))
    recorded_at = models.DateTimeField(_("recorded at"))
    source = models.CharField(_("source"), max_length=100, blank=True)

    class Meta:
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        constraints = [
            models.UniqueConstraint(
                fields=["customer", "channel", "recorded_at"], name="consent_unique_event"
            )
        ]

    def __str__(self) -> str:
        return "{} {} {}".format(self.customer_id, self.channel, "in" if self.opted_in else "out")


class Interaction(models.Model):
    """A call, email, chat, visit, note or complaint, with its full text, kept without expiry."""

    class Kind(models.TextChoices):
        CALL = "call", _("Call")
        EMAIL = "email", _("Email")
        CHAT = "chat", _("Chat")
        VISIT = "visit", _("Visit")
        NOTE = "note", _("Note")
        COMPLAINT = "complaint", _("Complaint")
        SMS = "sms", _("SMS")
        WECHAT = "wechat", _("WeChat")

    class Direction(models.TextChoices):
        INBOUND = "inbound", _("Inbound")
        OUTBOUND = "outbound", _("Outbound")

    source = models.CharField(_("source"), max_length=50, default=DEFAULT_SOURCE)
    # The id in the source system, or a digest of the row when the source has none.
    external_id = models.CharField(_("external id"), max_length=100)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="interactions", db_index=False
    )  # indexed by (customer, occurred_at)
    occurred_at = models.DateTimeField(_("occurred at"))
    kind = models.CharField(_("kind"), max_length=20, choices=Kind.choices)
    direction = models.CharField(
        _("direction"), max_length=10, choices=Direction.choices, blank=True
    )
    staff = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        verbose_name=_("staff"),
    )
    subject = models.CharField(_("subject"), max_length=200, blank=True)
    body = models.TextField(_("text"), blank=True)
    outcome = models.CharField(_("outcome"), max_length=50, blank=True)
    # Search terms of subject and body (see customers.search): words, and overlapping
    # two-character pieces of Chinese text, so that 退款 finds every message containing it.
    search_document = models.TextField(editable=False, blank=True)

    class Meta:
        verbose_name = _("interaction")
        verbose_name_plural = _("interactions")
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"], name="interaction_unique_external_id"
            )
        ]
        indexes = [
            models.Index(fields=["customer", "occurred_at"]),
            models.Index(fields=["kind", "occurred_at"]),
        ]

    def __str__(self) -> str:
        return "{} {} {}".format(self.kind, self.customer_id, self.occurred_at)
