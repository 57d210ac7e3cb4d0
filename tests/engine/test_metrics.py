"""Churn (R6): coverage spells, the churn window, absolute/relative rates, revenue retention."""

from __future__ import annotations

import datetime as dt

import ibis
import numpy as np
import pytest

from loyal.engine import churn_window, metrics, revenue_retention
from loyal.engine.common import DAY, Period, epoch
from loyal.engine.execution import to_arrow, to_pandas, to_row
from loyal.engine.settings import EngineSettings

from .conftest import make_sources, ts

AS_OF = ts("2024-06-01")


def order(order_id, customer_id, at, revenue=10.0, status="paid", cost=0.0):
    return dict(
        order_id=order_id,
        customer_id=customer_id,
        ordered_at=at,
        status=status,
        revenue=revenue,
        cost=cost,
    )


def sub(subscription_id, customer_id, started, ended=None, monthly=10.0):
    return dict(
        subscription_id=subscription_id,
        customer_id=customer_id,
        started_at=started,
        ended_at=ended,
        monthly_amount=monthly,
    )


# --- churn window --------------------------------------------------------------------------


def test_gap_quantile_is_nearest_rank(duck):
    # Customer 1 orders on days 0, 10, 30, 60, 100 -> gaps 10, 20, 30, 40; customer 2 has one
    # gap of 100 days. Sorted gaps 10 20 30 40 100: cume_dist 0.2 0.4 0.6 0.8 1.0, so the 0.8
    # quantile is 40 and the 0.9 quantile is 100.
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    days = [0, 10, 30, 60, 100]
    orders = [order(i, 1, base + dt.timedelta(days=d)) for i, d in enumerate(days)]
    orders += [order(10, 2, "2024-01-01"), order(11, 2, "2024-04-10")]
    orders += [order(12, 3, "2024-01-01", status="refunded"), order(13, 3, "2024-01-05")]
    src = make_sources(duck, orders=orders)
    assert to_row(churn_window.gap_quantile(src.orders, AS_OF, 0.8)) == {
        "gaps": 5,
        "quantile_days": 40,
    }
    assert to_row(churn_window.gap_quantile(src.orders, AS_OF, 0.9))["quantile_days"] == 100


@pytest.mark.parametrize("quantile", [0.0, 0.1, 0.5, 0.75, 0.9, 0.99, 1.0])
def test_gap_quantile_is_the_smallest_gap_whose_cume_dist_reaches_it(duck, quantile):
    # Many customers, gaps in whole and fractional days with ties: the per-day counting gives
    # what ranking every gap with cume_dist gives.
    rng = np.random.default_rng(5)
    base = dt.datetime(2023, 1, 1, tzinfo=dt.UTC)
    orders, order_id = [], 0
    for customer in range(1, 80):
        at = base
        for _ in range(int(rng.integers(1, 9))):
            hours = int(rng.choice([24, 36, 240, int(rng.integers(1, 4000))]))
            at += dt.timedelta(hours=hours)
            order_id += 1
            orders.append(order(order_id, customer, at))
    src = make_sources(duck, orders=orders)
    gaps = churn_window.purchase_gaps(src.orders, AS_OF)
    ranked = gaps.mutate(cd=ibis.cume_dist().over(order_by=gaps.gap_days))
    expected = ranked.filter(ranked.cd >= quantile).aggregate(q=ranked.gap_days.min())
    row = to_row(churn_window.gap_quantile(src.orders, AS_OF, quantile))
    assert row["quantile_days"] == to_row(expected)["q"]
    assert row["gaps"] == to_row(gaps.aggregate(n=gaps.count()))["n"]


@pytest.mark.parametrize(
    ("quantile_days", "gaps", "expected"),
    [(47.6, 100, 48), (3.0, 100, 30), (900.0, 100, 365), (47.6, 5, 90), (None, 0, 90)],
)
def test_choose_churn_window_rounds_clamps_and_falls_back(quantile_days, gaps, expected):
    assert churn_window.choose_churn_window(quantile_days, gaps, EngineSettings()) == expected


def test_resolve_churn_window_keeps_an_explicit_window_and_computes_a_missing_one(duck):
    # Gaps 10, 20, 30, 40 -> 0.9 quantile 40 days (min_gaps lowered to 4 to trust it).
    base = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    days = [0, 10, 30, 60, 100]
    src = make_sources(
        duck, orders=[order(i, 1, base + dt.timedelta(days=d)) for i, d in enumerate(days)]
    )
    explicit = EngineSettings(churn_window_days=77)
    assert churn_window.resolve_churn_window(src.orders, AS_OF, explicit) is explicit
    resolved = churn_window.resolve_churn_window(
        src.orders, AS_OF, EngineSettings(churn_window_min_gaps=4)
    )
    assert resolved.churn_window_days == 40


def test_unresolved_window_is_a_clear_error(duck):
    src = make_sources(duck)
    with pytest.raises(ValueError, match="resolve_churn_window"):
        metrics.activity_spells(src, AS_OF, EngineSettings())


# --- spells ---------------------------------------------------------------------------------


def test_spells_merge_orders_within_the_window_and_renewals_within_grace(duck):
    src = make_sources(
        duck,
        orders=[
            # Customer 1, window 30 days: Jan 1 and Jan 20 overlap (covered to Feb 19), Apr 1
            # starts a second spell; the refunded order counts for nothing.
            order(1, 1, "2024-01-01"),
            order(2, 1, "2024-01-20"),
            order(3, 1, "2024-04-01"),
            order(4, 1, "2024-03-01", status="refunded"),
            order(5, 1, "2024-07-01"),  # after as_of: ignored
            # Customer 12 also has a subscription, so its orders are ignored.
            order(6, 12, "2024-05-01"),
        ],
        subscriptions=[
            # Customer 10 renews 17 days after the end (grace 30): one open spell.
            sub(1, 10, "2023-01-01", "2024-01-15"),
            sub(2, 10, "2024-02-01"),
            # Customer 11 ends Feb 10 and lapses 30 days later.
            sub(3, 11, "2023-06-01", "2024-02-10"),
            # Customer 12's end lies after as_of: still running as of as_of.
            sub(4, 12, "2023-06-01", "2024-09-01"),
        ],
    )
    settings = EngineSettings(churn_window_days=30, subscription_grace_days=30)
    rows = to_arrow(metrics.activity_spells(src, AS_OF, settings)).to_pylist()
    got = sorted(
        (r["customer_id"], r["spell_no"], r["basis"], r["start_s"], r["reach_s"], r["last_s"])
        for r in rows
    )
    open_end = metrics.OPEN_END
    assert got == [
        (
            1,
            1,
            "purchase",
            epoch(ts("2024-01-01")),
            epoch(ts("2024-02-19")),
            epoch(ts("2024-01-20")),
        ),
        (
            1,
            2,
            "purchase",
            epoch(ts("2024-04-01")),
            epoch(ts("2024-05-01")),
            epoch(ts("2024-04-01")),
        ),
        (10, 1, "subscription", epoch(ts("2023-01-01")), open_end, None),
        (
            11,
            1,
            "subscription",
            epoch(ts("2023-06-01")),
            epoch(ts("2024-03-11")),
            epoch(ts("2024-02-10")),
        ),
        (12, 1, "subscription", epoch(ts("2023-06-01")), open_end, None),
    ]


# --- churn rates ----------------------------------------------------------------------------


def worked_example_sources(con):
    """Seed 004: 500 customers at the period start, 25 lost, the lost bought 3x the average.

    Churn window 60 days, period [2024-06-01, 2024-07-01). The 475 retained customers ordered
    40 on 2024-04-15 and 45 on 2024-06-20 (85 each); the 25 lost ordered 285 once on 2024-04-15,
    so their coverage lapses on 2024-06-14, inside the period. Average purchase of all:
    (25 × 285 + 475 × 85) / 500 = (7125 + 40375) / 500 = 95; of the lost: 285 = 3 × 95.
    """
    customers, orders = [], []
    for cid in range(1, 501):
        lost = cid <= 25
        customers.append(dict(customer_id=cid, city="上海" if cid % 2 else "北京"))
        if lost:
            orders.append(order(cid * 10, cid, "2024-04-15", revenue=285.0))
        else:
            orders.append(order(cid * 10, cid, "2024-04-15", revenue=40.0))
            orders.append(order(cid * 10 + 1, cid, "2024-06-20", revenue=45.0))
    return make_sources(con, customers=customers, orders=orders)


WORKED = EngineSettings(churn_window_days=60, kpi_period_days=30)


def test_relative_churn_matches_worked_example(duck):
    src = worked_example_sources(duck)
    row = to_row(metrics.churn_rate(src, ts("2024-07-01"), WORKED))
    # 500 -> 475: 25 lost, absolute 25/500 = 5 %; relative 5 % x 3 = 15 %.
    assert row["customers"] == 500
    assert row["lost_customers"] == 25
    assert row["absolute_churn_rate"] == pytest.approx(0.05, rel=1e-12)
    assert row["value_mean"] == pytest.approx(95.0, rel=1e-12)
    assert row["lost_value_mean"] == pytest.approx(285.0, rel=1e-12)
    assert row["relative_churn_rate"] == pytest.approx(0.15, rel=1e-12)


def test_churn_rates_formula_on_a_plain_flags_table(duck):
    # The formula alone, on the worked example's numbers (25 lost at 285, 475 kept at 85).
    flags = ibis.memtable(
        {"lost": [True] * 25 + [False] * 475, "value": [285.0] * 25 + [85.0] * 475}
    )
    row = to_row(metrics.churn_rates(flags))
    assert row["absolute_churn_rate"] == pytest.approx(0.05)
    assert row["relative_churn_rate"] == pytest.approx(0.15)


def test_churn_rate_per_segment(duck):
    src = worked_example_sources(duck)
    rows = to_pandas(metrics.churn_rate(src, ts("2024-07-01"), WORKED, by=["city"]))
    rows = rows.set_index("city")
    # Odd ids live in 上海: 13 of the 25 lost (1, 3, ..., 25) among 250; 北京: 12 of 250.
    assert rows.loc["上海", "lost_customers"] == 13
    assert rows.loc["北京", "lost_customers"] == 12
    assert rows.loc["上海", "absolute_churn_rate"] == pytest.approx(13 / 250)
    # 上海: mean of all = (13 x 285 + 237 x 85) / 250 = 23850 / 250 = 95.4
    assert rows.loc["上海", "relative_churn_rate"] == pytest.approx(13 / 250 * 285 / 95.4)


def test_unknown_segment_column_is_named(duck):
    src = worked_example_sources(duck)
    with pytest.raises(ValueError, match="shoe_size"):
        metrics.churn_rate(src, ts("2024-07-01"), WORKED, by=["shoe_size"])


def test_low_p_alive_counts_as_lost_at_as_of(duck):
    src = worked_example_sources(duck)
    # Customers 26 and 27 are covered, but the model says they are gone (P(alive) 0.05 < 0.1);
    # customer 28's 0.5 is above the threshold.
    p_alive = ibis.memtable({"customer_id": [26, 27, 28], "p_alive": [0.05, 0.05, 0.5]})
    row = to_row(metrics.churn_rate(src, ts("2024-07-01"), WORKED, p_alive=p_alive))
    assert row["lost_customers"] == 27


def test_churn_trend_counts_customers_active_at_each_month_start(duck):
    src = make_sources(
        duck,
        orders=[
            order(1, 1, "2024-01-01"),
            order(2, 1, "2024-01-20"),  # covered to Feb 19: lost in February
            order(3, 2, "2024-02-01"),  # covered to Mar 2: lost in March
            order(4, 3, "2024-01-15"),
            order(5, 3, "2024-02-10"),
            order(6, 3, "2024-03-05"),  # covered to Apr 4: lost in April
        ],
    )
    settings = EngineSettings(churn_window_days=30)
    rows = to_pandas(metrics.churn_trend(src, ts("2024-05-01"), settings, periods=4))
    rows = rows.set_index(rows.period.astype(str))
    # Jan 1: customer 1 only (its order at Jan 1 00:00 covers the instant). Feb 1: 1, 2, 3.
    # Mar 1: 2, 3. Apr 1: 3.
    assert rows.customers.to_dict() == {
        "2024-01-01": 1,
        "2024-02-01": 3,
        "2024-03-01": 2,
        "2024-04-01": 1,
    }
    assert rows.lost_customers.to_dict() == {
        "2024-01-01": 0,
        "2024-02-01": 1,
        "2024-03-01": 1,
        "2024-04-01": 1,
    }


def test_a_period_ending_after_as_of_is_refused(duck):
    src = make_sources(duck)
    settings = EngineSettings(churn_window_days=30)
    with pytest.raises(ValueError, match="ends after as_of"):
        metrics.churn_flags(src, [Period(ts("2024-05-01"), ts("2024-07-01"))], AS_OF, settings)


def test_subscription_customer_is_lost_once_grace_passes_without_renewal(duck):
    src = make_sources(
        duck,
        subscriptions=[
            sub(1, 1, "2023-01-01", "2024-04-20"),  # lapses May 20: lost in May
            sub(2, 2, "2023-01-01", "2024-04-20"),
            sub(3, 2, "2024-05-10"),  # renewed within grace: kept
            sub(4, 3, "2023-01-01", "2024-05-25"),  # in grace at Jun 1: not lost yet
        ],
    )
    settings = EngineSettings(churn_window_days=30, subscription_grace_days=30)
    flags = to_pandas(
        metrics.churn_flags(src, [Period(ts("2024-05-01"), AS_OF)], AS_OF, settings)
    ).set_index("customer_id")
    assert flags.lost.to_dict() == {1: True, 2: False, 3: False}
    assert set(flags.basis) == {"subscription"}


# --- revenue retention ----------------------------------------------------------------------


def test_revenue_retention_and_nrr_by_hand(duck):
    src = make_sources(
        duck,
        subscriptions=[
            sub(1, 10, "2023-01-01", "2024-01-15", monthly=5.0),
            sub(2, 10, "2024-02-01", monthly=7.0),  # 7 at Feb 1 and Mar 1
            sub(3, 11, "2023-06-01", "2024-02-10", monthly=9.0),  # churned: 9 -> 0
            sub(4, 12, "2023-01-01", "2024-02-15", monthly=10.0),  # upgrade 10 -> 15
            sub(5, 12, "2024-02-15", monthly=15.0),
            sub(6, 13, "2023-01-01", "2024-02-10", monthly=20.0),  # downgrade 20 -> 12
            sub(7, 13, "2024-02-10", monthly=12.0),
            sub(8, 14, "2024-02-20", monthly=6.0),  # new in February
        ],
    )
    row = to_row(
        revenue_retention.revenue_retention(
            src.subscriptions, [Period(ts("2024-02-01"), ts("2024-03-01"))], AS_OF
        )
    )
    # Feb 1: 7 + 9 + 10 + 20 = 46 from 4 customers; Mar 1, same customers: 7 + 0 + 15 + 12 = 34.
    assert row["customers"] == 4
    assert row["mrr_start"] == pytest.approx(46.0)
    assert row["mrr_end"] == pytest.approx(34.0)
    assert row["churned_mrr"] == pytest.approx(9.0)
    assert row["contraction_mrr"] == pytest.approx(8.0)
    assert row["expansion_mrr"] == pytest.approx(5.0)
    assert row["new_mrr"] == pytest.approx(6.0)
    assert row["net_revenue_retention"] == pytest.approx(34 / 46)
    assert row["gross_revenue_retention"] == pytest.approx(29 / 46)
    assert row["revenue_churn_rate"] == pytest.approx(17 / 46)


def test_customer_value_adds_pro_rata_subscription_fees(duck):
    # 30.4375 days of a 10/month subscription inside the 365-day window = 10.0, plus the May
    # order (25); the 2022 order is outside the window.
    start = AS_OF - dt.timedelta(days=30.4375)
    src = make_sources(
        duck,
        orders=[order(1, 1, "2024-05-01", revenue=25.0), order(2, 1, "2022-01-01", revenue=99.0)],
        subscriptions=[sub(1, 1, start, monthly=10.0)],
    )
    table = metrics.periods_table([Period(AS_OF, AS_OF)])
    row = to_row(metrics.customer_value(src, table, 365))
    assert row["value"] == pytest.approx(35.0)
    assert epoch(AS_OF) - epoch(start) == pytest.approx(30.4375 * DAY)


def test_complaint_churn_groups_buyers_by_their_complaint_experience(duck):
    # Buyers 1–4 (5 is a prospect and is left out):
    #   1: no complaint, not churned; 2: no complaint, churned  -> none: 2 customers, 1 churned
    #   3: one resolved complaint, not churned                   -> resolved: 1, 0 churned
    #   4: a resolved and an unresolved complaint, churned       -> unresolved: 1, 1 churned
    # A complaint after as_of (customer 1) does not count.
    customers = ibis.memtable(
        {
            "customer_id": [1, 2, 3, 4, 5],
            "stage": ["customer", "churned", "customer", "churned", "prospect"],
            "churned": [False, True, False, True, False],
        }
    )
    sources = make_sources(
        duck,
        interactions=[
            {
                "interaction_id": 1,
                "customer_id": 3,
                "occurred_at": ts("2024-02-01"),
                "kind": "complaint",
                "outcome": "resolved",
            },
            {
                "interaction_id": 2,
                "customer_id": 4,
                "occurred_at": ts("2024-02-01"),
                "kind": "complaint",
                "outcome": "resolved",
            },
            {
                "interaction_id": 3,
                "customer_id": 4,
                "occurred_at": ts("2024-03-01"),
                "kind": "complaint",
                "outcome": "unresolved",
            },
            {
                "interaction_id": 4,
                "customer_id": 2,
                "occurred_at": ts("2024-03-01"),
                "kind": "call",
                "outcome": "unresolved",
            },
            {
                "interaction_id": 5,
                "customer_id": 1,
                "occurred_at": ts("2024-09-01"),
                "kind": "complaint",
                "outcome": "unresolved",
            },
        ],
    )
    rows = to_arrow(
        metrics.complaint_churn(customers, sources.interactions, ts("2024-06-01"))
    ).to_pylist()
    assert rows == [
        {"complaint_status": "none", "customers": 2, "churned": 1, "churn_rate": 0.5},
        {"complaint_status": "resolved", "customers": 1, "churned": 0, "churn_rate": 0.0},
        {"complaint_status": "unresolved", "customers": 1, "churned": 1, "churn_rate": 1.0},
    ]
