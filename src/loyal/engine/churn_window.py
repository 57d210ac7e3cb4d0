"""The churn window (R6): how long without a paid order before a customer counts as lost.

For customers judged by their orders (see ``metrics``), each paid order covers the churn window
that follows it. ``settings.churn_window_days`` sets it; when it is None it is chosen from the
data: a high quantile (``churn_window_quantile``) of the days between consecutive paid orders of
the same customer, rounded to whole days and kept within the configured floor and ceiling, or a
fallback when there are too few gaps to tell.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import ibis
import ibis.expr.types as ir

from loyal.engine.common import DAY, purchase_sequence
from loyal.engine.execution import to_row
from loyal.engine.settings import EngineSettings


def purchase_gaps(
    orders: ir.Table, as_of: dt.datetime, *, purchases: ir.Table | None = None
) -> ir.Table:
    """Days between consecutive paid orders of the same customer, before ``as_of``.

    Columns: customer_id, gap_days (float). A customer with n paid orders has n - 1 gaps.
    ``purchases``: a shared ``purchase_sequence(orders, as_of)`` (built here when None).
    """
    if purchases is None:
        purchases = purchase_sequence(orders, as_of)
    gaps = purchases.filter(purchases.prev_s.notnull())
    return gaps.select("customer_id", gap_days=(gaps.o_s - gaps.prev_s) / DAY)


def gap_quantile(
    orders: ir.Table,
    as_of: dt.datetime,
    quantile: float,
    *,
    purchases: ir.Table | None = None,
) -> ir.Table:
    """One row: ``gaps`` (how many inter-purchase gaps) and ``quantile_days``.

    ``quantile_days`` is the nearest-rank quantile: the smallest gap g with at least
    ``quantile`` of all gaps <= g (computed with ``cume_dist``, identical on every backend).
    ``purchases``: a shared ``purchase_sequence(orders, as_of)``.
    """
    gaps = purchase_gaps(orders, as_of, purchases=purchases)
    # Rather than sorting every gap, count the gaps per whole day first: the quantile lies in
    # the first day whose running count reaches the quantile, and only that day's gaps are
    # ranked. Shares are integer counts over the total in float64, as cume_dist computes them.
    gaps = gaps.mutate(day=gaps.gap_days.floor().cast("int64"))
    per_day = gaps.group_by("day").aggregate(c=gaps.count())
    per_day = per_day.mutate(
        below=per_day.c.sum().over(ibis.window(order_by="day", preceding=None, following=0))
        - per_day.c,
        total=per_day.c.sum().over(ibis.window()),
    )
    reaches = (per_day.below + per_day.c).cast("float64") / per_day.total >= quantile
    day = per_day.filter(reaches).order_by("day").limit(1)
    day = day.select(q_day="day", below="below", total="total")
    inside = gaps.inner_join(day, gaps.day == day.q_day)
    values = inside.group_by("gap_days").aggregate(
        c=inside.count(), below=inside.below.max(), total=inside.total.max()
    )
    upto = values.c.sum().over(ibis.window(order_by="gap_days", preceding=None, following=0))
    values = values.mutate(share=(values.below + upto).cast("float64") / values.total)
    at_q = values.filter(values.share >= quantile).aggregate(quantile_days=values.gap_days.min())
    counted = gaps.aggregate(gaps=gaps.count())
    return counted.cross_join(at_q)


def choose_churn_window(quantile_days: float | None, gaps: int, settings: EngineSettings) -> int:
    """The data-driven churn window in whole days from the gap quantile.

    Rounded to whole days and clamped to [churn_window_floor_days, churn_window_ceiling_days];
    with fewer than ``churn_window_min_gaps`` gaps the data say too little, and the fallback
    ``churn_window_fallback_days`` is used.
    """
    if quantile_days is None or gaps < settings.churn_window_min_gaps:
        days = settings.churn_window_fallback_days
    else:
        days = round(quantile_days)
    return max(settings.churn_window_floor_days, min(settings.churn_window_ceiling_days, days))


def resolve_churn_window(
    orders: ir.Table,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    purchases: ir.Table | None = None,
) -> EngineSettings:
    """``settings`` with ``churn_window_days`` set, computing it from the data when it is None.

    This executes one query (``gap_quantile``); every other analysis expects a resolved window.
    ``purchases``: a shared ``purchase_sequence(orders, as_of)``.
    """
    if settings.churn_window_days is not None:
        return settings
    quantile = gap_quantile(orders, as_of, settings.churn_window_quantile, purchases=purchases)
    row = to_row(quantile)
    days = choose_churn_window(row["quantile_days"], int(row["gaps"]), settings)
    return replace(settings, churn_window_days=days)


def churn_window(settings: EngineSettings) -> int:
    """The resolved churn window in days; raises if it has not been resolved."""
    if settings.churn_window_days is None:
        raise ValueError(
            "settings.churn_window_days is None: set it, or resolve it from the data first with "
            "settings = resolve_churn_window(sources.orders, as_of, settings)"
        )
    return settings.churn_window_days
