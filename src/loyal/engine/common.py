"""Helpers shared by the analyses: instants, periods and the filters every metric starts from.

Arithmetic on time is done on epoch seconds (integers), which every backend computes the same
way; calendar periods use ``truncate`` (weeks start on Monday on DuckDB and Spark alike) and
integer month indexes (``year * 12 + month - 1``).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import ibis
import ibis.expr.datatypes as dt_
import ibis.expr.types as ir

from loyal.engine.settings import FREQUENCIES

DAY = 86_400
# Days in an average month, for tenure measured in months of elapsed time.
MONTH_DAYS = 365.25 / 12

_TRUNCATE_UNIT = {"day": "D", "week": "W", "month": "M"}


def utc(instant: dt.datetime | dt.date, name: str = "as_of") -> dt.datetime:
    """``instant`` as an aware UTC datetime; a date means midnight UTC at its start.

    Raises ValueError for naive datetimes, whose zone would be a guess.
    """
    if not isinstance(instant, dt.datetime):
        return dt.datetime(instant.year, instant.month, instant.day, tzinfo=dt.UTC)
    if instant.tzinfo is None or instant.utcoffset() is None:
        raise ValueError(
            f"{name} must be timezone-aware, got the naive datetime {instant.isoformat()}: "
            "pass e.g. datetime(..., tzinfo=datetime.UTC)"
        )
    return instant.astimezone(dt.UTC)


def epoch(instant: dt.datetime | dt.date) -> int:
    """Whole epoch seconds of an instant (dates: midnight UTC)."""
    return int(utc(instant).timestamp())


# DuckDB builtins. Ibis takes the epoch of a zoned timestamp as EPOCH(CAST(ts AS TIMESTAMP)) and
# its calendar parts through the ICU calendar: both convert every row through the time zone
# machinery, about 30 times slower than reading the stored UTC microseconds. On DuckDB the
# helpers below read them directly; every other backend gets Ibis' portable expressions, and
# the backend test checks that both give the same answers.
@ibis.udf.scalar.builtin(name="epoch_us")
def _duckdb_epoch_us(ts: dt_.Timestamp(timezone="UTC")) -> dt_.int64:  # type: ignore[valid-type]
    """Microseconds since the epoch of a zoned timestamp (DuckDB)."""


@ibis.udf.scalar.builtin(name="make_timestamp")
def _duckdb_make_timestamp(us: dt_.int64) -> dt_.Timestamp():  # type: ignore[valid-type]
    """The naive timestamp of an epoch in microseconds (DuckDB)."""


def on_duckdb(expr: ir.Expr) -> bool:
    """Whether ``expr`` is bound to one DuckDB connection (and may use DuckDB builtins)."""
    try:
        backend = expr._find_backend(use_default=False)
    except Exception:  # unbound, in-memory only or several backends: the portable path
        return False
    return backend.name == "duckdb"


def _fast_duckdb(ts: ir.Value) -> bool:
    # Naive timestamps hold UTC wall times: EPOCH_US reads them as they are, and still beats
    # EPOCH's fractional seconds (0.2 s on 8 million orders).
    return ts.type().is_timestamp() and on_duckdb(ts)


def seconds(ts: ir.TimestampValue) -> ir.IntegerValue:
    """Whole epoch seconds of a timestamp column (sub-second parts dropped).

    DuckDB's epoch is fractional and its cast to integer rounds, Spark's ``unix_timestamp``
    truncates: flooring makes both drop the fraction.
    """
    if _fast_duckdb(ts):
        return (_duckdb_epoch_us(ts) // 1_000_000).cast("int64")
    return ts.epoch_seconds().floor().cast("int64")


def utc_wall(ts: ir.TimestampValue) -> ir.TimestampValue:
    """The UTC wall-clock time of a timestamp column, for cheap calendar parts and truncation."""
    if _fast_duckdb(ts) and ts.type().timezone is not None:
        return _duckdb_make_timestamp(_duckdb_epoch_us(ts))
    return ts


def month_index(ts: ir.TimestampValue) -> ir.IntegerValue:
    """Months since year 0 (``year * 12 + month - 1``) of a timestamp column, in UTC."""
    wall = utc_wall(ts)
    return (wall.year() * 12 + wall.month() - 1).cast("int64")


def month_index_of(instant: dt.datetime | dt.date) -> int:
    value = utc(instant)
    return value.year * 12 + value.month - 1


def month_start(index: int) -> dt.datetime:
    """The first instant of month ``index`` (see ``month_index``)."""
    return dt.datetime(index // 12, index % 12 + 1, 1, tzinfo=dt.UTC)


def period_start(instant: dt.datetime, freq: str) -> dt.datetime:
    """The start of the calendar period (day, Monday-started week, month) containing instant."""
    value = utc(instant)
    day = dt.datetime(value.year, value.month, value.day, tzinfo=dt.UTC)
    if freq == "day":
        return day
    if freq == "week":
        return day - dt.timedelta(days=day.weekday())
    if freq == "month":
        return day.replace(day=1)
    raise ValueError(f"freq must be one of {FREQUENCIES}, got {freq!r}")


def next_period_start(start: dt.datetime, freq: str) -> dt.datetime:
    if freq == "day":
        return start + dt.timedelta(days=1)
    if freq == "week":
        return start + dt.timedelta(days=7)
    if freq == "month":
        return month_start(month_index_of(start) + 1)
    raise ValueError(f"freq must be one of {FREQUENCIES}, got {freq!r}")


@dataclass(frozen=True)
class Period:
    """A half-open interval [start, end) of UTC time."""

    start: dt.datetime
    end: dt.datetime


def complete_periods(as_of: dt.datetime, freq: str, count: int) -> list[Period]:
    """The last ``count`` complete calendar periods ending at or before ``as_of``, oldest first."""
    if count < 1:
        raise ValueError(f"count must be >= 1, got {count!r}")
    end = period_start(as_of, freq)
    starts = [end]
    for _ in range(count):
        starts.append(_previous_period_start(starts[-1], freq))
    starts.reverse()
    return [Period(a, b) for a, b in zip(starts[:-1], starts[1:], strict=True)]


def _previous_period_start(start: dt.datetime, freq: str) -> dt.datetime:
    if freq == "month":
        return month_start(month_index_of(start) - 1)
    return start - dt.timedelta(days=1 if freq == "day" else 7)


def period_key(ts: ir.TimestampValue, freq: str) -> ir.DateValue:
    """The first day (a date) of the calendar period containing each timestamp."""
    if freq not in _TRUNCATE_UNIT:
        raise ValueError(f"freq must be one of {FREQUENCIES}, got {freq!r}")
    return utc_wall(ts).truncate(_TRUNCATE_UNIT[freq]).date()


def paid_orders(orders: ir.Table, as_of: dt.datetime, since: dt.datetime | None = None) -> ir.Table:
    """Paid orders placed in [since, as_of) (since None: from the beginning)."""
    cond = (orders.status == "paid") & (orders.ordered_at < utc(as_of))
    if since is not None:
        cond = cond & (orders.ordered_at >= utc(since, "since"))
    return orders.filter(cond)


def paid_order_values(orders: ir.Table, as_of: dt.datetime) -> ir.Table:
    """Paid orders before ``as_of`` with the columns of ``purchase_sequence`` that need no
    sorting: customer_id, o_s (epoch seconds), revenue and cost (null as 0).

    Analyses that only sum or count orders per customer or per period take either this or a
    shared ``purchase_sequence`` (which has the same columns).
    """
    paid = paid_orders(orders, as_of)
    return paid.select(
        "customer_id",
        o_s=seconds(paid.ordered_at),
        revenue=paid.revenue.fill_null(0.0),
        cost=paid.cost.fill_null(0.0),
    )


def purchase_sequence(orders: ir.Table, as_of: dt.datetime) -> ir.Table:
    """Every customer's paid orders before ``as_of`` in the order they were placed.

    Columns: customer_id, o_s (epoch seconds), month (``month_index``), revenue and cost (null
    as 0), n (1 = the customer's first order), prev_s and next_s (epoch seconds of the
    customer's previous and next order, null for the first and the last), prev_month and
    next_month (their month indexes), new_month (true on the customer's first order of a
    calendar month), first_s and first_month (the customer's first order's epoch seconds and
    month index, so that analyses measuring from it need no join). month, prev_month,
    next_month, first_month and n are int32 to keep the shared table small; readers cast them
    back where they reach a result.

    Orders of one customer placed in the same second (ties) come in no particular order. Every
    column but revenue and cost is the same whichever order they take, and the analyses only
    sum revenue and cost over whole customers or periods, so their results do not depend on it.
    Sorting on the time alone rather than on (time, order_id) makes this, the run's largest
    sort, a fifth faster.

    Several analyses start from it (the churn window, spells, the loyalty ladder, first
    purchases, cohorts, RFM, value, lifecycle, stickiness): ``run_all`` builds it once and
    shares it, so the orders are read and sorted once per run rather than once per analysis.
    """
    paid = paid_orders(orders, as_of)
    paid = paid.select(
        "customer_id",
        o_s=seconds(paid.ordered_at),
        # int32 before the window: a narrower row to sort.
        month=month_index(paid.ordered_at).cast("int32"),
        revenue=paid.revenue.fill_null(0.0),
        cost=paid.cost.fill_null(0.0),
    )
    w = ibis.window(group_by="customer_id", order_by="o_s")
    prev_month = paid.month.lag().over(w)
    return paid.select(
        "customer_id",
        "o_s",
        "revenue",
        "cost",
        "month",
        n=(ibis.row_number().over(w) + 1).cast("int32"),  # row_number is 0-based
        prev_s=paid.o_s.lag().over(w),
        next_s=paid.o_s.lead().over(w),
        prev_month=prev_month,
        next_month=paid.month.lead().over(w),
        new_month=prev_month.isnull() | (prev_month != paid.month),
        # Over the same window as the others: no second sort.
        first_s=paid.o_s.first().over(w),
        first_month=paid.month.first().over(w),
    )


def order_totals(purchases: ir.Table, since: dt.datetime | None) -> ir.Table:
    """Per customer with a paid order in ``purchases`` (a ``purchase_sequence`` or
    ``paid_order_values``): last_s (latest o_s), frequency (orders), monetary (their revenue),
    and order_revenue and cost_of_goods of the orders at or after ``since`` (None: all).

    RFM (without a lookback) and customer value each group every paid order by customer;
    ``run_all`` groups them once with this table and hands it to both.
    """
    o = purchases
    in_window = ibis.literal(True) if since is None else o.o_s >= epoch(since)
    return o.group_by("customer_id").aggregate(
        last_s=o.o_s.max(),
        frequency=o.count(),
        monetary=o.revenue.sum(),
        order_revenue=ibis.cases((in_window, o.revenue), else_=0.0).sum(),
        cost_of_goods=ibis.cases((in_window, o.cost), else_=0.0).sum(),
    )


def events_between(events: ir.Table, start: dt.datetime, end: dt.datetime) -> ir.Table:
    """Behaviour events in [start, end)."""
    return events.filter(
        (events.occurred_at >= utc(start, "start")) & (events.occurred_at < utc(end, "end"))
    )


def count_if(cond: ir.BooleanValue) -> ir.IntegerScalar:
    """Number of rows where ``cond`` is true (null counts as false), the same on every backend."""
    return ibis.cases((cond, 1), else_=0).sum().cast("int64")


def ratio(numerator: ir.NumericValue, denominator: ir.NumericValue) -> ir.FloatingValue:
    """numerator / denominator as float64, null when the denominator is 0 or null."""
    den = denominator.cast("float64")
    return ibis.cases((den == 0, ibis.null("float64")), else_=numerator.cast("float64") / den)


def lookback_start(as_of: dt.datetime, days: int | None) -> dt.datetime | None:
    return None if days is None else utc(as_of) - dt.timedelta(days=days)


_WEEK = 7 * DAY
# Epoch 0 is a Thursday: shifting by 3 days makes integer weeks start on Mondays.
_WEEK_SHIFT = 3 * DAY


def period_index(ts: ir.TimestampValue, freq: str) -> ir.IntegerValue:
    """Consecutive integers numbering calendar periods (day, Monday week, month) in UTC."""
    if freq not in FREQUENCIES:
        raise ValueError(f"freq must be one of {FREQUENCIES}, got {freq!r}")
    if freq == "month":
        return month_index(ts)
    return period_index_of_seconds(seconds(ts), freq)


def period_index_of_seconds(s: ir.IntegerValue, freq: str) -> ir.IntegerValue:
    """``period_index`` of epoch seconds, for days and weeks (months need the calendar)."""
    if freq == "week":
        return (s + _WEEK_SHIFT) // _WEEK
    if freq == "day":
        return s // DAY
    raise ValueError(f"freq must be 'day' or 'week' for epoch seconds, got {freq!r}")


def period_index_of(instant: dt.datetime, freq: str) -> int:
    """``period_index`` of one instant, computed in Python."""
    if freq == "month":
        return month_index_of(instant)
    if freq == "week":
        return (epoch(instant) + _WEEK_SHIFT) // _WEEK
    if freq == "day":
        return epoch(instant) // DAY
    raise ValueError(f"freq must be one of {FREQUENCIES}, got {freq!r}")
