"""Churn features and labels (R16) as Ibis expressions, and the records as known at an instant.

Definitions
-----------
*Subscriber at t*: a customer with a subscription running at ``t``: ``started_at < t`` and
``ended_at`` null or ``>= t`` (an end at or after ``t`` is not yet known at ``t``).

*Features at t* (``churn_features``): one row per subscriber at ``t``, computed only from data
strictly before ``t`` (see ``FEATURES`` for each column's definition). Windows are half-open
and end at ``t``: "in the last 30 days" means ``[t - 30 days, t)``.

*Label* (``churn_labels``): a subscriber at ``t`` has churned within the horizon when no
subscription of theirs is running at ``t + horizon_days``: every running one ended in
``[t, t + horizon)`` and no renewal or other subscription is running at the end of the horizon.
The label is known at ``t + horizon`` and needs no data from after it.

The model, back-test and scoring built on these are in ``loyal.engine.churn``, which re-exports
every public name here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import ibis
import ibis.expr.types as ir
import pyarrow as pa

from loyal.engine.common import DAY, MONTH_DAYS, count_if, epoch, ratio, seconds, utc
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import TIMESTAMP, Sources

# Feature columns and their definitions (all counts and sums over data strictly before t).
FEATURES: dict[str, str] = {
    "tenure_months": "months since the oldest running subscription started",
    "plan": "plan of the most recently started running subscription",
    "monthly_amount": "sum of monthly_amount over running subscriptions",
    "past_subscriptions": "subscriptions that ended before t",
    "days_since_last_event": "days since the last behaviour event (since joining if none)",
    "events_14d": "behaviour events in the last 14 days",
    "events_30d": "behaviour events in the last 30 days",
    "activity_trend": "daily event rate in the last 30 days / in the 60 days before (null if 0)",
    "sessions_30d": "distinct sessions in the last 30 days",
    "active_days_30d": "distinct UTC days with an event in the last 30 days",
    "services_90d": "distinct pages (modules) used in the last 90 days: breadth of services",
    "orders_90d": "paid orders in the last 90 days",
    "revenue_90d": "paid order revenue in the last 90 days",
    "days_since_last_order": "days since the last paid order (since joining if none)",
    "complaints_total": "complaints (interactions of kind 'complaint') ever",
    "complaints_90d": "complaints in the last 90 days",
    "unresolved_complaints_90d": "complaints in the last 90 days with outcome 'unresolved'",
    "contacts_90d": "service contacts (settings.contact_kinds) in the last 90 days",
    "acquisition_channel": "the customer's acquisition channel",
}
CATEGORICAL: tuple[str, ...] = ("plan", "acquisition_channel")
NUMERIC: tuple[str, ...] = tuple(name for name in FEATURES if name not in CATEGORICAL)
LABEL = "churned"
SNAPSHOT = "snapshot"
COMPLAINT_KIND = "complaint"
UNRESOLVED_OUTCOME = "unresolved"


# --- The records as known at an instant ---------------------------------------------------------


def known_at(sources: Sources, instant: dt.datetime) -> Sources:
    """The records as they stood at ``instant``: rows dated at or after it are dropped, and a
    subscription ending at or after it is shown as still running (no end, no reason)."""
    t = utc(instant, "instant")
    s = sources.subscriptions.filter(sources.subscriptions.started_at < t)
    ended = s.ended_at < t
    s = s.mutate(
        ended_at=ibis.cases((ended, s.ended_at), else_=ibis.null("timestamp('UTC')")),
        cancellation_reason=ibis.cases((ended, s.cancellation_reason), else_=ibis.null("string")),
    )
    c = sources.customers
    return Sources(
        customers=c.filter(c.joined_at.isnull() | (c.joined_at < t)),
        orders=sources.orders.filter(sources.orders.ordered_at < t),
        order_lines=sources.order_lines.filter(sources.order_lines.ordered_at < t),
        subscriptions=s.select(sources.subscriptions.columns),
        events=sources.events.filter(sources.events.occurred_at < t),
        interactions=sources.interactions.filter(sources.interactions.occurred_at < t),
    )


# --- Features and labels (Ibis expressions) ------------------------------------------------------


def snapshots_table(dates: Sequence[dt.datetime], horizon_days: int | None = None) -> ir.Table:
    """The snapshot dates as a table: snapshot (timestamp), snapshot_s (epoch seconds) and,
    with a horizon, horizon_end = snapshot + horizon_days."""
    instants = sorted({utc(date, "snapshot date") for date in dates})
    if not instants:
        raise ValueError("no snapshot dates given: pass at least one as_of")
    columns: dict[str, pa.Array] = {
        SNAPSHOT: pa.array(instants, TIMESTAMP),
        "snapshot_s": pa.array([epoch(t) for t in instants], pa.int64()),
    }
    if horizon_days is not None:
        _check_horizon(horizon_days)
        ends = [t + dt.timedelta(days=horizon_days) for t in instants]
        columns["horizon_end"] = pa.array(ends, TIMESTAMP)
    return ibis.memtable(pa.table(columns))


def _subscribers(subscriptions: ir.Table, snaps: ir.Table) -> ir.Table:
    s = subscriptions
    return s.join(
        snaps,
        [s.started_at < snaps.snapshot, s.ended_at.isnull() | (s.ended_at >= snaps.snapshot)],
    )


_KEYS = (SNAPSHOT, "customer_id")


def _join(left: ir.Table, right: ir.Table) -> ir.Table:
    right = right.rename(j_snapshot=SNAPSHOT, j_id="customer_id")
    cond = [left[SNAPSHOT] == right.j_snapshot, left.customer_id == right.j_id]
    return left.left_join(right, cond).drop("j_snapshot", "j_id")


def _before(table: ir.Table, time_column: str, keys: ir.Table) -> ir.Table:
    """Rows of ``table`` of each (snapshot, subscriber) in ``keys``, dated before the snapshot."""
    k = keys.rename(k_id="customer_id")
    joined = table.join(k, [table.customer_id == k.k_id, table[time_column] < k[SNAPSHOT]])
    return joined.drop("k_id")


def snapshot_features(
    sources: Sources, dates: Sequence[dt.datetime], settings: EngineSettings | None = None
) -> ir.Table:
    """One row per (snapshot date, subscriber at that date): ``snapshot``, customer_id and the
    ``FEATURES``, each from data strictly before its snapshot (an expression)."""
    settings = settings or EngineSettings()
    snaps = snapshots_table(dates)
    running = _subscribers(sources.subscriptions, snaps)
    base = running.group_by([SNAPSHOT, "snapshot_s", "customer_id"]).aggregate(
        first_start=running.started_at.min(),
        plan=running.plan.argmax(running.started_at),
        monthly_amount=running.monthly_amount.fill_null(0.0).sum(),
    )
    keys = base.select(SNAPSHOT, "snapshot_s", "customer_id")

    s = sources.subscriptions
    ended = s.join(snaps, s.ended_at < snaps.snapshot)
    past = ended.group_by(list(_KEYS)).aggregate(past_subscriptions=ended.count())

    def window(t: ir.Table, column: str, days: int) -> ir.BooleanValue:
        return seconds(t[column]) >= t.snapshot_s - days * DAY

    e = _before(sources.events, "occurred_at", keys)
    last_30, last_90 = window(e, "occurred_at", 30), window(e, "occurred_at", 90)
    activity = e.group_by(list(_KEYS)).aggregate(
        last_event=e.occurred_at.max(),
        events_14d=count_if(window(e, "occurred_at", 14)),
        events_30d=count_if(last_30),
        events_prev_60d=count_if(last_90 & ~last_30),
        sessions_30d=e.session_id.nunique(where=last_30).cast("int64"),
        active_days_30d=e.occurred_at.date().nunique(where=last_30).cast("int64"),
        services_90d=e.page.nunique(where=last_90).cast("int64"),
    )

    o = _before(sources.orders.filter(sources.orders.status == "paid"), "ordered_at", keys)
    recent_order = window(o, "ordered_at", 90)
    buying = o.group_by(list(_KEYS)).aggregate(
        last_order=o.ordered_at.max(),
        orders_90d=count_if(recent_order),
        revenue_90d=o.revenue.fill_null(0.0).sum(where=recent_order),
    )

    i = _before(sources.interactions, "occurred_at", keys)
    complaint = i.kind == COMPLAINT_KIND
    recent = window(i, "occurred_at", 90)
    contact_kinds = list(settings.contact_kinds)
    service = i.group_by(list(_KEYS)).aggregate(
        complaints_total=count_if(complaint),
        complaints_90d=count_if(complaint & recent),
        unresolved_complaints_90d=count_if(complaint & recent & (i.outcome == UNRESOLVED_OUTCOME)),
        contacts_90d=count_if(i.kind.isin(contact_kinds) & recent)
        if contact_kinds
        else ibis.literal(0, "int64"),
    )

    c = sources.customers
    people = c.select(p_id="customer_id", joined_at="joined_at", channel="acquisition_channel")
    x = base.left_join(people, base.customer_id == people.p_id).drop("p_id")
    for part in (past, activity, buying, service):
        x = _join(x, part)
    # Without an event or order, the time since joining is the time without one.
    since = ibis.least(x.joined_at.coalesce(x.first_start), x.first_start)
    zero = ibis.literal(0, "int64")

    def count(column: str) -> ir.IntegerValue:
        return x[column].fill_null(zero)

    return x.select(
        SNAPSHOT,
        "customer_id",
        tenure_months=(x.snapshot_s - seconds(x.first_start)) / DAY / MONTH_DAYS,
        plan=x.plan,
        monthly_amount=x.monthly_amount,
        past_subscriptions=count("past_subscriptions"),
        days_since_last_event=(x.snapshot_s - seconds(x.last_event.coalesce(since))) / DAY,
        events_14d=count("events_14d"),
        events_30d=count("events_30d"),
        # Daily rates: the last 30 days against the 60 days before them.
        activity_trend=ratio(count("events_30d") * 2, count("events_prev_60d")),
        sessions_30d=count("sessions_30d"),
        active_days_30d=count("active_days_30d"),
        services_90d=count("services_90d"),
        orders_90d=count("orders_90d"),
        revenue_90d=x.revenue_90d.fill_null(0.0),
        days_since_last_order=(x.snapshot_s - seconds(x.last_order.coalesce(since))) / DAY,
        complaints_total=count("complaints_total"),
        complaints_90d=count("complaints_90d"),
        unresolved_complaints_90d=count("unresolved_complaints_90d"),
        contacts_90d=count("contacts_90d"),
        acquisition_channel=x.channel,
    ).order_by(list(_KEYS))


def churn_features(
    sources: Sources, as_of: dt.datetime, settings: EngineSettings | None = None
) -> ir.Table:
    """One row per subscriber at ``as_of``: customer_id and the ``FEATURES`` (an expression).

    Only rows strictly before ``as_of`` are read, so later records never change the result.
    """
    return snapshot_features(sources, [as_of], settings).drop(SNAPSHOT)


def snapshot_labels(
    subscriptions: ir.Table, dates: Sequence[dt.datetime], horizon_days: int = 60
) -> ir.Table:
    """snapshot, customer_id, churned (bool) for every subscriber at each date: True when none
    of their subscriptions is running at ``snapshot + horizon_days`` (see the module docstring)."""
    snaps = snapshots_table(dates, horizon_days)
    keys = _subscribers(subscriptions, snaps).select(SNAPSHOT, "horizon_end", "customer_id")
    keys = keys.distinct()
    s = subscriptions.rename(s_id="customer_id")
    staying = keys.join(
        s,
        [
            keys.customer_id == s.s_id,
            s.started_at < keys.horizon_end,
            s.ended_at.isnull() | (s.ended_at >= keys.horizon_end),
        ],
    )
    staying = staying.select(j_snapshot=SNAPSHOT, j_id="customer_id").distinct()
    t = keys.left_join(
        staying, [keys[SNAPSHOT] == staying.j_snapshot, keys.customer_id == staying.j_id]
    )
    return t.select(SNAPSHOT, "customer_id", churned=t.j_id.isnull()).order_by(list(_KEYS))


def churn_labels(subscriptions: ir.Table, as_of: dt.datetime, horizon_days: int = 60) -> ir.Table:
    """customer_id, churned (bool) for every subscriber at ``as_of``: True when none of their
    subscriptions is running at ``as_of + horizon_days``."""
    return snapshot_labels(subscriptions, [as_of], horizon_days).drop(SNAPSHOT)


def _check_horizon(horizon_days: int) -> None:
    if not isinstance(horizon_days, int) or horizon_days < 1:
        raise ValueError(f"horizon_days must be a positive number of days, got {horizon_days!r}")
