"""Customer value (R11, R12, R28): profit after the cost to serve, Pareto ABC, return classes.

Definitions
-----------
Over the ``value_lookback_days`` before ``as_of`` (default 365; None for all history):

- revenue = revenue of the customer's paid orders (refunded and cancelled orders excluded) +
  subscription fees accrued in the window (``metrics.subscription_fees``: contractual customers
  pay through subscriptions, which have no orders); margin = revenue - cost of those orders
  (subscriptions carry no unit cost);
- cost to serve = contacts × unit cost of their kind (``settings.contact_costs``: call, email,
  chat, visit, sms, wechat) + complaints × ``complaint_cost`` + compensations ×
  ``compensation_cost`` (interactions whose outcome is in ``compensation_outcomes``);
- profit = margin - cost to serve.

The customers valued are those with a paid order or a subscription before ``as_of``, or an
interaction in the window; prospects without any have no profit, class or return class.

*ABC* (seed 004's Pareto rule): customers sorted by profit descending (ties by customer_id);
cumulative share = running sum of positive profit / total positive profit, the customer's own
profit included. A: share <= 80 %; B: 80 % < share <= 90 %; C: the rest, and every customer
with zero or negative profit (they contribute nothing to the positive total). The bounds are
inclusive: a customer whose cumulative share is exactly 80 % is A. Shares are compared with a
1e-12 tolerance so that float rounding of the running sum cannot move a customer across a bound.

*Return classes* (seed 003): negative when profit < 0; among profit > 0, high / medium / low by
profit terciles (the top third of profitable customers by rank is high, ties sharing the better
class), or by fixed thresholds ``return_class_thresholds = (medium_from, high_from)``;
zero profit is low.
"""

from __future__ import annotations

import datetime as dt

import ibis
import ibis.expr.types as ir

from loyal.engine.common import (
    Period,
    count_if,
    lookback_start,
    order_totals,
    paid_order_values,
    ratio,
    utc,
)
from loyal.engine.metrics import periods_table, subscription_fees
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import Sources

_EPS = 1e-12
ABC_CLASSES = ("A", "B", "C")
RETURN_CLASSES = ("high", "medium", "low", "negative")
# The columns ``customer_profit`` takes from its parts (orders, subscriptions, interactions),
# with their types (0 for a customer without the part).
_PROFIT_PARTS = {
    "order_revenue": "float64",
    "subscription_revenue": "float64",
    "cost_of_goods": "float64",
    "contacts": "int64",
    "complaints": "int64",
    "compensations": "int64",
    "cost_to_serve": "float64",
}


def cost_to_serve(interactions: ir.Table, as_of: dt.datetime, settings: EngineSettings) -> ir.Table:
    """Per customer with interactions in the value window: contacts, complaints, compensations,
    contact_cost, complaint_cost, compensation_cost and cost_to_serve (their sum)."""
    as_of = utc(as_of)
    since = lookback_start(as_of, settings.value_lookback_days)
    cond = interactions.occurred_at < as_of
    if since is not None:
        cond = cond & (interactions.occurred_at >= since)
    i = interactions.filter(cond)
    kinds = settings.contact_kinds
    unit = (
        ibis.cases(
            *[
                (i.kind == kind, ibis.literal(float(settings.contact_costs[kind])))
                for kind in kinds
            ],
            else_=0.0,
        )
        if kinds
        else ibis.literal(0.0)
    )
    is_compensation = i.outcome.isin(settings.compensation_outcomes)
    agg = i.group_by("customer_id").aggregate(
        contacts=count_if(i.kind.isin(kinds)) if kinds else ibis.literal(0, "int64"),
        complaints=count_if(i.kind == "complaint"),
        compensations=count_if(is_compensation),
        contact_cost=unit.sum(),
    )
    agg = agg.mutate(
        complaint_cost=agg.complaints * float(settings.complaint_cost),
        compensation_cost=agg.compensations * float(settings.compensation_cost),
    )
    return agg.mutate(cost_to_serve=agg.contact_cost + agg.complaint_cost + agg.compensation_cost)


def customer_profit(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    purchases: ir.Table | None = None,
    totals: ir.Table | None = None,
) -> ir.Table:
    """Per valued customer: order_revenue, subscription_revenue, revenue, cost_of_goods, margin,
    contacts, complaints, compensations, cost_to_serve and profit over the value window (see
    the module docstring). ``purchases``: a shared ``common.purchase_sequence(sources.orders,
    as_of)``, read instead of the orders when given; ``totals``: a shared
    ``common.order_totals(purchases, since)`` with ``since`` the value window's start."""
    as_of = utc(as_of)
    since = lookback_start(as_of, settings.value_lookback_days)
    subs = sources.subscriptions.filter(sources.subscriptions.started_at < as_of)
    if totals is None:
        o = paid_order_values(sources.orders, as_of) if purchases is None else purchases
        # One pass over every paid order: each customer who ever bought, with the window's sums.
        totals = order_totals(o, since)
    sales = totals.select("customer_id", "order_revenue", "cost_of_goods")
    window = periods_table([Period(as_of, as_of)])
    fees = subscription_fees(subs, window, settings.value_lookback_days)
    fees = fees.select("customer_id", subscription_revenue=fees.value)
    serve = cost_to_serve(sources.interactions, as_of, settings)
    # Every valued customer: full outer joins of the parts (each has a row per customer, or
    # none), cheaper than joining them to the union of their customers or summing them stacked.
    t = sales
    for part in (fees, serve, subs.select("customer_id").distinct()):
        part = part.rename(j_id="customer_id")
        t = t.outer_join(part, t.customer_id == part.j_id)
        t = t.mutate(customer_id=ibis.coalesce(t.customer_id, t.j_id)).drop("j_id")
    t = t.select(
        "customer_id",
        **{
            name: t[name].fill_null(ibis.literal(0, dtype)) for name, dtype in _PROFIT_PARTS.items()
        },
    )
    t = t.mutate(revenue=t.order_revenue + t.subscription_revenue)
    t = t.mutate(margin=t.revenue - t.cost_of_goods)
    return t.mutate(profit=t.margin - t.cost_to_serve)


def abc_classes(profit: ir.Table, settings: EngineSettings) -> ir.Table:
    """Pareto ABC classes and the Pareto chart's data, from a table with customer_id, profit.

    Adds: rank (1 = most profitable), cum_customer_share = rank / customers,
    cum_profit_share (running positive profit / total positive profit, see module docstring),
    abc_class.
    """
    return _with_abc_class(_join_ranks(profit, _abc_ranks(profit)), settings)


def return_classes(profit: ir.Table, settings: EngineSettings) -> ir.Table:
    """Adds ``return_class`` (high, medium, low, negative) to a table with customer_id, profit."""
    if settings.return_class_thresholds is None:
        profit = _join_ranks(profit, _return_ranks(profit))
    return _with_return_class(profit, settings)


# The ranks are windows over (customer_id, profit) alone, joined back to the customers' other
# columns: a window sorts every column it carries (about twice the time on a million customers).


def _abc_ranks(profit: ir.Table) -> ir.Table:
    w = ibis.window(order_by=[ibis.desc("profit"), "customer_id"])
    running = ibis.window(
        order_by=[ibis.desc("profit"), "customer_id"], preceding=None, following=0
    )
    keyed = profit.select("customer_id", "profit")
    positive = ibis.greatest(keyed.profit, 0.0)
    return keyed.select(
        "customer_id",
        rank=(ibis.row_number().over(w) + 1).cast("int64"),
        _n=keyed.count().over(ibis.window()),
        _cum_positive=positive.sum().over(running),
        _total_positive=positive.sum().over(ibis.window()),
    )


def _return_ranks(profit: ir.Table) -> ir.Table:
    # Terciles among the profitable: position = (customers with strictly more profit) / count.
    keyed = profit.select("customer_id", "profit")
    positive = keyed.profit > 0
    w = ibis.window(group_by=positive, order_by=ibis.desc(keyed.profit))
    return keyed.select(
        "customer_id",
        _above=ibis.rank().over(w),  # 0-based, ties share the lowest rank
        _positive=keyed.count().over(ibis.window(group_by=positive)),
    )


def _join_ranks(profit: ir.Table, *ranks: ir.Table) -> ir.Table:
    t = profit
    for r in ranks:
        r = r.rename(r_id="customer_id")
        t = t.inner_join(r, t.customer_id == r.r_id).drop("r_id")
    return t


def _with_abc_class(t: ir.Table, settings: EngineSettings) -> ir.Table:
    a, b = settings.abc_thresholds
    share = ratio(t._cum_positive, t._total_positive)
    t = t.mutate(
        cum_customer_share=t.rank.cast("float64") / t._n, cum_profit_share=share.fill_null(0.0)
    )
    cls = ibis.cases(
        (t.profit <= 0, "C"),
        (t.cum_profit_share <= a + _EPS, "A"),
        (t.cum_profit_share <= b + _EPS, "B"),
        else_="C",
    )
    return t.mutate(abc_class=cls).drop("_n", "_cum_positive", "_total_positive")


def _with_return_class(t: ir.Table, settings: EngineSettings) -> ir.Table:
    if settings.return_class_thresholds is not None:
        medium_from, high_from = settings.return_class_thresholds
        cls = ibis.cases(
            (t.profit < 0, "negative"),
            (t.profit >= high_from, "high"),
            (t.profit >= medium_from, "medium"),
            else_="low",
        )
        return t.mutate(return_class=cls)
    position = t._above.cast("float64") / t._positive
    cls = ibis.cases(
        (t.profit < 0, "negative"),
        (t.profit <= 0, "low"),
        (position * 3 < 1, "high"),
        (position * 3 < 2, "medium"),
        else_="low",
    )
    return t.mutate(return_class=cls).drop("_above", "_positive")


def customer_value(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    purchases: ir.Table | None = None,
    totals: ir.Table | None = None,
) -> ir.Table:
    """``customer_profit`` with ``abc_classes`` and ``return_classes`` added (``purchases``
    and ``totals``: as in ``customer_profit``)."""
    profit = customer_profit(sources, as_of, settings, purchases=purchases, totals=totals)
    ranks = [_abc_ranks(profit)]
    if settings.return_class_thresholds is None:
        ranks.append(_return_ranks(profit))
    t = _join_ranks(profit, *ranks)
    return _with_return_class(_with_abc_class(t, settings), settings)


def class_summary(valued: ir.Table, column: str = "abc_class") -> ir.Table:
    """Per class of ``column``: customers, share of customers, profit, margin, cost_to_serve
    and share of total profit (the margin of each class, R28)."""
    g = valued.group_by(column).aggregate(
        customers=valued.count(),
        revenue=valued.revenue.sum(),
        margin=valued.margin.sum(),
        cost_to_serve=valued.cost_to_serve.sum(),
        profit=valued.profit.sum(),
        complaints=valued.complaints.sum(),
        negative_customers=count_if(valued.profit < 0),
    )
    total = ibis.window()
    return g.mutate(
        customer_share=ratio(g.customers, g.customers.sum().over(total)),
        profit_share=ratio(g.profit, g.profit.sum().over(total)),
    ).order_by(column)
