"""Cohorts (R8-R10): retention matrices, the loyalty ladder, the critical window, tenure curves.

All of these count paid orders before ``as_of``. Months are calendar months in UTC, numbered by
``month_index`` (``year * 12 + month - 1``); a month is *complete* when it ends at or before the
start of ``as_of``'s month, and a cell that needs an incomplete month is left out rather than
shown with a misleadingly low rate.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from loyal.engine.common import (
    DAY,
    MONTH_DAYS,
    count_if,
    epoch,
    month_index,
    month_index_of,
    purchase_sequence,
    ratio,
    seconds,
    utc,
)
from loyal.engine.settings import CRITICAL_WINDOW_ANCHORS, EngineSettings
from loyal.engine.sources import Sources
from loyal.engine.survival import subscription_durations


def _int_range(name: str, stop: int) -> ir.Table:
    return ibis.memtable({name: list(range(stop))}, schema={name: "int64"})


def cohort_retention(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    by: str | None = None,
    periods: int | None = None,
    purchases: ir.Table | None = None,
) -> ir.Table:
    """Retention matrix by first-purchase cohort (R8), or by a customer column.

    Customers are grouped by the month of their first paid order (``by=None``; the ``cohort``
    column is that month's first day) or by the value of customer column ``by`` (e.g.
    ``"acquisition_channel"``). Period k is the k-th month after the customer's first purchase
    month (k = 0 is that month). For each cohort and k in 0..periods-1:

    - customers: cohort members whose month k is complete (so month cohorts keep their size);
    - active, retention = active / customers: members with a paid order in month k
      ("recurring" retention);
    - active_on_or_after, retention_on_or_after: members with a paid order in month k or any
      later month before ``as_of`` ("on or after" retention, which never rises with k).

    ``purchases``: a shared ``purchase_sequence(sources.orders, as_of)`` (built here when None).
    """
    as_of = utc(as_of)
    periods = periods or settings.cohort_periods
    if purchases is None:
        purchases = purchase_sequence(sources.orders, as_of)
    # Each order carries its customer's first month: no join with the first orders.
    months = purchases.filter(purchases.new_month)
    act = months.select("customer_id", k=(months.month - months.first_month).cast("int64"))
    # A customer's last active month is the month of their last order (the only one without a
    # next order): read off the sequence rather than grouping the active months.
    lasts = purchases.filter(purchases.next_s.isnull())
    members = lasts.select(
        "customer_id",
        first_m=lasts.first_month.cast("int64"),
        last_k=(lasts.month - lasts.first_month).cast("int64"),
    )
    # The last complete month is the one before as_of's month.
    members = members.mutate(max_k=month_index_of(as_of) - 1 - members.first_m)
    if by is None:
        members = members.mutate(cohort=_month_start_date(members.first_m))
    else:
        cust = sources.customers
        if by not in cust.columns:
            raise ValueError(f"cohort column {by!r} not in customers; have {sorted(cust.columns)}")
        cust = cust.select(c_customer_id=cust.customer_id, cohort=cust[by])
        members = members.left_join(cust, members.customer_id == cust.c_customer_id)
        members = members.drop("c_customer_id")

    # Count members per (cohort, max_k, last_k) before spreading them over the periods: the
    # grid then has a few thousand rows, not customers x periods.
    shapes = members.group_by(["cohort", "max_k", "last_k"]).aggregate(n=members.count())
    grid = shapes.cross_join(_int_range("k", periods))
    grid = grid.filter(grid.k <= grid.max_k)
    sizes = grid.group_by(["cohort", "k"]).aggregate(
        customers=grid.n.sum().cast("int64"),
        active_on_or_after=ibis.cases((grid.last_k >= grid.k, grid.n), else_=0).sum().cast("int64"),
    )
    hits = act.inner_join(members.select("customer_id", "cohort", "max_k"), "customer_id")
    hits = hits.filter((hits.k <= hits.max_k) & (hits.k < periods))
    active = hits.group_by(["cohort", "k"]).aggregate(active=hits.count())
    active = active.rename(a_cohort="cohort", a_k="k")
    out = sizes.left_join(
        active,
        ((sizes.cohort == active.a_cohort) | (sizes.cohort.isnull() & active.a_cohort.isnull()))
        & (sizes.k == active.a_k),
    )
    out = out.select(
        "cohort",
        period=out.k,
        customers=out.customers,
        active=out.active.fill_null(0),
        active_on_or_after=out.active_on_or_after,
    )
    return out.mutate(
        retention=ratio(out.active, out.customers),
        retention_on_or_after=ratio(out.active_on_or_after, out.customers),
    ).order_by(["cohort", "period"])


def _month_start_date(m: ir.IntegerValue) -> ir.DateValue:
    return ibis.date((m // 12).cast("int32"), (m % 12 + 1).cast("int32"), 1)


def loyalty_ladder(
    orders: ir.Table,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    purchases: ir.Table | None = None,
) -> ir.Table:
    """Retention by number of purchases made (R8, "five purchases make a loyal customer").

    For n = 1..``ladder_max_purchases``:

    - reached: customers with at least n paid orders; made_next: with at least n + 1;
      repeat_rate = made_next / reached, the naive P(purchase n+1 | n) on all data;
    - eligible: customers whose n-th order is at least ``ladder_horizon_days`` before as_of;
      retained: those of them whose order n + 1 came within that horizon;
      retention_at_horizon = retained / eligible, free of the bias against recent buyers.

    A jump in these rates at some n marks where customers become loyal. ``purchases``: a
    shared ``purchase_sequence(orders, as_of)`` (built here when None).
    """
    as_of = utc(as_of)
    horizon_s = settings.ladder_horizon_days * DAY
    if purchases is None:
        purchases = purchase_sequence(orders, as_of)
    ranked = purchases.filter(purchases.n <= settings.ladder_max_purchases)
    ranked = ranked.select("customer_id", "next_s", n=ranked.n.cast("int64"), at_s=ranked.o_s)
    eligible = ranked.at_s <= epoch(as_of) - horizon_s
    agg = ranked.group_by(purchases=ranked.n).aggregate(
        reached=ranked.count(),
        made_next=count_if(ranked.next_s.notnull()),
        eligible=count_if(eligible),
        retained=count_if(eligible & (ranked.next_s < ranked.at_s + horizon_s)),
    )
    return agg.mutate(
        repeat_rate=ratio(agg.made_next, agg.reached),
        retention_at_horizon=ratio(agg.retained, agg.eligible),
    ).order_by("purchases")


def critical_window(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    anchor: str = "first_purchase",
    purchases: ir.Table | None = None,
) -> ir.Table:
    """Retention by early activity (R8; seed 002: 19.01 % without vs 52.85 % with a purchase).

    Each customer's clock starts at the anchor: their first paid order (``"first_purchase"``,
    which itself counts as one early purchase) or ``joined_at`` (``"joined"``, where zero early
    purchases is possible: the seed's comparison). For each early window of d days in
    ``settings.critical_windows_days``:

    - purchases: paid orders in [anchor, anchor + d days), capped at ``critical_max_purchases``
      (the last bucket means "that many or more");
    - retained: a paid order in [anchor + from, anchor + to) days, ``critical_retained_days``
      (days 61-180 by default);
    - only customers observed to the end of that window (anchor + to <= as_of) count.

    Columns: anchor, window_days, purchases, customers, retained, retention_rate.
    ``purchases``: a shared ``purchase_sequence(sources.orders, as_of)`` (built here when None).
    """
    if anchor not in CRITICAL_WINDOW_ANCHORS:
        raise ValueError(f"anchor must be one of {CRITICAL_WINDOW_ANCHORS}, got {anchor!r}")
    as_of = utc(as_of)
    lo_s, hi_s = (d * DAY for d in settings.critical_retained_days)
    if purchases is None:
        purchases = purchase_sequence(sources.orders, as_of)
    # Only the orders from the anchor to the end of the last window count.
    span_s = max(hi_s, *(d * DAY for d in settings.critical_windows_days))
    if anchor == "first_purchase":
        # Each order carries its customer's first one: no join, and every customer has a row
        # (their first order).
        j = purchases.filter(
            (purchases.first_s + hi_s <= epoch(as_of))
            & (purchases.o_s < purchases.first_s + span_s)
        )
        j = j.select("customer_id", since=j.o_s - j.first_s)
    else:
        cust = sources.customers.filter(sources.customers.joined_at < as_of)
        anchors = cust.select("customer_id", anchor_s=seconds(cust.joined_at))
        anchors = anchors.filter(anchors.anchor_s + hi_s <= epoch(as_of))
        o = purchases.select(o_customer_id=purchases.customer_id, o_s=purchases.o_s)
        # A range join: customers without any order in the span keep one row (with o_s null)
        # from the left join.
        j = anchors.left_join(
            o,
            [
                anchors.customer_id == o.o_customer_id,
                o.o_s >= anchors.anchor_s,
                o.o_s < anchors.anchor_s + span_s,
            ],
        )
        j = j.select("customer_id", since=j.o_s - j.anchor_s)
    since = j.since
    early = {
        f"early_{d}": count_if((since >= 0) & (since < d * DAY))
        for d in settings.critical_windows_days
    }
    per = j.group_by("customer_id").aggregate(
        retained=count_if((since >= lo_s) & (since < hi_s)), **early
    )
    parts = [
        per.select(
            window_days=ibis.literal(d, "int64"),
            purchases=ibis.least(per[f"early_{d}"], settings.critical_max_purchases).cast("int64"),
            retained=(per.retained > 0),
        )
        for d in settings.critical_windows_days
    ]
    rows = parts[0].union(*parts[1:], distinct=False) if len(parts) > 1 else parts[0]
    agg = rows.group_by(["window_days", "purchases"]).aggregate(
        customers=rows.count(), retained=count_if(rows.retained)
    )
    return agg.select(
        anchor=ibis.literal(anchor),
        window_days=agg.window_days,
        purchases=agg.purchases,
        customers=agg.customers,
        retained=agg.retained,
        retention_rate=ratio(agg.retained, agg.customers),
    ).order_by(["window_days", "purchases"])


def tenure_curve(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    purchases: ir.Table | None = None,
) -> ir.Table:
    """Activity by month since joining (R9): the shape of habit and of the "watershed".

    A customer's tenure month k is the calendar month k after the month they joined
    (``joined_at``, or their first paid order when it is missing). For k in
    0..``tenure_max_months``-1, among customers whose month k is complete:

    - customers; buyers / active_share: with a paid order in month k;
    - orders_per_customer, revenue_per_customer: paid orders and revenue in month k per customer;
    - visitors / visitor_share: with a behaviour event in month k.

    ``purchases``: a shared ``purchase_sequence(sources.orders, as_of)`` (built here when None).
    """
    as_of = utc(as_of)
    if purchases is None:
        purchases = purchase_sequence(sources.orders, as_of)
    first = purchases.filter(purchases.n == 1)
    firsts = first.select("customer_id", first_m=first.month.cast("int64"))
    cust = sources.customers.filter(
        sources.customers.joined_at.isnull() | (sources.customers.joined_at < as_of)
    )
    cust = cust.select("customer_id", j_m=month_index(cust.joined_at))
    base = cust.left_join(firsts, cust.customer_id == firsts.customer_id)
    base = base.select(
        customer_id=base.customer_id, join_m=base.j_m.fill_null(base.first_m)
    ).filter(ibis._.join_m.notnull())
    base = base.mutate(max_k=month_index_of(as_of) - 1 - base.join_m)

    ks = _int_range("k", settings.tenure_max_months)
    shapes = base.group_by("max_k").aggregate(n=base.count())
    grid = shapes.cross_join(ks).filter(ibis._.k <= ibis._.max_k)
    sizes = grid.group_by("k").aggregate(customers=grid.n.sum().cast("int64"))

    def monthly(t: ir.Table) -> ir.Table:
        # t: customer_id, m (month index) and the columns to aggregate.
        t = t.inner_join(base, "customer_id")
        t = t.mutate(k=t.m - t.join_m)
        return t.filter((t.k >= 0) & (t.k <= t.max_k) & (t.k < settings.tenure_max_months))

    o = monthly(
        purchases.select(
            "customer_id", "new_month", m=purchases.month.cast("int64"), rev=purchases.revenue
        )
    )
    # A buyer's first order of a month marks them once in that month's k.
    o_agg = o.group_by(ok="k").aggregate(
        buyers=count_if(o.new_month), orders=o.count(), revenue=o.rev.sum()
    )
    ev = sources.events.filter(sources.events.occurred_at < as_of)
    # Each customer's months with events, made distinct before joining: a visitor then counts
    # once per row.
    e = monthly(ev.select("customer_id", m=month_index(ev.occurred_at)).distinct())
    e_agg = e.group_by(ek="k").aggregate(visitors=e.count())
    out = sizes.left_join(o_agg, sizes.k == o_agg.ok).drop("ok")
    out = out.left_join(e_agg, out.k == e_agg.ek).drop("ek")
    out = out.select(
        tenure_month=out.k,
        customers=out.customers,
        buyers=out.buyers.fill_null(0),
        orders=out.orders.fill_null(0),
        revenue=out.revenue.fill_null(0.0),
        visitors=out.visitors.fill_null(0),
    )
    return out.mutate(
        active_share=ratio(out.buyers, out.customers),
        orders_per_customer=ratio(out.orders, out.customers),
        revenue_per_customer=ratio(out.revenue, out.customers),
        visitor_share=ratio(out.visitors, out.customers),
    ).order_by("tenure_month")


def subscription_hazard(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    spells: ir.Table | None = None,
) -> ir.Table:
    """Churn hazard by month of subscription tenure (R9: the credit-card "six-month watershed").

    From ``survival.subscription_durations`` (one row per subscription spell), tenure month
    m = floor(duration_days / average month). For m in 0..``hazard_max_months``-1:
    at_risk = spells lasting at least m months (churned or not); churned = spells that ended
    (and were not renewed) in month m; hazard = churned / at_risk. A drop in the hazard after
    month m marks a watershed. ``spells``: a shared ``metrics.activity_spells``.
    """
    d = subscription_durations(sources, as_of, settings, spells=spells)
    d = d.mutate(month=(d.duration_days / MONTH_DAYS).floor().cast("int64"))
    d = d.group_by(["month", "event"]).aggregate(n=d.count())
    j = d.cross_join(_int_range("m", settings.hazard_max_months))
    agg = j.group_by(tenure_month=j.m).aggregate(
        at_risk=ibis.cases((j.month >= j.m, j.n), else_=0).sum().cast("int64"),
        churned=ibis.cases((j.event & (j.month == j.m), j.n), else_=0).sum().cast("int64"),
    )
    return agg.mutate(hazard=ratio(agg.churned, agg.at_risk)).order_by("tenure_month")
