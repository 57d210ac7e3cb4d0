"""Time helpers: aware instants, calendar periods, period indexes."""

from __future__ import annotations

import datetime as dt

import ibis
import pytest

from loyal.engine.common import (
    Period,
    complete_periods,
    epoch,
    period_index,
    period_index_of,
    purchase_sequence,
    seconds,
    utc,
)
from loyal.engine.execution import to_arrow

from .conftest import make_sources, ts


def test_naive_datetimes_are_refused_with_a_fix():
    with pytest.raises(ValueError, match="timezone-aware.*tzinfo=datetime.UTC"):
        utc(dt.datetime(2024, 1, 1))


def test_dates_and_other_zones_become_utc():
    assert utc(dt.date(2024, 1, 2)) == ts("2024-01-02")
    shanghai = dt.timezone(dt.timedelta(hours=8))
    assert utc(dt.datetime(2024, 1, 2, 8, tzinfo=shanghai)) == ts("2024-01-02")


@pytest.mark.parametrize(
    ("freq", "expected"),
    [
        ("month", [("2024-03-01", "2024-04-01"), ("2024-04-01", "2024-05-01")]),
        ("week", [("2024-04-29", "2024-05-06"), ("2024-05-06", "2024-05-13")]),
        ("day", [("2024-05-13", "2024-05-14"), ("2024-05-14", "2024-05-15")]),
    ],
)
def test_complete_periods_end_before_the_current_one(freq, expected):
    # 2024-05-15 is a Wednesday.
    got = complete_periods(ts("2024-05-15 10:00"), freq, 2)
    assert got == [Period(ts(a), ts(b)) for a, b in expected]


def test_a_boundary_as_of_completes_the_period_before_it():
    assert complete_periods(ts("2024-05-01"), "month", 1) == [
        Period(ts("2024-04-01"), ts("2024-05-01"))
    ]


@pytest.mark.parametrize("freq", ["day", "week", "month"])
def test_period_index_matches_python(duck, freq):
    instants = [ts("2024-01-01"), ts("2024-01-07 23:59"), ts("2024-01-08"), ts("2024-02-29 12:00")]
    table = ibis.memtable({"at": instants}, schema={"at": "timestamp('UTC')"})
    got = to_arrow(table.select(i=period_index(table.at, freq), s=seconds(table.at)))
    assert got.column("i").to_pylist() == [period_index_of(t, freq) for t in instants]
    assert got.column("s").to_pylist() == [epoch(t) for t in instants]
    if freq == "week":
        # Monday Jan 1 and Sunday Jan 7 share a week; Monday Jan 8 starts the next.
        assert got.column("i").to_pylist()[:3] == [2818, 2818, 2819]


def test_orders_placed_in_the_same_second_give_the_same_sequence_either_way(duck):
    # Two orders of customer 1 at the same instant, one later: whichever tie comes first, the
    # positions, times and months are these; only revenue says which order sits where.
    src = make_sources(
        duck,
        orders=[
            dict(order_id=9, customer_id=1, ordered_at="2024-03-05", status="paid", revenue=10.0),
            dict(order_id=4, customer_id=1, ordered_at="2024-03-05", status="paid", revenue=20.0),
            dict(order_id=5, customer_id=1, ordered_at="2024-04-02", status="paid", revenue=5.0),
        ],
    )
    rows = sorted(
        to_arrow(purchase_sequence(src.orders, ts("2024-06-01"))).to_pylist(),
        key=lambda r: r["n"],
    )
    march, april = epoch(ts("2024-03-05")), epoch(ts("2024-04-02"))
    assert [(r["n"], r["o_s"], r["prev_s"], r["next_s"]) for r in rows] == [
        (1, march, None, march),
        (2, march, march, april),
        (3, april, march, None),
    ]
    assert [r["new_month"] for r in rows] == [True, False, True]
    assert sorted(r["revenue"] for r in rows[:2]) == [10.0, 20.0]
