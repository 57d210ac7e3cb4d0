"""Survival of subscriptions (R10): durations as an Ibis table, Kaplan-Meier curves after it.

The durations table is an expression like every other analysis; the Kaplan-Meier estimate is
computed by lifelines on the executed durations (it is a small sort-and-count over one row per
subscription spell, and lifelines gives the exponential Greenwood confidence bands).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa

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
    each observed duration.
    """
    from lifelines import KaplanMeierFitter

    frame = durations.to_pandas() if isinstance(durations, pa.Table) else durations
    for column in ("duration_days", "event", *([by] if by else [])):
        if column not in frame.columns:
            raise ValueError(
                f"durations lack column {column!r} (have {list(frame.columns)}): pass the "
                "executed subscription_durations(..., by=...)"
            )
    groups: list[tuple[str | None, pd.DataFrame]]
    if by is None:
        groups = [("all", frame)]
    else:
        groups = [
            (None if pd.isna(key) else str(key), part)
            for key, part in frame.groupby(by, dropna=False, sort=True)
        ]
    parts = []
    for label, part in groups:
        if part.empty:
            continue
        fitter = KaplanMeierFitter(alpha=alpha)
        fitter.fit(
            part["duration_days"].to_numpy(dtype=float),
            event_observed=part["event"].to_numpy(dtype=bool),
            timeline=None if timeline is None else np.asarray(timeline, dtype=float),
        )
        times = fitter.survival_function_.index.to_numpy(dtype=float)
        ci = fitter.confidence_interval_survival_function_
        durations_sorted = np.sort(part["duration_days"].to_numpy(dtype=float))
        at_risk = len(durations_sorted) - np.searchsorted(durations_sorted, times, side="left")
        parts.append(
            pd.DataFrame(
                {
                    "group": label,
                    "time_days": times,
                    "at_risk": at_risk.astype("int64"),
                    "survival": fitter.survival_function_.iloc[:, 0].to_numpy(dtype=float),
                    "ci_lower": ci.iloc[:, 0].to_numpy(dtype=float),
                    "ci_upper": ci.iloc[:, 1].to_numpy(dtype=float),
                }
            )
        )
    if not parts:
        return KM_SCHEMA.empty_table()
    result = pd.concat(parts, ignore_index=True)
    return pa.Table.from_pandas(result, schema=KM_SCHEMA, preserve_index=False)
