"""Churn (R6): who is lost, absolute and relative churn rates, trends, churn by complaints.

Definitions
-----------
*Coverage.* Every customer's activity is a set of covered intervals of time:

- a customer with at least one subscription started before ``as_of`` is judged by subscriptions
  only (the contractual setting): each subscription covers ``[started_at, ended_at + grace)``,
  an unended one (or one ending after ``as_of``) covers everything from its start;
- any other customer is judged by paid orders (the non-contractual setting): each paid order
  covers ``[ordered_at, ordered_at + churn window)``.

Overlapping intervals merge into *spells* (``activity_spells``). A customer is *active* at
instant ``t`` when a spell covers ``t``, and *lost* at the instant the spell lapses: a subscription
that ended and was not renewed within the grace period, or a churn window with no paid order. A
lapse is observable at the moment it happens, so churn at ``t`` never looks at data after ``t``.

*Churn in a period* ``[start, end)``: the customers active at ``start``; the lost ones are those
no longer active at ``end`` (plus, when a P(alive) table is given and ``end`` is ``as_of``,
customers whose P(alive) is below ``settings.p_alive_churn_threshold``).

*Rates* (seed 004): absolute churn rate = lost / all; relative churn rate = absolute rate ×
(average purchase of the lost customers / average purchase of all customers), where a customer's
purchase is the money they paid in the ``churn_value_lookback_days`` before the period end: paid
order revenue plus subscription fees (``monthly_amount`` pro rata for the time running).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from loyal.engine.churn_window import churn_window
from loyal.engine.common import (
    DAY,
    MONTH_DAYS,
    Period,
    complete_periods,
    count_if,
    epoch,
    purchase_sequence,
    ratio,
    seconds,
    utc,
)
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import Sources

# Reach of a coverage that has not ended: 9999-12-31T23:59:59Z in epoch seconds.
OPEN_END = 253_402_300_799


# --- Coverage spells ---------------------------------------------------------------------------


def activity_spells(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    purchases: ir.Table | None = None,
) -> ir.Table:
    """Each customer's spells of continuous coverage, from data before ``as_of``.

    Columns: customer_id, basis ('subscription' or 'purchase'), spell_no (1 = first),
    start_s (epoch seconds the spell began), reach_s (epoch seconds it lapses;
    ``OPEN_END`` while a subscription runs), last_s (last order, or last subscription end;
    null while running). A customer is active at t when start_s <= t < reach_s.
    ``purchases``: a shared ``purchase_sequence(sources.orders, as_of)`` (built here when None).
    """
    as_of = utc(as_of)
    window_s = churn_window(settings) * DAY
    grace_s = settings.subscription_grace_days * DAY

    subs = sources.subscriptions.filter(sources.subscriptions.started_at < as_of)
    ended = subs.ended_at.notnull() & (subs.ended_at < as_of)
    sub_iv = subs.select(
        customer_id=subs.customer_id,
        basis=ibis.literal("subscription"),
        start_s=seconds(subs.started_at),
        reach_s=ibis.cases((ended, seconds(subs.ended_at) + grace_s), else_=OPEN_END),
    )
    # Subscriptions vary in length: an interval starts a new spell when it begins at or after
    # the furthest reach of every earlier interval of the customer (gaps and islands).
    order_by = ["start_s", "reach_s"]
    running = ibis.window(group_by="customer_id", order_by=order_by, preceding=None, following=0)
    sub_iv = sub_iv.mutate(run_reach=sub_iv.reach_s.max().over(running))
    sub_iv = sub_iv.mutate(
        prev_reach=sub_iv.run_reach.lag().over(
            ibis.window(group_by="customer_id", order_by=order_by)
        )
    )
    starts_new = sub_iv.prev_reach.isnull() | (sub_iv.start_s >= sub_iv.prev_reach)
    sub_iv = sub_iv.mutate(new=ibis.cases((starts_new, 1), else_=0))
    sub_iv = sub_iv.mutate(spell_no=sub_iv.new.sum().over(running).cast("int64"))
    sub_spells = sub_iv.group_by(["customer_id", "basis", "spell_no"]).aggregate(
        start_s=sub_iv.start_s.min(), reach_s=sub_iv.reach_s.max()
    )
    sub_spells = sub_spells.mutate(
        last_s=ibis.cases(
            (sub_spells.reach_s >= OPEN_END, ibis.null("int64")),
            else_=sub_spells.reach_s - grace_s,
        ).cast("int64")
    )

    # Orders all cover the same window, so the previous and next orders alone tell whether an
    # order starts or ends a spell; only those boundary orders are numbered into spells.
    if purchases is None:
        purchases = purchase_sequence(sources.orders, as_of)
    o = purchases.anti_join(subs.select("customer_id").distinct(), "customer_id")
    starts = o.prev_s.isnull() | (o.o_s - o.prev_s >= window_s)
    ends = o.next_s.isnull() | (o.next_s - o.o_s >= window_s)
    b = o.filter(starts | ends).select("customer_id", "n", "o_s", starts=starts, ends=ends)
    cumulative = ibis.window(group_by="customer_id", order_by="n", preceding=None, following=0)
    b = b.mutate(
        spell_no=ibis.cases((b.starts, 1), else_=0).sum().over(cumulative).cast("int64"),
        # The end of a spell that does not end on its first order is the next boundary order.
        next_boundary_s=b.o_s.lead().over(ibis.window(group_by="customer_id", order_by="n")),
    )
    b = b.filter(b.starts)
    last_s = ibis.cases((b.ends, b.o_s), else_=b.next_boundary_s).cast("int64")
    order_spells = b.select(
        "customer_id",
        basis=ibis.literal("purchase"),
        spell_no="spell_no",
        start_s="o_s",
        reach_s=last_s + window_s,
        last_s=last_s,
    )
    return sub_spells.union(order_spells, distinct=False)


def periods_table(periods: Sequence[Period]) -> ir.Table:
    """A small in-memory table of periods: p_period (its first day), p_start_s, p_end_s.

    The ``p_`` prefix keeps its columns apart from source columns (subscriptions have a
    ``period``) in joins.
    """
    if not periods:
        raise ValueError("periods is empty: give at least one Period")
    return ibis.memtable(
        {
            "p_period": [p.start.date() for p in periods],
            "p_start_s": [epoch(p.start) for p in periods],
            "p_end_s": [epoch(p.end) for p in periods],
        },
        schema={"p_period": "date", "p_start_s": "int64", "p_end_s": "int64"},
    )


def subscription_fees(
    subscriptions: ir.Table, periods: ir.Table, lookback_days: int | None
) -> ir.Table:
    """Subscription fees accrued in ``[p_end - lookback, p_end)`` for each period of ``periods``.

    Columns: period, customer_id, value: ``monthly_amount`` per average month
    (365.25 / 12 days), pro rata for the time each subscription ran in the window.
    """
    # Epoch seconds before the cross join: computed once per row, not once per period.
    subs = subscriptions.select(
        "customer_id",
        start_s=seconds(subscriptions.started_at),
        end_s=seconds(subscriptions.ended_at).fill_null(OPEN_END),
        mrr=subscriptions.monthly_amount.fill_null(0.0),
    )
    sj = subs.cross_join(periods)
    lo = sj.start_s
    if lookback_days is not None:
        lo = ibis.greatest(lo, sj.p_end_s - lookback_days * DAY)
    hi = ibis.least(sj.end_s, sj.p_end_s)
    fees = sj.filter(hi > lo).select(
        period=sj.p_period,
        customer_id=sj.customer_id,
        value=sj.mrr * ((hi - lo) / (DAY * MONTH_DAYS)),
    )
    return fees.group_by(["period", "customer_id"]).aggregate(value=fees.value.sum())


def customer_value(sources: Sources, periods: ir.Table, lookback_days: int | None) -> ir.Table:
    """Money each customer paid in ``[p_end - lookback, p_end)`` for each period of ``periods``.

    Columns: period, customer_id, value: paid order revenue plus ``subscription_fees``.
    (A sweep of orders and window bounds with a running sum was tried instead of this join of
    orders with the few periods: on DuckDB the partitioned sort costs more than the join.)
    """
    o = sources.orders.filter(sources.orders.status == "paid")
    # Epoch seconds before the join: computed once per order, not once per period.
    o = o.select("customer_id", o_s=seconds(o.ordered_at), revenue=o.revenue.fill_null(0.0))
    oj = o.cross_join(periods)
    in_window = oj.o_s < oj.p_end_s
    if lookback_days is not None:
        in_window = in_window & (oj.o_s >= oj.p_end_s - lookback_days * DAY)
    order_value = oj.filter(in_window).select(
        period=oj.p_period, customer_id=oj.customer_id, value=oj.revenue
    )
    fees = subscription_fees(sources.subscriptions, periods, lookback_days)
    both = order_value.union(fees, distinct=False)
    return both.group_by(["period", "customer_id"]).aggregate(value=both.value.sum())


def churn_flags(
    sources: Sources,
    periods: Sequence[Period],
    as_of: dt.datetime,
    settings: EngineSettings,
    p_alive: ir.Table | None = None,
    *,
    spells: ir.Table | None = None,
    purchases: ir.Table | None = None,
) -> ir.Table:
    """For each period, the customers active at its start and whether they were lost by its end.

    Columns: period, customer_id, basis, lost (bool), value (see ``customer_value``).
    ``p_alive`` (customer_id, p_alive) marks the customers in it whose P(alive) is below
    ``settings.p_alive_churn_threshold`` as lost in periods that end at ``as_of``.
    ``spells``: ``activity_spells(sources, as_of, settings)`` computed once and shared (e.g.
    cached) by several analyses; built here when None. ``purchases``: likewise a shared
    ``purchase_sequence(sources.orders, as_of)``.
    """
    as_of = utc(as_of)
    for p in periods:
        if p.end > as_of:
            raise ValueError(
                f"period {p.start.isoformat()}..{p.end.isoformat()} ends after as_of "
                f"{as_of.isoformat()}: churn in it is not known yet"
            )
    ptable = periods_table(periods)
    if purchases is None:
        purchases = purchase_sequence(sources.orders, as_of)
    if spells is None:
        spells = activity_spells(sources, as_of, settings, purchases=purchases)
    # Spells of a customer never overlap, so at most one covers a given instant. Two range
    # joins (DuckDB runs them as IEJoins) instead of a cross join with an OR.
    starts = spells.inner_join(
        ptable, [spells.start_s <= ptable.p_start_s, ptable.p_start_s < spells.reach_s]
    ).select("p_period", "p_end_s", "customer_id", "basis")
    ends = spells.inner_join(
        ptable, [spells.start_s <= ptable.p_end_s, ptable.p_end_s < spells.reach_s]
    ).select(e_period="p_period", e_customer_id="customer_id")
    status = starts.left_join(
        ends, (starts.p_period == ends.e_period) & (starts.customer_id == ends.e_customer_id)
    )
    status = status.mutate(active_end=status.e_customer_id.notnull())
    lost = ~status.active_end
    if p_alive is not None:
        scores = p_alive.select(pa_customer_id=p_alive.customer_id, p_alive=p_alive.p_alive)
        status = status.left_join(scores, status.customer_id == scores.pa_customer_id)
        low = (status.p_end_s == epoch(as_of)) & (status.p_alive < settings.p_alive_churn_threshold)
        lost = ~status.active_end | low.fill_null(False)
    flags = status.select(
        period=status.p_period, customer_id=status.customer_id, basis=status.basis, lost=lost
    )
    lookback = settings.churn_value_lookback_days
    # The value of ``customer_value``, without joining every order with every period: one pass
    # over the orders sums each customer's revenue in each period's window (a column per
    # period), and each flagged row picks its period's column. Periods end by as_of, so the
    # paid orders before as_of are all there is to sum.
    o = purchases
    sums = {}
    for i, p in enumerate(periods):
        in_window = o.o_s < epoch(p.end)
        if lookback is not None:
            in_window = in_window & (o.o_s >= epoch(p.end) - lookback * DAY)
        sums[f"v_{i}"] = ibis.cases((in_window, o.revenue), else_=ibis.null("float64")).sum()
    sales = o.group_by(v_customer_id=o.customer_id).aggregate(**sums)
    out = flags.left_join(sales, flags.customer_id == sales.v_customer_id)
    order_value = ibis.cases(
        *[(out.period == p.start.date(), out[f"v_{i}"]) for i, p in enumerate(periods)],
        else_=ibis.null("float64"),
    )
    out = out.select("period", "customer_id", "basis", "lost", o_value=order_value)
    fees = subscription_fees(sources.subscriptions, ptable, lookback)
    fees = fees.rename(f_period="period", f_customer_id="customer_id", f_value="value")
    out = out.left_join(
        fees, (out.period == fees.f_period) & (out.customer_id == fees.f_customer_id)
    )
    value = ibis.cases(
        (out.o_value.isnull(), out.f_value),
        (out.f_value.isnull(), out.o_value),
        else_=out.o_value + out.f_value,
    )
    return out.select("period", "customer_id", "basis", "lost", value=value.fill_null(0.0))


def churn_rates(flags: ir.Table, by: Sequence[str] = ()) -> ir.Table:
    """The seed-004 churn formulas over a table of customers with ``lost`` and ``value``.

    Per group of ``by``: customers, lost, absolute_churn_rate = lost / customers,
    value_mean (average purchase of all), lost_value_mean (average purchase of the lost),
    relative_churn_rate = absolute_churn_rate × lost_value_mean / value_mean
    (null when there are no lost customers to average, or value_mean is 0).
    """
    g = flags.group_by(list(by)) if by else flags
    agg = g.aggregate(
        customers=flags.count(),
        lost_customers=count_if(flags.lost),
        value_mean=flags.value.mean(),
        lost_value_mean=ibis.cases((flags.lost, flags.value), else_=ibis.null("float64")).mean(),
    )
    return _with_rates(agg)


def _with_rates(agg: ir.Table) -> ir.Table:
    # The rates of ``churn_rates`` from its counts and means.
    absolute = ratio(agg.lost_customers, agg.customers)
    relative = ibis.cases(
        (agg.lost_customers == 0, ibis.literal(0.0)),
        else_=absolute * ratio(agg.lost_value_mean, agg.value_mean),
    )
    return agg.mutate(absolute_churn_rate=absolute, relative_churn_rate=relative)


def churn_per_period(
    sources: Sources,
    periods: Sequence[Period],
    as_of: dt.datetime,
    settings: EngineSettings,
    p_alive: ir.Table | None = None,
    *,
    by: Sequence[str] = (),
    segments: ir.Table | None = None,
    spells: ir.Table | None = None,
    purchases: ir.Table | None = None,
    drop_empty: bool = True,
) -> ir.Table:
    """``churn_rates`` of ``churn_flags`` for each period (and ``by`` group), computed per
    customer rather than per customer and period.

    The same numbers as ``churn_rates(churn_flags(...), ["period", *by])``: each customer's
    row holds, for every period, whether a spell covers its start and its end and the value
    (order revenue and subscription fees in the lookback), and one aggregation counts every
    period at once. Periods without customers active at their start have no row, unless
    ``drop_empty`` is False (one period and no ``by``: the row of ``churn_rates`` over no one).
    """
    columns = churn_period_columns(
        sources,
        periods,
        as_of,
        settings,
        p_alive,
        by=by,
        segments=segments,
        spells=spells,
        purchases=purchases,
    )
    return churn_period_rows(columns, periods, by=by, drop_empty=drop_empty)


def churn_period_columns(
    sources: Sources,
    periods: Sequence[Period],
    as_of: dt.datetime,
    settings: EngineSettings,
    p_alive: ir.Table | None = None,
    *,
    by: Sequence[str] = (),
    segments: ir.Table | None = None,
    spells: ir.Table | None = None,
    purchases: ir.Table | None = None,
) -> ir.Table:
    """The one aggregation of ``churn_per_period``: a row per ``by`` group (one row without),
    with the columns customers_i, lost_i, value_mean_i and lost_value_mean_i of each period i.

    Each period's columns depend on that period alone, so ``run_all`` aggregates the trend's
    periods and the KPI period at once and reads both off the result (``churn_period_rows``).
    """
    as_of = utc(as_of)
    for p in periods:
        if p.end > as_of:
            raise ValueError(
                f"period {p.start.isoformat()}..{p.end.isoformat()} ends after as_of "
                f"{as_of.isoformat()}: churn in it is not known yet"
            )
    if purchases is None:
        purchases = purchase_sequence(sources.orders, as_of)
    if spells is None:
        spells = activity_spells(sources, as_of, settings, purchases=purchases)
    ends = [epoch(p.end) for p in periods]
    lookback = settings.churn_value_lookback_days

    def covers(instant: int) -> ir.BooleanValue:
        # Any spell covering the instant (null as false, as a count of them > 0 would have it);
        # cheaper than counting them.
        return ((spells.start_s <= instant) & (instant < spells.reach_s)).any().fill_null(False)

    # A customer's spells all have the same basis.
    t = spells.group_by(["customer_id", "basis"]).aggregate(
        **{f"a_{i}": covers(epoch(p.start)) for i, p in enumerate(periods)},
        **{f"e_{i}": covers(end) for i, end in enumerate(ends)},
    )
    t = t.filter(ibis.or_(*[t[f"a_{i}"] for i in range(len(periods))]))

    # Only the orders inside some period's lookback are summed.
    o = purchases.filter(purchases.o_s < max(ends))
    if lookback is not None:
        o = o.filter(o.o_s >= min(ends) - lookback * DAY)
    sales = {}
    for i, end in enumerate(ends):
        in_window = o.o_s < end
        if lookback is not None:
            in_window = in_window & (o.o_s >= end - lookback * DAY)
        sales[f"v_{i}"] = ibis.cases((in_window, o.revenue), else_=ibis.null("float64")).sum()
    orders_value = o.group_by(v_customer_id=o.customer_id).aggregate(**sales)
    t = t.left_join(orders_value, t.customer_id == orders_value.v_customer_id).drop("v_customer_id")
    fees = subscription_fees(sources.subscriptions, periods_table(periods), lookback)
    fees = fees.group_by(f_customer_id=fees.customer_id).aggregate(
        **{
            f"f_{i}": ibis.cases((fees.period == p.start.date(), fees.value)).sum()
            for i, p in enumerate(periods)
        }
    )
    t = t.left_join(fees, t.customer_id == fees.f_customer_id).drop("f_customer_id")
    if p_alive is not None:
        scores = p_alive.select(pa_customer_id=p_alive.customer_id, p_alive=p_alive.p_alive)
        t = t.left_join(scores, t.customer_id == scores.pa_customer_id).drop("pa_customer_id")
    t = _segmented(t, by, segments, sources)

    aggregates = {}
    for i, end in enumerate(ends):
        active, lost = t[f"a_{i}"], ~t[f"e_{i}"]
        if p_alive is not None and end == epoch(as_of):
            lost = lost | (t.p_alive < settings.p_alive_churn_threshold).fill_null(False)
        value = t[f"v_{i}"].fill_null(0.0) + t[f"f_{i}"].fill_null(0.0)
        # Counting the customers (not summing flags) makes it 0, not null, over no rows.
        aggregates[f"customers_{i}"] = ibis.cases((active, 1)).count()
        aggregates[f"lost_{i}"] = count_if(active & lost)
        aggregates[f"value_mean_{i}"] = ibis.cases((active, value)).mean()
        aggregates[f"lost_value_mean_{i}"] = ibis.cases((active & lost, value)).mean()
    return t.group_by(list(by)).aggregate(**aggregates) if by else t.aggregate(**aggregates)


def churn_period_rows(
    columns: ir.Table,
    periods: Sequence[Period],
    *,
    by: Sequence[str] = (),
    first: int = 0,
    drop_empty: bool = True,
) -> ir.Table:
    """The rows of ``churn_per_period`` from its ``churn_period_columns``: ``periods`` are those
    whose columns are numbered from ``first`` on (``drop_empty`` as in ``churn_per_period``)."""
    numbers = range(first, first + len(periods))
    index = ibis.memtable(
        {"i": list(numbers), "period": [p.start.date() for p in periods]},
        schema={"i": "int64", "period": "date"},
    )
    # One row per period and group: pick each period's columns.
    rows = columns.cross_join(index)

    def pick(name: str) -> ir.Value:
        return ibis.cases(*[(rows.i == i, rows[f"{name}_{i}"]) for i in numbers])

    rows = rows.select(
        "period",
        *by,
        customers=pick("customers"),
        lost_customers=pick("lost"),
        value_mean=pick("value_mean"),
        lost_value_mean=pick("lost_value_mean"),
    )
    if drop_empty:
        rows = rows.filter(rows.customers > 0)
    return _with_rates(rows)


def _segmented(flags: ir.Table, by: Sequence[str], segments: ir.Table | None, sources: Sources):
    if not by:
        return flags
    seg = sources.customers if segments is None else segments
    missing = [c for c in by if c not in seg.columns]
    if missing:
        raise ValueError(f"segment column(s) {missing} not found; available: {sorted(seg.columns)}")
    seg = seg.select(s_customer_id=seg.customer_id, **{c: seg[c] for c in by})
    joined = flags.left_join(seg, flags.customer_id == seg.s_customer_id)
    return joined.drop("s_customer_id")


def default_period(as_of: dt.datetime, settings: EngineSettings) -> Period:
    """The KPI period ``[as_of - kpi_period_days, as_of)``."""
    as_of = utc(as_of)
    return Period(as_of - dt.timedelta(days=settings.kpi_period_days), as_of)


def churn_rate(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    start: dt.datetime | None = None,
    by: Sequence[str] = (),
    segments: ir.Table | None = None,
    p_alive: ir.Table | None = None,
    spells: ir.Table | None = None,
    purchases: ir.Table | None = None,
) -> ir.Table:
    """Absolute and relative churn in ``[start, as_of)`` (default: the KPI period), per ``by``.

    ``by`` names customer columns (of ``sources.customers``, or of ``segments``, any table with
    customer_id) to split the rate by segment. Columns: the ``by`` columns, customers,
    lost_customers, value_mean, lost_value_mean, absolute_churn_rate, relative_churn_rate.
    ``spells`` and ``purchases``: shared tables, as in ``churn_flags``.
    """
    period = default_period(as_of, settings) if start is None else Period(utc(start), utc(as_of))
    rates = churn_per_period(
        sources,
        [period],
        as_of,
        settings,
        p_alive,
        by=by,
        segments=segments,
        spells=spells,
        purchases=purchases,
        drop_empty=bool(by),
    )
    return rates.drop("period")


def churn_trend(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    freq: str | None = None,
    periods: int | None = None,
    by: Sequence[str] = (),
    segments: ir.Table | None = None,
    spells: ir.Table | None = None,
    purchases: ir.Table | None = None,
) -> ir.Table:
    """Churn per complete calendar period before ``as_of`` (default: the last 12 months).

    One row per period (and ``by`` group): period (first day), customers active at its start,
    lost during it, and the rates as in ``churn_rates``. ``spells`` and ``purchases``: shared
    tables, as in ``churn_flags``.
    """
    grid = complete_periods(as_of, freq or settings.trend_freq, periods or settings.trend_periods)
    return churn_per_period(
        sources,
        grid,
        as_of,
        settings,
        by=by,
        segments=segments,
        spells=spells,
        purchases=purchases,
    ).order_by(["period", *by])


COMPLAINT_STATUSES = ("none", "resolved", "unresolved")


def complaint_churn(customers: ir.Table, interactions: ir.Table, as_of: dt.datetime) -> ir.Table:
    """Churn among buyers by their complaint experience before ``as_of`` (seed 000, third article).

    ``customers`` is the per-customer table (customer_id, stage, churned). A buyer is anyone
    whose stage is not a prospect stage. complaint_status: "unresolved" if any complaint
    (interaction of kind 'complaint') before ``as_of`` has outcome 'unresolved', else "resolved"
    if they complained at all, else "none". Columns: complaint_status, customers, churned,
    churn_rate (churned / customers).
    """
    i = interactions.filter(
        (interactions.kind == "complaint") & (interactions.occurred_at < utc(as_of))
    )
    complained = i.group_by(c_id=i.customer_id).aggregate(
        unresolved=(i.outcome == "unresolved").cast("int64").sum()
    )
    buyers = customers.filter(~customers.stage.isin(("prospect", "potential_intent", "intent")))
    t = buyers.left_join(complained, buyers.customer_id == complained.c_id)
    status = ibis.cases(
        (t.unresolved > 0, "unresolved"), (t.c_id.notnull(), "resolved"), else_="none"
    )
    t = t.select(complaint_status=status, churned=t.churned.cast("int64"))
    grouped = t.group_by("complaint_status").aggregate(customers=t.count(), churned=t.churned.sum())
    return grouped.mutate(
        churn_rate=grouped.churned.cast("float64") / grouped.customers.cast("float64")
    ).order_by("complaint_status")
