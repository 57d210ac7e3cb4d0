"""Survival of subscriptions (R10): durations as an Ibis table, Kaplan-Meier curves after it.

The durations table is an expression like every other analysis; the Kaplan-Meier estimate is
computed in NumPy on the executed durations (a small sort-and-count over one row per
subscription spell), with the exponential Greenwood confidence bands as lifelines gives them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from statistics import NormalDist

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from loyal.engine.common import DAY, epoch, utc
from loyal.engine.metrics import activity_spells
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import Sources

KM_SCHEMA = pa.schema(
    [
        ("group", pa.string()),
        ("time_days", pa.float64()),
        ("at_risk", pa.int64()),
        ("survival", pa.float64()),
        ("ci_lower", pa.float64()),
        ("ci_upper", pa.float64()),
    ]
)


def subscription_durations(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    by: str | None = None,
    segments: ir.Table | None = None,
    spells: ir.Table | None = None,
) -> ir.Table:
    """How long each subscription spell lasted, and whether it ended in churn.

    A spell is an unbroken run of a customer's subscriptions (renewals within
    ``subscription_grace_days`` continue it; see ``metrics.activity_spells``). Columns:
    customer_id, spell_no, duration_days, event, and ``by`` when given (a customer column of
    ``sources.customers`` or of ``segments``). ``spells``: a shared ``metrics.activity_spells``
    (built here when None).

    - event = True (churned): the last subscription ended and the grace period passed before
      ``as_of``; duration = start of the spell to the end of its last subscription;
    - event = False (censored): still running, or ended too recently to know; duration = start to
      ``as_of``.
    """
    as_of_s = epoch(utc(as_of))
    if spells is None:
        spells = activity_spells(sources, as_of, settings)
    spells = spells.filter(spells.basis == "subscription")
    churned = spells.reach_s <= as_of_s
    out = spells.select(
        "customer_id",
        "spell_no",
        duration_days=(ibis.cases((churned, spells.last_s), else_=as_of_s) - spells.start_s).cast(
            "float64"
        )
        / DAY,
        event=churned,
    )
    if by is None:
        return out
    seg = sources.customers if segments is None else segments
    if by not in seg.columns:
        raise ValueError(f"segment column {by!r} not found; available: {sorted(seg.columns)}")
    seg = seg.select(s_customer_id=seg.customer_id, **{by: seg[by]})
    joined = out.left_join(seg, out.customer_id == seg.s_customer_id)
    return joined.drop("s_customer_id")


def kaplan_meier(
    durations: pa.Table | pd.DataFrame,
    *,
    by: str | None = None,
    alpha: float = 0.05,
    timeline: Sequence[float] | np.ndarray | None = None,
) -> pa.Table:
    """Kaplan-Meier survival curves with confidence bands, one per value of ``by``.

    ``durations`` is the executed ``subscription_durations`` (columns duration_days, event, and
    ``by``). Returns Arrow with columns group ("all" without ``by``; missing values as null),
    time_days, at_risk (spells still at risk just before time_days), survival, ci_lower,
    ci_upper (exponential Greenwood interval at level 1 - alpha, as lifelines computes it).
    ``timeline`` evaluates every curve at the given days (e.g. 0, 7, 14, ...) instead of at
    each observed duration (and at 0).
    """
    table = durations if isinstance(durations, pa.Table) else pa.Table.from_pandas(durations)
    for column in ("duration_days", "event", *([by] if by else [])):
        if column not in table.column_names:
            raise ValueError(
                f"durations lack column {column!r} (have {table.column_names}): pass the "
                "executed subscription_durations(..., by=...)"
            )
    times = table.column("duration_days").to_numpy(zero_copy_only=False).astype(float)
    events = table.column("event").fill_null(False).to_numpy(zero_copy_only=False).astype(bool)
    groups: list[tuple[str | None, np.ndarray]]
    if by is None:
        groups = [("all", np.arange(table.num_rows))]
    else:
        # One curve per value in sorted order, then one for the missing values.
        keys = table.column(by)
        values = pc.unique(keys).drop_null()
        values = values.take(pc.sort_indices(values))
        codes = pc.index_in(keys, value_set=values).fill_null(-1).to_numpy(zero_copy_only=False)
        groups = [
            (str(value), np.flatnonzero(codes == i)) for i, value in enumerate(values.to_pylist())
        ]
        groups.append((None, np.flatnonzero(codes == -1)))
    grid = None if timeline is None else np.sort(np.asarray(timeline, dtype=float))
    z = NormalDist().inv_cdf(1 - alpha / 2)
    parts = []
    for label, rows in groups:
        if rows.size == 0:
            continue
        time_days, at_risk, survival, ci_lower, ci_upper = _km_curve(
            times[rows], events[rows], grid, z
        )
        columns = {
            "group": pa.array([label] * time_days.size, pa.string()),
            "time_days": time_days,
            "at_risk": at_risk,
            "survival": survival,
            "ci_lower": ci_lower,
            "ci_upper": ci_upper,
        }
        parts.append(pa.table(columns, schema=KM_SCHEMA))
    if not parts:
        return KM_SCHEMA.empty_table()
    return pa.concat_tables(parts)


def _km_curve(
    durations: np.ndarray, observed: np.ndarray, timeline: np.ndarray | None, z: float
) -> tuple[np.ndarray, ...]:
    """One Kaplan-Meier curve: time, at_risk, survival, ci_lower, ci_upper.

    S(t) = product over event times u <= t of (1 - d_u / n_u), with n_u the spells at risk just
    before u and d_u the churns at u; Greenwood's sum V(t) = sum of d_u / (n_u (n_u - d_u))
    (0 where everyone at risk churns), and the exponential Greenwood band
    exp(-exp(log(-log S) +- z sqrt(V) / log S)), 1 where S is 1, as lifelines computes them.
    """
    order = np.sort(durations)
    # The distinct times at which spells leave, and the start (0, or an earlier negative time).
    event_times = np.unique(np.concatenate(([min(0.0, order[0])], order)))
    at_risk = order.size - np.searchsorted(order, event_times, side="left")
    churn_times = np.sort(durations[observed])
    deaths = np.searchsorted(churn_times, event_times, side="right") - np.searchsorted(
        churn_times, event_times, side="left"
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        log_survival = np.cumsum(np.log(at_risk - deaths) - np.log(at_risk))
        step_var = deaths / (at_risk * (at_risk - deaths).astype(float))
    variance = np.cumsum(np.where(np.isinf(step_var), 0.0, step_var))
    if timeline is None:
        times = event_times
        log_s, var = log_survival, variance
    else:
        # The value of the last event time at or before each point of the timeline.
        at = np.searchsorted(event_times, timeline, side="right") - 1
        times = timeline
        log_s = np.where(at >= 0, log_survival[np.maximum(at, 0)], np.nan)
        var = np.where(at >= 0, variance[np.maximum(at, 0)], np.nan)
    survival = np.exp(log_s)
    with np.errstate(divide="ignore", invalid="ignore"):
        spread = z * np.sqrt(var) / log_s
        lower = np.exp(-np.exp(np.log(-log_s) - spread))
        upper = np.exp(-np.exp(np.log(-log_s) + spread))
    at_risk_then = order.size - np.searchsorted(order, times, side="left")
    return (
        times.astype(float),
        at_risk_then.astype(np.int64),
        survival,
        np.nan_to_num(lower, nan=1.0),
        np.nan_to_num(upper, nan=1.0),
    )
