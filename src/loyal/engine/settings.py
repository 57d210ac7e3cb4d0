"""Every configurable of the retention analytics, in one frozen dataclass.

An analysis never reads the environment or a global: it takes an ``EngineSettings`` (the defaults
below are sensible for a small shop) and an explicit ``as_of``. Change a value with
``dataclasses.replace(settings, churn_window_days=120)``.

Conventions shared by all analyses:

- ``as_of`` is the instant the analysis looks from. Only data strictly before ``as_of`` is used,
  so re-running an old ``as_of`` on today's records gives the same answer.
- "Paid orders" are orders with ``status = 'paid'``; refunded and cancelled orders are ignored.
- Day counts are exact (fractional) days between UTC instants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

# Unit cost of one contact of each interaction kind (in the shop's currency). "note" and
# "complaint" are not contacts: a note costs nothing, complaints have their own cost.
DEFAULT_CONTACT_COSTS: Mapping[str, float] = MappingProxyType(
    {"call": 5.0, "email": 0.5, "chat": 2.0, "visit": 20.0, "sms": 0.1, "wechat": 0.5}
)

FREQUENCIES = ("day", "week", "month")
CRITICAL_WINDOW_ANCHORS = ("first_purchase", "joined")


def _contact_costs() -> Mapping[str, float]:
    return MappingProxyType(dict(DEFAULT_CONTACT_COSTS))


@dataclass(frozen=True)
class EngineSettings:
    """The knobs of every analysis in ``loyal.engine``; see each field's comment."""

    # --- Churn (R6) -----------------------------------------------------------------------
    # A customer without a subscription is lost when this many days pass without a paid order.
    # None: choose it from the data with ``churn_window.resolve_churn_window`` (run_all does).
    churn_window_days: int | None = None
    # Data-driven window: this quantile of the gaps between consecutive paid orders, rounded to
    # whole days and clamped to [floor, ceiling]; the fallback when there are too few gaps.
    churn_window_quantile: float = 0.9
    churn_window_floor_days: int = 30
    churn_window_ceiling_days: int = 365
    churn_window_fallback_days: int = 90
    churn_window_min_gaps: int = 20
    # A subscription customer is lost when every subscription has ended and none was running or
    # started within this many days of the last end.
    subscription_grace_days: int = 30
    # Hook for the predictive models: with a per-customer P(alive) table (customer_id, p_alive),
    # the customers in it whose P(alive) is below the first threshold count as lost (churned),
    # below the second as at risk.
    p_alive_churn_threshold: float = 0.1
    p_alive_at_risk_threshold: float = 0.5
    # The headline period of the KPI snapshot: [as_of - kpi_period_days, as_of).
    kpi_period_days: int = 30
    # "Average purchase" in the relative churn rate: paid revenue over this many days before the
    # period end (None: the customer's whole history).
    churn_value_lookback_days: int | None = 365
    # Trends (churn, stickiness, lifecycle): this many complete periods before as_of.
    trend_periods: int = 12
    trend_freq: str = "month"

    # --- Lifecycle (R1) -------------------------------------------------------------------
    # At risk: no paid order for longer than this fraction of the churn window.
    at_risk_fraction: float = 0.5

    # --- Stickiness (R7) ------------------------------------------------------------------
    # Event types counted as page views and as clicks.
    page_view_event_types: tuple[str, ...] = ("view", "page_view", "pageview")
    click_event_types: tuple[str, ...] = ("click",)
    # DAU is averaged over the last `mau_days` days; WAU counts the last `wau_days` days.
    wau_days: int = 7
    mau_days: int = 30

    # --- Value, cost to serve, ABC and return classes (R11, R12, R28) -----------------------
    # Profit is measured over this many days before as_of (None: whole history).
    value_lookback_days: int | None = 365
    contact_costs: Mapping[str, float] = field(default_factory=_contact_costs)
    complaint_cost: float = 50.0
    # Compensation given to a customer: an interaction whose outcome is one of these.
    compensation_outcomes: tuple[str, ...] = ("compensated", "compensation")
    compensation_cost: float = 100.0
    # Upper bounds (inclusive) of the cumulative share of positive profit for classes A and B.
    abc_thresholds: tuple[float, float] = (0.8, 0.9)
    # Return classes among customers with profit > 0: None splits them in profit terciles;
    # (medium_from, high_from) uses fixed profit thresholds instead.
    return_class_thresholds: tuple[float, float] | None = None

    # --- RFM (R13) ------------------------------------------------------------------------
    rfm_bins: int = 5
    rfm_lookback_days: int | None = None

    # --- Cohorts, ladder, critical window, tenure, survival (R8-R10) ----------------------
    cohort_periods: int = 12
    ladder_max_purchases: int = 10
    ladder_horizon_days: int = 365
    critical_windows_days: tuple[int, ...] = (30, 60)
    # Retained: a paid order in days [from, to) after the anchor, i.e. days 61-180 by default.
    critical_retained_days: tuple[int, int] = (60, 180)
    critical_max_purchases: int = 5
    tenure_max_months: int = 24
    hazard_max_months: int = 36
    km_alpha: float = 0.05
    # Kaplan-Meier curves are drawn per value of this customer column (None: one curve).
    km_by: str | None = "acquisition_channel"

    def __post_init__(self) -> None:
        problems: list[str] = []

        def check(ok: bool, message: str) -> None:
            if not ok:
                problems.append(message)

        w = self.churn_window_days
        check(w is None or w > 0, f"churn_window_days must be positive or None, got {w!r}")
        check(
            0 < self.churn_window_quantile < 1,
            f"churn_window_quantile must be in (0, 1), got {self.churn_window_quantile!r}",
        )
        check(
            0 < self.churn_window_floor_days <= self.churn_window_ceiling_days,
            "churn_window_floor_days must be positive and not above churn_window_ceiling_days, "
            f"got {self.churn_window_floor_days!r} and {self.churn_window_ceiling_days!r}",
        )
        check(
            self.subscription_grace_days >= 0,
            f"subscription_grace_days must be >= 0, got {self.subscription_grace_days!r}",
        )
        check(
            0 < self.at_risk_fraction <= 1,
            f"at_risk_fraction must be in (0, 1], got {self.at_risk_fraction!r}",
        )
        check(
            0 <= self.p_alive_churn_threshold <= self.p_alive_at_risk_threshold <= 1,
            "need 0 <= p_alive_churn_threshold <= p_alive_at_risk_threshold <= 1, got "
            f"{self.p_alive_churn_threshold!r} and {self.p_alive_at_risk_threshold!r}",
        )
        for name in ("kpi_period_days", "trend_periods", "wau_days", "mau_days", "cohort_periods"):
            value = getattr(self, name)
            check(
                isinstance(value, int) and value > 0,
                f"{name} must be a positive int, got {value!r}",
            )
        check(
            self.trend_freq in FREQUENCIES,
            f"trend_freq must be one of {FREQUENCIES}, got {self.trend_freq!r}",
        )
        a, b = self.abc_thresholds
        check(
            0 < a < b < 1,
            f"abc_thresholds must satisfy 0 < A < B < 1, got {self.abc_thresholds!r}",
        )
        if self.return_class_thresholds is not None:
            lo, hi = self.return_class_thresholds
            check(
                0 <= lo <= hi,
                "return_class_thresholds must be (medium_from, high_from) with "
                f"0 <= medium_from <= high_from, got {self.return_class_thresholds!r}",
            )
        check(2 <= self.rfm_bins <= 100, f"rfm_bins must be in [2, 100], got {self.rfm_bins!r}")
        for name in ("value_lookback_days", "rfm_lookback_days", "churn_value_lookback_days"):
            value = getattr(self, name)
            check(value is None or value > 0, f"{name} must be positive or None, got {value!r}")
        for kind, cost in self.contact_costs.items():
            check(cost >= 0, f"contact_costs[{kind!r}] must be >= 0, got {cost!r}")
        check(
            bool(self.critical_windows_days) and all(d > 0 for d in self.critical_windows_days),
            f"critical_windows_days must be positive days, got {self.critical_windows_days!r}",
        )
        lo_d, hi_d = self.critical_retained_days
        check(
            max(self.critical_windows_days, default=0) <= lo_d < hi_d,
            "critical_retained_days must be (from, to) with from >= the longest early window and "
            f"to > from, got {self.critical_retained_days!r}",
        )
        check(
            self.critical_max_purchases >= 1,
            f"critical_max_purchases must be >= 1, got {self.critical_max_purchases!r}",
        )
        check(0 < self.km_alpha < 1, f"km_alpha must be in (0, 1), got {self.km_alpha!r}")
        if problems:
            raise ValueError("invalid EngineSettings: " + "; ".join(problems))

    @property
    def contact_kinds(self) -> tuple[str, ...]:
        """Interaction kinds that count as a service contact, sorted."""
        return tuple(sorted(self.contact_costs))
