"""Value (R11, R12, R28): profit after the cost to serve, Pareto ABC, return classes."""

from __future__ import annotations

import ibis
import pytest

from loyal.engine import value
from loyal.engine.execution import to_arrow
from loyal.engine.settings import EngineSettings

from .conftest import make_sources, ts

SETTINGS = EngineSettings(churn_window_days=30)


def profits(values: dict[int, float]) -> ibis.Table:
    return ibis.memtable({"customer_id": list(values), "profit": list(values.values())})


def by_id(expr):
    return {r["customer_id"]: r for r in to_arrow(expr).to_pylist()}


def test_abc_class_boundaries_are_inclusive(duck):
    # Positive profit 50 + 30 + 10 + 5 + 5 = 100. Cumulative shares in profit order:
    # 50 -> 0.50 A; 30 -> 0.80, exactly the A bound, still A; 10 -> 0.90, exactly the B bound,
    # still B; 5 -> 0.95 C; 5 -> 1.00 C. Zero and negative profit are C whatever their share.
    got = by_id(
        value.abc_classes(profits({1: 50, 2: 30, 3: 10, 4: 5, 5: 5, 6: 0, 7: -20}), SETTINGS)
    )
    assert {cid: r["abc_class"] for cid, r in got.items()} == {
        1: "A",
        2: "A",
        3: "B",
        4: "C",
        5: "C",
        6: "C",
        7: "C",
    }
    assert got[2]["cum_profit_share"] == 0.8
    assert [got[c]["rank"] for c in range(1, 8)] == [1, 2, 3, 4, 5, 6, 7]
    assert got[7]["cum_customer_share"] == pytest.approx(1.0)
    assert got[1]["cum_customer_share"] == pytest.approx(1 / 7)
    # Negative profit leaves the positive running share where it was.
    assert got[7]["cum_profit_share"] == pytest.approx(1.0)


def test_abc_customer_crossing_the_bound_takes_the_next_class(duck):
    # 70 -> 0.70 A; 20 -> 0.90: it crosses 80 % so it is B (its own share counts); 10 -> C.
    got = by_id(value.abc_classes(profits({1: 70, 2: 20, 3: 10}), SETTINGS))
    assert [got[c]["abc_class"] for c in (1, 2, 3)] == ["A", "B", "C"]


def test_abc_ties_are_ranked_by_customer_id(duck):
    got = by_id(value.abc_classes(profits({9: 40, 3: 40, 5: 20}), SETTINGS))
    assert (got[3]["rank"], got[9]["rank"], got[5]["rank"]) == (1, 2, 3)
    assert (got[3]["abc_class"], got[9]["abc_class"]) == ("A", "A")


def test_return_classes_by_terciles_of_positive_profit(duck):
    # Profitable customers ranked: 90 (0 above), 60 and 60 (1 above), 30 (3), 10 (4), 5 (5)
    # of 6. Position = above / 6: high below 1/3, medium below 2/3, low from 2/3.
    table = profits({1: 90, 2: 60, 3: 60, 4: 30, 5: 10, 6: 5, 7: 0, 8: -1})
    got = by_id(value.return_classes(table, SETTINGS))
    assert {cid: r["return_class"] for cid, r in got.items()} == {
        1: "high",
        2: "high",
        3: "high",
        4: "medium",
        5: "low",
        6: "low",
        7: "low",
        8: "negative",
    }


def test_return_classes_by_fixed_thresholds(duck):
    settings = EngineSettings(churn_window_days=30, return_class_thresholds=(20.0, 50.0))
    got = by_id(value.return_classes(profits({1: 90, 2: 50, 3: 30, 4: 10, 5: -20}), settings))
    assert [got[c]["return_class"] for c in range(1, 6)] == [
        "high",
        "high",
        "medium",
        "low",
        "negative",
    ]


def test_profit_is_margin_minus_cost_to_serve(duck):
    src = make_sources(
        duck,
        orders=[
            dict(
                order_id=1,
                customer_id=1,
                ordered_at="2024-05-01",
                status="paid",
                revenue=300.0,
                cost=100.0,
            ),
            dict(
                order_id=2,
                customer_id=1,
                ordered_at="2024-05-02",
                status="refunded",
                revenue=999.0,
                cost=1.0,
            ),
            dict(
                order_id=3,
                customer_id=1,
                ordered_at="2022-01-01",
                status="paid",
                revenue=500.0,
                cost=0.0,
            ),  # outside the 365-day window
            dict(
                order_id=4,
                customer_id=3,
                ordered_at="2024-02-01",
                status="paid",
                revenue=10.0,
                cost=10.0,
            ),
        ],
        interactions=[
            dict(interaction_id=1, customer_id=1, occurred_at="2024-03-01", kind="call"),
            dict(interaction_id=2, customer_id=1, occurred_at="2024-03-02", kind="email"),
            dict(
                interaction_id=3,
                customer_id=1,
                occurred_at="2024-03-03",
                kind="complaint",
                outcome="compensated",
            ),
            dict(interaction_id=4, customer_id=1, occurred_at="2024-03-04", kind="note"),
            dict(interaction_id=5, customer_id=1, occurred_at="2022-03-04", kind="call"),
            dict(interaction_id=6, customer_id=2, occurred_at="2024-03-04", kind="visit"),
        ],
        subscriptions=[
            dict(subscription_id=1, customer_id=4, started_at="2024-05-01", monthly_amount=0.0)
        ],
    )
    got = by_id(value.customer_profit(src, ts("2024-06-01"), SETTINGS))
    # Customer 1: margin 300 - 100 = 200; serving: call 5 + email 0.5 + complaint 50 +
    # compensation 100 (the note is free, the 2022 call is outside the window) = 155.5.
    one = got[1]
    assert (one["revenue"], one["cost_of_goods"], one["margin"]) == (300.0, 100.0, 200.0)
    assert (one["contacts"], one["complaints"], one["compensations"]) == (2, 1, 1)
    assert one["cost_to_serve"] == pytest.approx(155.5)
    assert one["profit"] == pytest.approx(44.5)
    # Customer 2 only costs (a visit, 20); customer 3 breaks even; 4 subscribes for free.
    assert got[2]["profit"] == pytest.approx(-20.0)
    assert got[3]["profit"] == 0.0
    assert got[4]["profit"] == 0.0
    assert set(got) == {1, 2, 3, 4}


def test_class_summary_gives_each_class_its_margin(duck):
    table = profits({1: 50, 2: 30, 3: 10, 4: -20}).mutate(
        revenue=ibis._.profit, margin=ibis._.profit, cost_to_serve=0.0, complaints=0
    )
    valued = value.abc_classes(table, SETTINGS)
    got = {r["abc_class"]: r for r in to_arrow(value.class_summary(valued)).to_pylist()}
    assert (got["A"]["customers"], got["A"]["profit"]) == (1, 50.0)  # 50/90 = 0.56; 80/90 > 0.8
    assert (got["B"]["customers"], got["B"]["profit"]) == (1, 30.0)  # 80/90 = 0.889 <= 0.9
    assert (got["C"]["customers"], got["C"]["profit"], got["C"]["negative_customers"]) == (
        2,
        -10.0,
        1,
    )
    assert got["A"]["profit_share"] == pytest.approx(50 / 70)
