"""Why customers leave (R17): measured drivers of churn risk and stated reasons, side by side.

Definitions
-----------
*Driver*: a group of churn features that tell one story (activity, complaints, breadth of
services...), listed in ``DRIVERS``. Correlated features are grouped because a tree model may
use any of them: moving one alone would understate the story.

*Global drivers* (``global_drivers``), measured on a held-out snapshot (a seeded sample of at
most ``max_rows`` of its rows: every driver scores about 8 shuffled or altered copies of it):

- importance: the drop in AUC when the driver's columns are shuffled together across customers
  (permutation importance, mean over ``n_repeats`` seeded shuffles);
- effect: the partial dependence of predicted risk on the driver's lead feature: mean predicted
  risk with the lead set to its 90th percentile for everyone, minus the same at its 10th
  percentile (``direction`` "up" when high values raise risk); when both are equal (counts that
  are mostly 0) the next value seen stands for "high". For a categorical lead: the riskiest
  category's mean risk minus the safest one's.

*Per-customer reasons* (``customer_reasons``): for each customer and driver, how much lower the
predicted risk would be if the driver's features were those of a typical customer (the median,
or the most common category, over the frame). The drivers that lower it most, by at least
``min_effect``, and on which the customer really is on the risky side (say, fewer visits than
typical), become ``Reason(code, params)``: structured, so the pages can translate them
(``loyal.insights.reasons``).

*Stated reasons* (``stated_reasons``): what customers said: subscription cancellation reasons and
complaint outcomes, counted per calendar period.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.metrics import roc_auc_score

from loyal.engine.churn import CATEGORICAL, COMPLAINT_KIND, FEATURES, LABEL, ChurnModel
from loyal.engine.common import complete_periods, period_key, utc
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import Sources


@dataclass(frozen=True)
class Reason:
    """Why one customer's risk is up: a ``code`` (see ``REASON_PARAMS``) and its values."""

    code: str
    params: Mapping[str, Any] = field(default_factory=dict)


# Every reason code the engine emits, with the names of its params (the pages' templates fill
# them in; loyal.insights.reasons has one template per code).
REASON_PARAMS: dict[str, tuple[str, ...]] = {
    "early_tenure": ("months",),
    "plan": ("plan",),
    "high_price": ("amount",),
    "previous_cancellations": ("count",),
    "no_activity_days": ("days",),
    "low_activity": ("count", "days"),
    "activity_falling": ("percent",),
    "few_services": ("count",),
    "no_order_days": ("days",),
    "few_orders": ("count", "days"),
    "low_spend": ("amount", "days"),
    "unresolved_complaints": ("count",),
    "recent_complaints": ("count",),
    "past_complaints": ("count",),
    "many_contacts": ("count", "days"),
    "acquisition_channel": ("channel",),
}

Row = Mapping[str, Any]


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _below(row: Row, ref: Row, name: str) -> bool:
    return not _missing(row[name]) and not _missing(ref[name]) and row[name] < ref[name]


def _above(row: Row, ref: Row, name: str) -> bool:
    return not _missing(row[name]) and not _missing(ref[name]) and row[name] > ref[name]


def _tenure(row: Row, ref: Row) -> Reason | None:
    if _below(row, ref, "tenure_months"):
        return Reason("early_tenure", {"months": int(row["tenure_months"])})
    return None


def _plan(row: Row, ref: Row) -> Reason | None:
    if not _missing(row["plan"]) and row["plan"] != ref["plan"]:
        return Reason("plan", {"plan": str(row["plan"])})
    return None


def _price(row: Row, ref: Row) -> Reason | None:
    if _above(row, ref, "monthly_amount"):
        return Reason("high_price", {"amount": round(float(row["monthly_amount"]), 2)})
    return None


def _history(row: Row, ref: Row) -> Reason | None:
    if _above(row, ref, "past_subscriptions"):
        return Reason("previous_cancellations", {"count": int(row["past_subscriptions"])})
    return None


def _activity(row: Row, ref: Row) -> Reason | None:
    if _above(row, ref, "days_since_last_event"):
        return Reason("no_activity_days", {"days": int(row["days_since_last_event"])})
    if _below(row, ref, "sessions_30d") or _below(row, ref, "events_30d"):
        return Reason("low_activity", {"count": int(row["sessions_30d"]), "days": 30})
    return None


def _trend(row: Row, ref: Row) -> Reason | None:
    trend = row["activity_trend"]
    if not _missing(trend) and trend < 1 and _below(row, ref, "activity_trend"):
        return Reason("activity_falling", {"percent": round((1 - float(trend)) * 100)})
    return None


def _services(row: Row, ref: Row) -> Reason | None:
    if _below(row, ref, "services_90d"):
        return Reason("few_services", {"count": int(row["services_90d"])})
    return None


def _orders(row: Row, ref: Row) -> Reason | None:
    if _above(row, ref, "days_since_last_order"):
        return Reason("no_order_days", {"days": int(row["days_since_last_order"])})
    if _below(row, ref, "orders_90d"):
        return Reason("few_orders", {"count": int(row["orders_90d"]), "days": 90})
    if _below(row, ref, "revenue_90d"):
        return Reason("low_spend", {"amount": round(float(row["revenue_90d"]), 2), "days": 90})
    return None


def _complaints(row: Row, ref: Row) -> Reason | None:
    if row["unresolved_complaints_90d"] > 0:
        return Reason("unresolved_complaints", {"count": int(row["unresolved_complaints_90d"])})
    if row["complaints_90d"] > 0:
        return Reason("recent_complaints", {"count": int(row["complaints_90d"])})
    if _above(row, ref, "complaints_total"):
        return Reason("past_complaints", {"count": int(row["complaints_total"])})
    return None


def _contacts(row: Row, ref: Row) -> Reason | None:
    if _above(row, ref, "contacts_90d"):
        return Reason("many_contacts", {"count": int(row["contacts_90d"]), "days": 90})
    return None


def _channel(row: Row, ref: Row) -> Reason | None:
    channel = row["acquisition_channel"]
    if not _missing(channel) and channel != ref["acquisition_channel"]:
        return Reason("acquisition_channel", {"channel": str(channel)})
    return None


@dataclass(frozen=True)
class Driver:
    """Features that tell one story; ``lead`` is the one whose values the effect compares, and
    ``explain(row, typical)`` words a customer's value as a Reason (None when not risky)."""

    name: str
    features: tuple[str, ...]
    lead: str
    explain: Callable[[Row, Row], Reason | None] = field(repr=False)


DRIVERS: tuple[Driver, ...] = (
    Driver("tenure", ("tenure_months",), "tenure_months", _tenure),
    Driver("plan", ("plan",), "plan", _plan),
    Driver("price", ("monthly_amount",), "monthly_amount", _price),
    Driver("history", ("past_subscriptions",), "past_subscriptions", _history),
    Driver(
        "activity",
        ("days_since_last_event", "events_14d", "events_30d", "sessions_30d", "active_days_30d"),
        "days_since_last_event",
        _activity,
    ),
    Driver("activity_trend", ("activity_trend",), "activity_trend", _trend),
    Driver("services", ("services_90d",), "services_90d", _services),
    Driver(
        "orders",
        ("days_since_last_order", "orders_90d", "revenue_90d"),
        "days_since_last_order",
        _orders,
    ),
    Driver(
        "complaints",
        ("unresolved_complaints_90d", "complaints_90d", "complaints_total"),
        "unresolved_complaints_90d",
        _complaints,
    ),
    Driver("contacts", ("contacts_90d",), "contacts_90d", _contacts),
    Driver("channel", ("acquisition_channel",), "acquisition_channel", _channel),
)

assert sorted(f for d in DRIVERS for f in d.features) == sorted(FEATURES), (
    "a feature lacks a driver"
)


def _check_frame(frame: pd.DataFrame) -> None:
    missing = [name for name in (*FEATURES, "customer_id") if name not in frame.columns]
    if missing:
        raise ValueError(
            f"the frame lacks the columns {missing}: build it with churn.snapshot_frame"
        )


def typical_customer(frame: pd.DataFrame) -> dict[str, Any]:
    """The reference customer: each numeric feature's median, each categorical's mode."""
    _check_frame(frame)
    if frame.empty:
        raise ValueError("the frame has no customers: a typical customer needs at least one")
    typical: dict[str, Any] = {}
    for name in FEATURES:
        column = frame[name]
        if name in CATEGORICAL:
            modes = column.dropna().astype(str).mode()
            typical[name] = modes.iloc[0] if len(modes) else None
        else:
            median = pd.to_numeric(column, errors="coerce").median()
            typical[name] = None if pd.isna(median) else float(median)
    return typical


# --- Global drivers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class GlobalDriver:
    """How one driver moves churn risk across customers (see the module docstring).

    ``low_value``/``high_value`` are the lead feature's 10th/90th percentiles (or the safest and
    riskiest categories) and ``risk_at_low``/``risk_at_high`` the mean predicted risk there.
    """

    name: str
    features: tuple[str, ...]
    lead: str
    importance: float
    importance_std: float
    low_value: Any
    high_value: Any
    risk_at_low: float
    risk_at_high: float
    effect: float
    direction: str  # "up": risk rises with the lead; "down": it falls; "category"; "none"


def _with(frame: pd.DataFrame, values: Mapping[str, Any]) -> pd.DataFrame:
    out = frame.copy()
    for name, value in values.items():
        out[name] = value
    return out


# Rows of the held-out snapshot the global drivers are measured on, at most.
MAX_DRIVER_ROWS = 20_000

# Customers whose reasons are worked out per batch (each batch scores 12 variants of its rows).
REASON_BATCH_ROWS = 20_000


def global_drivers(
    model: ChurnModel,
    frame: pd.DataFrame,
    *,
    n_repeats: int = 5,
    random_state: int = 0,
    max_rows: int | None = MAX_DRIVER_ROWS,
) -> tuple[GlobalDriver, ...]:
    """Every driver's importance and effect on held-out rows ``frame`` (features and
    ``churned``, e.g. ``Backtest.test``), the most important first.

    Past ``max_rows`` rows (None: no limit), they are measured on a sample of that many rows
    drawn with ``random_state``.
    """
    _check_frame(frame)
    if LABEL not in frame.columns:
        raise ValueError(f"the frame lacks the {LABEL!r} label: use a labelled snapshot")
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"max_rows must be >= 1 or None (every row), got {max_rows!r}")
    rng = np.random.default_rng(random_state)
    if max_rows is not None and len(frame) > max_rows:
        keep = np.sort(rng.choice(len(frame), size=max_rows, replace=False))
        frame = frame.iloc[keep].reset_index(drop=True)
    y = frame[LABEL].to_numpy(dtype=float)
    if len(set(y)) < 2:
        raise ValueError("the frame needs churners and stayers to measure AUC drops")
    n = len(frame)
    # Every variant of the frame is scored in one batch: the model's overhead is per call.
    variants: list[pd.DataFrame] = [frame]
    for driver in DRIVERS:
        columns = list(driver.features)
        for _ in range(n_repeats):
            shuffled = frame.copy()
            shuffled[columns] = frame[columns].iloc[rng.permutation(n)].to_numpy()
            variants.append(shuffled)
    grids = [_grid(frame, driver.lead) for driver in DRIVERS]
    variants += [
        _with(frame, {d.lead: value})
        for d, grid in zip(DRIVERS, grids, strict=True)
        for value in grid
    ]
    risk = _batch_risk(model, variants)
    base_auc = roc_auc_score(y, risk[0])
    found = []
    at = 1
    for driver in DRIVERS:
        drops = [base_auc - roc_auc_score(y, risk[at + r]) for r in range(n_repeats)]
        at += n_repeats
        found.append((driver, float(np.mean(drops)), float(np.std(drops))))
    result = []
    for (driver, importance, spread), grid in zip(found, grids, strict=True):
        means = [float(risk[at + k].mean()) for k in range(len(grid))]
        at += len(grid)
        result.append(_effect(driver, importance, spread, grid, means))
    return tuple(sorted(result, key=lambda d: -d.importance))


def _batch_risk(model: ChurnModel, frames: list[pd.DataFrame]) -> list[np.ndarray]:
    risk = model.churn_probability(pd.concat(frames, ignore_index=True))
    bounds = np.cumsum([0] + [len(f) for f in frames])
    return [risk[a:b] for a, b in zip(bounds[:-1], bounds[1:], strict=True)]


def _grid(frame: pd.DataFrame, lead: str) -> list[Any]:
    """The lead's values to compare: every category, or the 10th and 90th percentiles."""
    if lead in CATEGORICAL:
        return sorted(frame[lead].dropna().astype(str).unique())
    numbers = pd.to_numeric(frame[lead], errors="coerce").dropna()
    if numbers.empty:
        return []
    low, high = float(numbers.quantile(0.1)), float(numbers.quantile(0.9))
    if high == low:
        # Mostly zeros (complaints): compare with the next value seen, e.g. one complaint.
        above = numbers[numbers > low]
        high = float(above.min()) if len(above) else low
    return [low, high]


def _effect(
    driver: Driver, importance: float, spread: float, grid: list[Any], means: list[float]
) -> GlobalDriver:
    low = high = None
    at_low = at_high = float("nan")
    direction = "none"
    if grid and driver.lead in CATEGORICAL:
        safest, riskiest = int(np.argmin(means)), int(np.argmax(means))
        low, high, at_low, at_high = grid[safest], grid[riskiest], means[safest], means[riskiest]
        direction = "category"
    elif grid:
        (low, high), (at_low, at_high) = grid, means
        if at_high != at_low:
            direction = "up" if at_high > at_low else "down"
    return GlobalDriver(
        name=driver.name,
        features=driver.features,
        lead=driver.lead,
        importance=importance,
        importance_std=spread,
        low_value=low,
        high_value=high,
        risk_at_low=at_low,
        risk_at_high=at_high,
        effect=at_high - at_low,
        direction=direction,
    )


def drivers_table(drivers: tuple[GlobalDriver, ...]) -> pa.Table:
    """The global drivers as an Arrow table for storage (values as text)."""
    return pa.table(
        {
            "driver": [d.name for d in drivers],
            "lead": [d.lead for d in drivers],
            "importance": pa.array([d.importance for d in drivers], pa.float64()),
            "importance_std": pa.array([d.importance_std for d in drivers], pa.float64()),
            "low_value": [None if d.low_value is None else str(d.low_value) for d in drivers],
            "high_value": [None if d.high_value is None else str(d.high_value) for d in drivers],
            "risk_at_low": pa.array([d.risk_at_low for d in drivers], pa.float64()),
            "risk_at_high": pa.array([d.risk_at_high for d in drivers], pa.float64()),
            "effect": pa.array([d.effect for d in drivers], pa.float64()),
            "direction": [d.direction for d in drivers],
        }
    )


# --- Per-customer reasons ----------------------------------------------------------------------


def customer_reasons(
    model: ChurnModel,
    frame: pd.DataFrame,
    *,
    top: int = 3,
    min_effect: float = 0.01,
    typical: Mapping[str, Any] | None = None,
) -> dict[int, tuple[Reason, ...]]:
    """Up to ``top`` reasons per customer of ``frame`` (one row per customer, e.g. the current
    subscribers), the strongest first; see the module docstring. ``typical`` defaults to
    ``typical_customer(frame)``."""
    _check_frame(frame)
    if top < 1 or min_effect < 0:
        raise ValueError(f"top must be >= 1 and min_effect >= 0, got {top!r} and {min_effect!r}")
    if frame.empty:
        return {}
    frame = frame.reset_index(drop=True)
    if frame["customer_id"].duplicated().any():
        raise ValueError("the frame has several rows per customer: pass one snapshot")
    reference = dict(typical) if typical is not None else typical_customer(frame)
    reasons: dict[int, tuple[Reason, ...]] = {}
    # In batches of customers: a customer's reasons depend on their row and the reference only.
    for start in range(0, len(frame), REASON_BATCH_ROWS):
        batch = frame.iloc[start : start + REASON_BATCH_ROWS]
        reasons.update(_batch_reasons(model, batch, reference, top, min_effect))
    return reasons


def _batch_reasons(
    model: ChurnModel, frame: pd.DataFrame, reference: Row, top: int, min_effect: float
) -> dict[int, tuple[Reason, ...]]:
    variants = [frame] + [
        _with(frame, {name: reference[name] for name in driver.features}) for driver in DRIVERS
    ]
    risk = _batch_risk(model, variants)
    lift = np.column_stack([risk[0] - typical_risk for typical_risk in risk[1:]])
    rows = frame.to_dict("records")
    reasons: dict[int, tuple[Reason, ...]] = {}
    for i, row in enumerate(rows):
        found: list[Reason] = []
        for j in np.argsort(-lift[i], kind="stable"):
            if lift[i, j] < min_effect or len(found) == top:
                break
            reason = DRIVERS[j].explain(row, reference)
            if reason is not None:
                found.append(reason)
        reasons[int(row["customer_id"])] = tuple(found)
    return reasons


def reasons_table(reasons: Mapping[int, tuple[Reason, ...]]) -> pa.Table:
    """customer_id, rank (1 = strongest), code, params (JSON text): for bulk write-back."""
    rows = [
        (customer, rank, reason.code, json.dumps(dict(reason.params), sort_keys=True))
        for customer, found in reasons.items()
        for rank, reason in enumerate(found, start=1)
    ]
    columns = list(zip(*rows, strict=True)) if rows else [(), (), (), ()]
    return pa.table(
        {
            "customer_id": pa.array(columns[0], pa.int64()),
            "rank": pa.array(columns[1], pa.int64()),
            "code": pa.array(columns[2], pa.string()),
            "params": pa.array(columns[3], pa.string()),
        }
    )


# --- Stated reasons ----------------------------------------------------------------------------


def stated_reasons(
    sources: Sources, as_of: dt.datetime, settings: EngineSettings | None = None
) -> ir.Table:
    """What customers said, per period: columns period (date), source, reason, count, share.

    source "cancellation": subscriptions that ended in the period, by ``cancellation_reason``;
    source "complaint": complaints (interactions of kind 'complaint') made in the period, by
    outcome (resolved, unresolved...). A missing reason or outcome counts as "unknown". Periods
    are the ``settings.trend_periods`` complete ``settings.trend_freq`` periods before
    ``as_of``; share is count over the period's total of the same source.
    """
    settings = settings or EngineSettings()
    periods = complete_periods(utc(as_of), settings.trend_freq, settings.trend_periods)
    start, end = periods[0].start, periods[-1].end
    s = sources.subscriptions
    ended = s.filter((s.ended_at >= start) & (s.ended_at < end))
    cancellations = ended.select(
        period=period_key(ended.ended_at, settings.trend_freq),
        source=ibis.literal("cancellation"),
        reason=ended.cancellation_reason.fill_null("unknown"),
    )
    i = sources.interactions
    complaints = i.filter(
        (i.kind == COMPLAINT_KIND) & (i.occurred_at >= start) & (i.occurred_at < end)
    )
    complaints = complaints.select(
        period=period_key(complaints.occurred_at, settings.trend_freq),
        source=ibis.literal("complaint"),
        reason=complaints.outcome.fill_null("unknown"),
    )
    said = cancellations.union(complaints)
    counts = said.group_by(["period", "source", "reason"]).aggregate(count=said.count())
    total = counts["count"].sum().over(group_by=[counts.period, counts.source])
    counts = counts.mutate(share=counts["count"].cast("float64") / total.cast("float64"))
    return counts.order_by([counts.period, counts.source, counts["count"].desc(), counts.reason])
