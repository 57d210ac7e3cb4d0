"""Stickiness (R7, R4): traffic, conversion, repeat purchase, depth of use, DAU/WAU/MAU.

Definitions, per period ``[start, end)`` (events and paid orders in it):

- visitors: distinct customers with at least one behaviour event; sessions: distinct non-null
  ``session_id``; events; page_views / clicks: events whose ``event_type`` is one of
  ``settings.page_view_event_types`` / ``settings.click_event_types``;
- pages_per_session = page_views / sessions; clicks_per_user = clicks / visitors;
- dwell_seconds: sum of ``dwell_seconds``; dwell_per_session = dwell / sessions;
  dwell_per_user = dwell / visitors;
- active_days_per_user: distinct (customer, UTC calendar day) pairs / visitors (usage frequency);
- buyers: distinct customers with a paid order; conversion_rate: visitors who also placed a paid
  order in the period / visitors;
- repeat_purchase_rate (二次购买率): buyers with >= 2 paid orders in the period / buyers;
  cumulative_repeat_purchase_rate: customers with >= 2 paid orders before ``end`` / customers
  with >= 1 (all history, not just the period).

Ratios are null when their denominator is 0.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from loyal.engine.common import (
    DAY,
    Period,
    complete_periods,
    count_if,
    epoch,
    events_between,
    paid_orders,
    period_index,
    period_index_of,
    period_index_of_seconds,
    purchase_sequence,
    ratio,
    seconds,
    utc,
)
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import Sources

_COUNTS = (
    "visitors",
    "sessions",
    "events",
    "page_views",
    "clicks",
    "dwell_seconds",
    "active_user_days",
    "buyers",
    "orders",
    "revenue",
    "repeat_buyers",
    "converted_visitors",
    "cumulative_buyers",
    "cumulative_repeat_buyers",
)


def _attach(spine: ir.Table, agg: ir.Table) -> ir.Table:
    agg = agg.rename(a_idx="idx")
    joined = spine.left_join(agg, spine.idx == agg.a_idx)
    return joined.drop("a_idx")


def _stickiness(
    sources: Sources,
    grid: Sequence[Period],
    freq: str | None,
    settings: EngineSettings,
    purchases: ir.Table | None,
) -> ir.Table:
    # Periods are numbered by integers (``period_index``; 0 for one window without a calendar
    # period), cheaper to compute and group by than truncated dates.
    start, end = grid[0].start, grid[-1].end
    start_s, end_s = epoch(start), epoch(end)

    def index(ts: ir.TimestampValue) -> ir.IntegerValue:
        return ibis.literal(0, "int64") if freq is None else period_index(ts, freq)

    ev = events_between(sources.events, start, end)
    # Only the columns read below: the events are read by several aggregations, and DuckDB
    # materialises the rows they share.
    ev = ev.select(
        "customer_id",
        "session_id",
        "event_type",
        "dwell_seconds",
        idx=index(ev.occurred_at),
        day=seconds(ev.occurred_at) // DAY,
    )
    e_agg = ev.group_by("idx").aggregate(
        sessions=ev.session_id.nunique(),
        events=ev.count(),
        page_views=count_if(ev.event_type.isin(settings.page_view_event_types)),
        clicks=count_if(ev.event_type.isin(settings.click_event_types)),
        dwell_seconds=ev.dwell_seconds.sum(),
    )
    # Distinct customer-days give the active days, and the visitors (one row per customer and
    # period) are read off them rather than off the events again.
    days = ev.select("idx", "customer_id", "day").distinct()
    d_agg = days.group_by("idx").aggregate(active_user_days=days.count())
    visitors = days.select("idx", "customer_id").distinct()
    v_agg = visitors.group_by("idx").aggregate(visitors=visitors.count())

    if purchases is not None and freq == "month":
        # Calendar months straight from the sequence: a customer's first order of a month
        # makes them a buyer in it, and a repeat buyer when their next order is in that month.
        od = purchases.filter((purchases.o_s >= start_s) & (purchases.o_s < end_s))
        od = od.mutate(idx=od.month.cast("int64"))
        o_agg = od.group_by("idx").aggregate(
            buyers=count_if(od.new_month),
            orders=od.count(),
            revenue=od.revenue.sum(),
            repeat_buyers=count_if(od.new_month & (od.next_month == od.month)),
        )
        firsts = od.filter(od.new_month)
        buyers = firsts.select(b_idx="idx", b_customer_id="customer_id")
    else:
        if purchases is None:
            od = paid_orders(sources.orders, end, since=start)
            od = od.select("customer_id", idx=index(od.ordered_at), revenue=od.revenue)
        else:
            od = purchases.filter((purchases.o_s >= start_s) & (purchases.o_s < end_s))
            idx = (
                ibis.literal(0, "int64") if freq is None else period_index_of_seconds(od.o_s, freq)
            )
            od = od.select("customer_id", "revenue", idx=idx)
        per_buyer = od.group_by(["idx", "customer_id"]).aggregate(
            n=od.count(), rev=od.revenue.sum()
        )
        o_agg = per_buyer.group_by("idx").aggregate(
            buyers=per_buyer.count(),
            orders=per_buyer.n.sum(),
            revenue=per_buyer.rev.sum(),
            repeat_buyers=count_if(per_buyer.n >= 2),
        )
        buyers = per_buyer.select(b_idx="idx", b_customer_id="customer_id")
    conv = visitors.inner_join(
        buyers, (visitors.idx == buyers.b_idx) & (visitors.customer_id == buyers.b_customer_id)
    )
    c_agg = conv.group_by("idx").aggregate(converted_visitors=conv.count())

    # Cumulative repeat purchase: when did each customer place their first and second order?
    # (Orders at or after ``end`` do not change which orders come before ``end``, so a
    # sequence of the orders before a later as_of gives the same counts.)
    if purchases is None:
        purchases = purchase_sequence(sources.orders, end)
    # A customer's second order is the next one after their first: one row each, no grouping.
    first = purchases.filter(purchases.n == 1)
    if freq is None:
        first_idx = second_idx = ibis.literal(0, "int64")
    elif freq == "month":
        first_idx, second_idx = first.month.cast("int64"), first.next_month.cast("int64")
    else:
        first_idx = period_index_of_seconds(first.o_s, freq)
        second_idx = period_index_of_seconds(first.next_s, freq)
    ptable = ibis.memtable(
        {
            "period": [p.start.date() for p in grid],
            "idx": [0 if freq is None else period_index_of(p.start, freq) for p in grid],
        },
        schema={"period": "date", "idx": "int64"},
    )
    # Counted in the period of the first (second) order, orders before the grid in its first
    # period; the cumulative counts are then running sums over the periods (the periods are
    # consecutive, so an order before a period's end is one in that period or an earlier one).
    first_idx_of_grid = ibis.literal(0 if freq is None else period_index_of(grid[0].start, freq))

    def counted_in(order_s: ir.IntegerValue, idx: ir.IntegerValue, name: str) -> ir.Table:
        bucket = ibis.greatest(idx, first_idx_of_grid)
        marks = first.select(idx=ibis.ifelse(order_s < end_s, bucket, ibis.null("int64")))
        marks = marks.filter(marks.idx.notnull())
        return marks.group_by("idx").aggregate(**{name: marks.count()})

    cum = _attach(ptable.select("idx"), counted_in(first.o_s, first_idx, "new_buyers"))
    cum = _attach(cum, counted_in(first.next_s, second_idx, "new_repeat_buyers"))
    running = ibis.cumulative_window(order_by="idx")
    cum = cum.select(
        "idx",
        cumulative_buyers=cum.new_buyers.fill_null(0).sum().over(running),
        cumulative_repeat_buyers=cum.new_repeat_buyers.fill_null(0).sum().over(running),
    )

    t = ptable.select("period", "idx")
    for agg in (v_agg, e_agg, d_agg, o_agg, c_agg, cum):
        t = _attach(t, agg)
    t = t.mutate(**{c: t[c].fill_null(0) for c in _COUNTS})
    t = t.select("period", *_COUNTS)
    return t.mutate(
        pages_per_session=ratio(t.page_views, t.sessions),
        clicks_per_user=ratio(t.clicks, t.visitors),
        dwell_per_session=ratio(t.dwell_seconds, t.sessions),
        dwell_per_user=ratio(t.dwell_seconds, t.visitors),
        active_days_per_user=ratio(t.active_user_days, t.visitors),
        conversion_rate=ratio(t.converted_visitors, t.visitors),
        repeat_purchase_rate=ratio(t.repeat_buyers, t.buyers),
        cumulative_repeat_purchase_rate=ratio(t.cumulative_repeat_buyers, t.cumulative_buyers),
    ).order_by("period")


def stickiness(
    sources: Sources,
    start: dt.datetime,
    end: dt.datetime,
    settings: EngineSettings,
    *,
    purchases: ir.Table | None = None,
) -> ir.Table:
    """Every stickiness indicator of the module docstring for ``[start, end)``: one row.

    ``purchases``: a shared ``purchase_sequence(sources.orders, as_of)`` for an as_of at or
    after ``end`` (built here when None).
    """
    start, end = utc(start, "start"), utc(end, "end")
    if not start < end:
        raise ValueError(f"start {start.isoformat()} must be before end {end.isoformat()}")
    return _stickiness(sources, [Period(start, end)], None, settings, purchases)


def stickiness_trend(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    freq: str | None = None,
    periods: int | None = None,
    purchases: ir.Table | None = None,
) -> ir.Table:
    """The stickiness indicators per complete calendar day, week or month before ``as_of``.

    One row per period, oldest first, periods without activity included with zero counts.
    With ``freq="day"``, ``visitors`` is the daily active users (DAU) series. ``purchases``: a
    shared ``purchase_sequence(sources.orders, as_of)`` (built here when None).
    """
    freq = freq or settings.trend_freq
    grid = complete_periods(as_of, freq, periods or settings.trend_periods)
    return _stickiness(sources, grid, freq, settings, purchases)


def active_users(events: ir.Table, as_of: dt.datetime, settings: EngineSettings) -> ir.Table:
    """DAU, WAU, MAU and their ratios as of ``as_of``: one row.

    - mau: distinct customers with an event in the last ``mau_days`` days (30);
    - wau: the same over the last ``wau_days`` days (7);
    - dau: the average over the last ``mau_days`` days of the distinct customers active each day
      (days counted back from ``as_of`` in 24-hour steps; a day without events counts as 0);
    - dau_mau = dau / mau (the classic stickiness ratio), wau_mau = wau / mau.
    """
    as_of = utc(as_of)
    start = as_of - dt.timedelta(days=settings.mau_days)
    week_start_s = epoch(as_of - dt.timedelta(days=settings.wau_days))
    ev = events_between(events, start, as_of)
    day_no = (seconds(ev.occurred_at) - epoch(start)) // DAY
    pairs = ev.select("customer_id", day_no=day_no).distinct()
    daily = pairs.aggregate(active_user_days=pairs.count())
    counts = ev.aggregate(
        mau=ev.customer_id.nunique(),
        wau=ibis.cases(
            (seconds(ev.occurred_at) >= week_start_s, ev.customer_id), else_=ibis.null("int64")
        ).nunique(),
    )
    t = counts.cross_join(daily)
    t = t.mutate(dau=t.active_user_days.cast("float64") / settings.mau_days)
    return t.select("dau", "wau", "mau", dau_mau=ratio(t.dau, t.mau), wau_mau=ratio(t.wau, t.mau))
