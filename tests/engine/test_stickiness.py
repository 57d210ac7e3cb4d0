"""Stickiness (R7): traffic, depth, conversion, repeat purchase, DAU/WAU/MAU."""

from __future__ import annotations

import pytest

from loyal.engine import stickiness
from loyal.engine.execution import to_arrow, to_pandas, to_row
from loyal.engine.settings import EngineSettings

from .conftest import make_sources, ts

SETTINGS = EngineSettings(churn_window_days=30)


def ev(customer_id, at, session, kind="view", dwell=None):
    return dict(
        customer_id=customer_id,
        occurred_at=at,
        session_id=session,
        event_type=kind,
        dwell_seconds=dwell,
    )


def order(order_id, customer_id, at, status="paid", revenue=10.0):
    return dict(
        order_id=order_id, customer_id=customer_id, ordered_at=at, status=status, revenue=revenue
    )


@pytest.fixture
def src(duck):
    return make_sources(
        duck,
        events=[
            ev(1, "2024-01-01 10:00", "a", dwell=10.0),
            ev(1, "2024-01-01 10:05", "a", kind="click"),
            ev(1, "2024-01-03 09:00", "b", dwell=20.0),
            ev(2, "2024-01-02 08:00", "c", dwell=30.0),
            ev(2, "2024-01-02 08:01", "c", dwell=30.0),
            ev(3, "2024-02-01 12:00", "d"),
        ],
        orders=[
            order(1, 1, "2023-12-20"),
            order(2, 1, "2024-01-01 11:00"),
            order(3, 1, "2024-01-10"),
            order(4, 3, "2024-01-05"),
            order(5, 2, "2024-01-06", status="refunded"),
            order(6, 4, "2024-03-01"),  # after the trends' periods
            order(7, 4, "2024-03-02"),
        ],
    )


def test_stickiness_indicators_for_one_window(src):
    row = to_row(stickiness.stickiness(src, ts("2024-01-01"), ts("2024-02-01"), SETTINGS))
    # January: visitors 1, 2; sessions a, b, c; 5 events of which 4 views and 1 click;
    # dwell 10 + 20 + 30 + 30 = 90; active days: customer 1 on Jan 1 and 3, customer 2 on Jan 2.
    # Buyers 1 (two orders) and 3 (one); 2's order was refunded. Visitor 1 bought: 1 of 2.
    # Before Feb 1, customers 1 (3 orders) and 3 (1 order) have bought: 1 of 2 repeat.
    assert row["visitors"] == 2
    assert row["sessions"] == 3
    assert row["events"] == 5
    assert row["page_views"] == 4
    assert row["clicks"] == 1
    assert row["dwell_seconds"] == 90.0
    assert row["pages_per_session"] == pytest.approx(4 / 3)
    assert row["clicks_per_user"] == pytest.approx(0.5)
    assert row["dwell_per_session"] == pytest.approx(30.0)
    assert row["dwell_per_user"] == pytest.approx(45.0)
    assert row["active_days_per_user"] == pytest.approx(1.5)
    assert row["buyers"] == 2
    assert row["orders"] == 3
    assert row["conversion_rate"] == pytest.approx(0.5)
    assert row["repeat_purchase_rate"] == pytest.approx(0.5)
    assert row["cumulative_buyers"] == 2
    assert row["cumulative_repeat_purchase_rate"] == pytest.approx(0.5)


def test_stickiness_trend_by_month_includes_quiet_periods(src):
    rows = to_arrow(
        stickiness.stickiness_trend(src, ts("2024-03-15"), SETTINGS, periods=3)
    ).to_pylist()
    assert [str(r["period"]) for r in rows] == ["2023-12-01", "2024-01-01", "2024-02-01"]
    dec, jan, feb = rows
    # December: no events, one order by customer 1.
    assert (dec["visitors"], dec["buyers"], dec["conversion_rate"]) == (0, 1, None)
    assert jan["visitors"] == 2 and jan["repeat_buyers"] == 1
    # February: customer 3 visits and buys nothing; no buyers, so no repeat rate.
    assert (feb["visitors"], feb["buyers"], feb["conversion_rate"]) == (1, 0, 0.0)
    assert feb["repeat_purchase_rate"] is None
    assert feb["cumulative_repeat_purchase_rate"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("freq", "as_of", "buyers", "repeat_buyers"),
    [
        # Customer 1 first buys on Dec 20 and again on Jan 1; customer 3 buys once on Jan 5;
        # customer 4 buys twice in March, after the periods.
        ("month", "2024-03-15", [1, 2, 2], [0, 1, 1]),
        # Weeks of Jan 1 and Jan 8: customer 1's first order, before them, counts from the first.
        ("week", "2024-01-15", [2, 2], [1, 1]),
        # Jan 2 to 5: customer 3 buys on the last day.
        ("day", "2024-01-06", [1, 1, 1, 2], [1, 1, 1, 1]),
    ],
)
def test_cumulative_buyers_per_period(src, freq, as_of, buyers, repeat_buyers):
    rows = to_pandas(
        stickiness.stickiness_trend(src, ts(as_of), SETTINGS, freq=freq, periods=len(buyers))
    )
    assert rows.cumulative_buyers.tolist() == buyers
    assert rows.cumulative_repeat_buyers.tolist() == repeat_buyers


def test_stickiness_trend_by_week_starts_on_monday(src):
    # 2024-01-01 is a Monday: the week of Jan 1 holds every January event.
    rows = to_pandas(
        stickiness.stickiness_trend(src, ts("2024-01-15"), SETTINGS, freq="week", periods=2)
    )
    assert [str(p) for p in rows.period] == ["2024-01-01", "2024-01-08"]
    assert rows.visitors.tolist() == [2, 0]
    assert rows.orders.tolist() == [2, 1]


def test_dau_wau_mau(src):
    row = to_row(stickiness.active_users(src.events, ts("2024-01-04"), SETTINGS))
    # Last 30 days: customers 1 and 2 (MAU 2, and both in the last 7 days: WAU 2).
    # Daily actives: customer 1 on 2 days, customer 2 on 1 -> 3 customer-days / 30 = 0.1.
    assert row["mau"] == 2
    assert row["wau"] == 2
    assert row["dau"] == pytest.approx(0.1)
    assert row["dau_mau"] == pytest.approx(0.05)
    assert row["wau_mau"] == pytest.approx(1.0)


def test_stickiness_window_must_be_ordered(src):
    with pytest.raises(ValueError, match="must be before"):
        stickiness.stickiness(src, ts("2024-02-01"), ts("2024-01-01"), SETTINGS)
