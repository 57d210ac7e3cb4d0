"""What the engine computed, stored so that pages and lists never recompute analytics on a request.

Each ``loyal analyze`` is an ``AnalysisRun`` for one ``as_of``. Its headline figures are kept per
run (``KpiSnapshot``), so trends over periods can be read back and exported; the per-customer
results of the latest run are on ``CustomerScore`` (one row per customer).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from loyal.customers.models import Customer, Stage


class AnalysisRun(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        DONE = "done", _("Done")
        FAILED = "failed", _("Failed")

    as_of = models.DateTimeField(_("as of"), db_index=True)
    started_at = models.DateTimeField(_("started at"), auto_now_add=True)
    finished_at = models.DateTimeField(_("finished at"), null=True, blank=True)
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.RUNNING
    )
    engine = models.CharField(_("engine"), max_length=20, default="duckdb")
    # The engine settings used, with the data-driven choices (e.g. the churn window) resolved.
    settings = models.JSONField(_("settings"), default=dict)
    # Chart tables by name, each a list of rows: small by construction (periods, classes, cells).
    charts = models.JSONField(_("charts"), default=dict)
    # The fitted models: BTYD parameters, standard errors, log-likelihood and holdout check; the
    # churn classifier's back-test (AUC, lift, Brier).
    fitted_models = models.JSONField(_("fitted models"), default=dict)
    customers = models.PositiveIntegerField(_("customers scored"), default=0)
    seconds = models.FloatField(_("seconds"), null=True, blank=True)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        verbose_name = _("analysis run")
        verbose_name_plural = _("analysis runs")
        ordering = ["-started_at", "-id"]

    def __str__(self) -> str:
        return "{} ({})".format(self.as_of.date(), self.status)


class KpiSnapshot(models.Model):
    """One headline figure of one run, e.g. the absolute churn rate as of 2026-11-01."""

    run = models.ForeignKey(AnalysisRun, on_delete=models.CASCADE, related_name="kpis")
    as_of = models.DateTimeField(_("as of"))
    kpi = models.CharField(_("KPI"), max_length=100)
    value = models.FloatField(_("value"), null=True)

    class Meta:
        verbose_name = _("KPI snapshot")
        verbose_name_plural = _("KPI snapshots")
        ordering = ["as_of", "kpi"]
        constraints = [models.UniqueConstraint(fields=["run", "kpi"], name="kpi_unique_per_run")]
        indexes = [models.Index(fields=["kpi", "as_of"])]

    def __str__(self) -> str:
        return "{} {} = {}".format(self.as_of.date(), self.kpi, self.value)


class CustomerScore(models.Model):
    """The latest analysis of one customer: lifecycle, RFM, value classes."""

    customer = models.OneToOneField(
        Customer, primary_key=True, on_delete=models.CASCADE, related_name="score"
    )
    run = models.ForeignKey(AnalysisRun, on_delete=models.CASCADE, related_name="scores")
    as_of = models.DateTimeField(_("as of"))
    stage = models.CharField(_("stage"), max_length=20, choices=Stage.choices)
    churned = models.BooleanField(_("churned"), default=False)
    recency_days = models.FloatField(_("days since last order"), null=True)
    frequency = models.PositiveIntegerField(_("orders"), default=0)
    monetary = models.FloatField(_("revenue"), default=0)
    r_score = models.PositiveSmallIntegerField(_("R score"), null=True)
    f_score = models.PositiveSmallIntegerField(_("F score"), null=True)
    m_score = models.PositiveSmallIntegerField(_("M score"), null=True)
    rfm_segment = models.CharField(_("RFM segment"), max_length=30, blank=True, db_index=True)
    margin = models.FloatField(_("margin"), default=0)
    cost_to_serve = models.FloatField(_("cost to serve"), default=0)
    profit = models.FloatField(_("profit"), default=0)
    abc_class = models.CharField(_("ABC class"), max_length=1, blank=True, db_index=True)
    return_class = models.CharField(_("return class"), max_length=10, blank=True, db_index=True)
    # Predictions (null where a model does not apply or had too little data).
    p_alive = models.FloatField(_("probability still a customer"), null=True)
    expected_purchases = models.FloatField(_("expected purchases (90 days)"), null=True)
    expected_spend = models.FloatField(_("expected spend per purchase"), null=True)
    clv = models.FloatField(_("customer lifetime value (12 months)"), null=True)
    churn_probability = models.FloatField(_("churn probability (60 days)"), null=True)
    # Why the churn risk is up: [{"code": ..., "params": {...}}], strongest first.
    reasons = models.JSONField(_("churn reasons"), default=list, blank=True)
    next_action = models.CharField(_("next best action"), max_length=30, blank=True, db_index=True)
    action_priority = models.FloatField(_("action priority"), null=True)
    suggestion = models.CharField(_("top suggestion"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("customer score")
        verbose_name_plural = _("customer scores")

    def __str__(self) -> str:
        return "{} {}".format(self.customer_id, self.rfm_segment)


class Segment(models.Model):
    """A needs-based group defined by rules over attributes, scores and behaviour (R14)."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    description = models.TextField(_("description"), blank=True)
    # What these customers should get, e.g. "weekly status report by email".
    expected_service = models.CharField(_("expected service"), max_length=200, blank=True)
    rules = models.JSONField(_("rules"), default=dict)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(_("created at"), auto_now_add=True)

    class Meta:
        verbose_name = _("segment")
        verbose_name_plural = _("segments")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def audit(self, action: str, user=None) -> None:
        """Record ``action`` ("segment.created", "segment.changed", "segment.deleted") on this
        segment in the audit log: by ``user`` on the web, else by a command."""
        from loyal.accounts.models import AuditEntry

        AuditEntry.objects.create(
            origin="command" if user is None else "web",
            actor=user,
            action=action,
            object_type="segment",
            object_id=str(self.pk),
            details={"name": self.name, "rule": self.rules},
        )


class SegmentCount(models.Model):
    """How many customers a segment held at one analysis run."""

    segment = models.ForeignKey(Segment, on_delete=models.CASCADE, related_name="counts")
    run = models.ForeignKey(AnalysisRun, on_delete=models.CASCADE, related_name="segment_counts")
    as_of = models.DateTimeField(_("as of"))
    members = models.PositiveIntegerField(_("members"))

    class Meta:
        verbose_name = _("segment count")
        verbose_name_plural = _("segment counts")
        ordering = ["segment", "as_of"]
        constraints = [
            models.UniqueConstraint(fields=["segment", "run"], name="segment_count_unique_per_run")
        ]

    def __str__(self) -> str:
        return "{} {}: {}".format(self.segment_id, self.as_of.date(), self.members)


class SegmentMember(models.Model):
    """A customer in a segment at the latest analysis run (replaced by every run)."""

    segment = models.ForeignKey(
        Segment, on_delete=models.CASCADE, related_name="members", db_index=False
    )  # indexed by the unique constraint, which starts with it
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="segment_memberships"
    )

    class Meta:
        verbose_name = _("segment member")
        verbose_name_plural = _("segment members")
        constraints = [
            models.UniqueConstraint(fields=["segment", "customer"], name="segment_member_unique")
        ]

    def __str__(self) -> str:
        return "{} {}".format(self.segment_id, self.customer_id)
