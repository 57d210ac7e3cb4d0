"""Lifecycle (R1): every customer's stage as of a date, stage changes, PostHog-style counts.

Stages, from behaviour before ``as_of`` (coverage and spells as in ``metrics``), first match:

1. prospect: never bought nor subscribed; the imported stages ``potential_intent`` and
   ``intent`` are kept for such customers, since behaviour cannot tell them apart;
2. churned: no longer covered (no paid order within the churn window, or every subscription
   ended and the grace period passed without renewal), or P(alive) below
   ``p_alive_churn_threshold`` when a P(alive) table is given;
3. at_risk: order-based customers whose last paid order is more than ``at_risk_fraction`` of
   the churn window ago; subscription customers whose subscriptions have all ended but are
   still inside the grace period; or P(alive) below ``p_alive_at_risk_threshold``;
4. won_back: covered again after having been churned (the current spell is not the first) and
   the comeback began within the last churn window; after that they are customers again;
5. customer: everyone else who bought.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir

from loyal.engine.churn_window import churn_window
from loyal.engine.common import (
    DAY,
    complete_periods,
    count_if,
    epoch,
    paid_orders,
    period_index,
    period_index_of,
    purchase_sequence,
    utc,
)
from loyal.engine.metrics import activity_spells
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import Sources

STAGES = ("prospect", "potential_intent", "intent", "customer", "at_risk", "churned", "won_back")
_KEPT_PROSPECT_STAGES = ("potential_intent", "intent")


def customer_stages(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings,
    p_alive: ir.Table | None = None,
    *,
    spells: ir.Table | None = None,
    purchases: ir.Table | None = None,
    attributes: Sequence[str] = (),
) -> ir.Table:
    """The stage of every customer (of ``sources.customers`` or with activity) as of ``as_of``.

    Columns: customer_id, stage, basis (subscription, purchase or null), active (covered at
    as_of), churned (stage == 'churned'), days_since_last_order (null without paid orders),
    spells (number of coverage spells so far). ``spells`` and ``purchases``: a shared
    ``metrics.activity_spells`` and ``common.purchase_sequence`` (built here when None).
    ``attributes``: columns of ``sources.customers`` to carry along after these (null for a
    customer without a record), read with the stored stages rather than joined on afterwards.
    """
    as_of = utc(as_of)
    t = epoch(as_of)
    window_s = churn_window(settings) * DAY
    if purchases is None:
        purchases = purchase_sequence(sources.orders, as_of)
    if spells is None:
        spells = activity_spells(sources, as_of, settings, purchases=purchases)
    covering = (spells.start_s <= t) & (t < spells.reach_s)
    summary = spells.group_by(["customer_id", "basis"]).aggregate(
        spells=spells.spell_no.max(),
        active=count_if(covering) > 0,
        current_no=ibis.cases((covering, spells.spell_no)).max(),
        current_start_s=ibis.cases((covering, spells.start_s)).max(),
        current_last_s=ibis.cases((covering, spells.last_s)).max(),
        current_open=count_if(covering & spells.last_s.isnull()) > 0,
    )
    last = purchases.filter(purchases.next_s.isnull())
    last_order = last.select("customer_id", last_order_s=last.o_s)

    cust = sources.customers.filter(
        sources.customers.joined_at.isnull() | (sources.customers.joined_at < as_of)
    )
    # Every customer record, and the customers with activity but no record (no stored stage).
    stored = cust.select("customer_id", *attributes, stored_stage="stage")
    unrecorded = summary.select("customer_id").anti_join(cust, "customer_id")
    unrecorded = unrecorded.select("customer_id", stored_stage=ibis.null("string"))
    if attributes:
        # A customer who joined after as_of has a record but no stored stage here.
        records = sources.customers.select(*attributes, r_id="customer_id")
        unrecorded = unrecorded.left_join(records, unrecorded.customer_id == records.r_id)
        unrecorded = unrecorded.select("customer_id", *attributes, "stored_stage")
    base = stored.union(unrecorded, distinct=False)
    base = base.left_join(summary, base.customer_id == summary.customer_id).drop(
        "customer_id_right"
    )
    base = base.left_join(last_order, base.customer_id == last_order.customer_id).drop(
        "customer_id_right"
    )
    if p_alive is not None:
        pa_t = p_alive.select(p_id="customer_id", p_alive="p_alive")
        base = base.left_join(pa_t, base.customer_id == pa_t.p_id).drop("p_id")
        low_churn = (base.p_alive < settings.p_alive_churn_threshold).fill_null(False)
        low_risk = (base.p_alive < settings.p_alive_at_risk_threshold).fill_null(False)
    else:
        low_churn = low_risk = ibis.literal(False)

    active = base.active.fill_null(False)
    since_last_s = t - base.current_last_s
    at_risk = (
        ((base.basis == "purchase") & (since_last_s > settings.at_risk_fraction * window_s))
        | ((base.basis == "subscription") & ~base.current_open.fill_null(False))
    ).fill_null(False) | low_risk
    won_back = (base.current_no > 1) & (base.current_start_s > t - window_s)
    stage = ibis.cases(
        (
            base.basis.isnull(),
            ibis.cases(
                (base.stored_stage.isin(_KEPT_PROSPECT_STAGES), base.stored_stage),
                else_="prospect",
            ),
        ),
        (~active | low_churn, "churned"),
        (at_risk, "at_risk"),
        (won_back.fill_null(False), "won_back"),
        else_="customer",
    )
    return base.select(
        "customer_id",
        stage=stage,
        basis=base.basis,
        active=active,
        churned=stage == "churned",
        days_since_last_order=(t - base.last_order_s).cast("float64") / DAY,
        spells=base.spells.fill_null(0).cast("int64"),
        **{name: base[name] for name in attributes},
    )


def stage_changes(previous: ir.Table, current: ir.Table) -> ir.Table:
    """Customers whose stage changed: customer_id, from_stage, to_stage.

    ``previous`` holds the stored stage (customer_id, stage; null or missing for none) and
    ``current`` the computed one (``customer_stages``). Customers without a previous stage
    appear with from_stage null. The records layer writes these to the stage history with the
    reason "analysis".
    """
    prev = previous.select(p_id="customer_id", from_stage="stage")
    cur = current.select("customer_id", to_stage="stage")
    j = cur.left_join(prev, cur.customer_id == prev.p_id)
    changed = j.from_stage.isnull() | (j.from_stage != j.to_stage)
    return j.filter(changed).select("customer_id", "from_stage", "to_stage")


def lifecycle_counts(
    sources: Sources,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    freq: str | None = None,
    periods: int | None = None,
    activity: str = "orders",
    purchases: ir.Table | None = None,
) -> ir.Table:
    """PostHog's lifecycle per complete calendar period before ``as_of``.

    Following PostHog's lifecycle insight (https://posthog.com/docs/product-analytics/lifecycle),
    each customer active in a period (``activity="orders"``: a paid order; ``"events"``: a
    behaviour event) is exactly one of:

    - new: active for the first time ever in this period (PostHog uses the person's creation
      date; a CRM creates people at import, so the first activity is the honest equivalent);
    - returning: active in this period and the previous one;
    - resurrecting: active in this period, not in the previous one, but at some earlier time;

    and dormant counts the customers active in the previous period but not in this one (PostHog
    draws them as a negative bar; here the count is positive). Columns: period (first day), new,
    returning, resurrecting, dormant, active (= new + returning + resurrecting).
    ``purchases``: a shared ``common.purchase_sequence(sources.orders, as_of)``, read instead of
    the orders when given.
    """
    freq = freq or settings.trend_freq
    grid = complete_periods(as_of, freq, periods or settings.trend_periods)
    end = grid[-1].end
    if activity == "orders" and purchases is not None and freq == "month":
        rows = _monthly_lifecycle_rows(purchases, epoch(end))
    else:
        if activity == "orders":
            paid = paid_orders(sources.orders, end)
            act = paid.select("customer_id", idx=period_index(paid.ordered_at, freq))
        elif activity == "events":
            ev = sources.events.filter(sources.events.occurred_at < end)
            act = ev.select("customer_id", idx=period_index(ev.occurred_at, freq))
        else:
            raise ValueError(f"activity must be 'orders' or 'events', got {activity!r}")
        act = act.distinct()
        w = ibis.window(group_by="customer_id", order_by="idx")
        act = act.mutate(prev=act.idx.lag().over(w), nxt=act.idx.lead().over(w))
        rows = _lifecycle_rows(act, act)
    counts = rows.group_by("idx").aggregate(
        new=count_if(rows.status == "new"),
        returning=count_if(rows.status == "returning"),
        resurrecting=count_if(rows.status == "resurrecting"),
        dormant=count_if(rows.status == "dormant"),
    )
    spine = ibis.memtable(
        {
            "period": [p.start.date() for p in grid],
            "s_idx": [period_index_of(p.start, freq) for p in grid],
        },
        schema={"period": "date", "s_idx": "int64"},
    )
    out = spine.left_join(counts, spine.s_idx == counts.idx)
    out = out.select(
        "period",
        **{c: out[c].fill_null(0) for c in ("new", "returning", "resurrecting", "dormant")},
    )
    return out.mutate(active=out.new + out.returning + out.resurrecting).order_by("period")


def _lifecycle_rows(active: ir.Table, lasts: ir.Table) -> ir.Table:
    # active: a row per customer and active period (idx) with the previous active period
    # (prev); lasts: the active periods (idx) whose next active period (nxt) is not the same
    # one. One status row per active period, one dormant row after each active period that
    # the next one does not follow at once.
    status = ibis.cases(
        (active.prev.isnull(), "new"),
        (active.prev == active.idx - 1, "returning"),
        else_="resurrecting",
    )
    statuses = active.select(idx=active.idx, status=status)
    dormant = lasts.filter(lasts.nxt.isnull() | (lasts.nxt > lasts.idx + 1))
    dormant = dormant.select(idx=dormant.idx + 1, status=ibis.literal("dormant"))
    return statuses.union(dormant, distinct=False)


def _monthly_lifecycle_rows(purchases: ir.Table, end_s: int) -> ir.Table:
    # Monthly activity straight from the purchase sequence, without regrouping the orders: a
    # customer's first order of a month (new_month) marks the month active, and the months of
    # the previous and next orders are the previous and next active months. Orders at or after
    # the grid's end (a month start) do not count.
    p = purchases.filter(purchases.o_s < end_s)
    active = p.filter(p.new_month).select(
        idx=p.month.cast("int64"), prev=p.prev_month.cast("int64")
    )
    after_end = p.next_month.isnull() | (p.next_s >= end_s)
    lasts = p.filter(after_end | (p.next_month != p.month)).select(
        idx=p.month.cast("int64"),
        nxt=ibis.cases((after_end, ibis.null("int64")), else_=p.next_month.cast("int64")),
    )
    return _lifecycle_rows(active, lasts)
