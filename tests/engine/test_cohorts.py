"""Cohorts (R8-R10): retention matrix, loyalty ladder, critical window, tenure, hazard."""

from __future__ import annotations

import pytest

from loyal.engine import cohorts
from loyal.engine.execution import to_arrow
from loyal.engine.settings import EngineSettings

from .conftest import make_sources, ts


def order(order_id, customer_id, at, status="paid", revenue=10.0):
    return dict(
        order_id=order_id, customer_id=customer_id, ordered_at=at, status=status, revenue=revenue
    )


def rows(expr, *keys):
    return {tuple(r[k] for k in keys): r for r in to_arrow(expr).to_pylist()}


@pytest.fixture
def shop(duck):
    return make_sources(
        duck,
        customers=[
            dict(customer_id=1, acquisition_channel="web"),
            dict(customer_id=2, acquisition_channel="web"),
            dict(customer_id=3, acquisition_channel="store"),
            dict(customer_id=4, acquisition_channel="store"),
            dict(customer_id=5),
        ],
        orders=[
            order(1, 1, "2024-01-05"),
            order(2, 1, "2024-02-10"),
            order(3, 1, "2024-04-01"),
            order(4, 2, "2024-01-20"),
            order(5, 2, "2024-05-03"),
            order(6, 3, "2024-01-25"),
            order(7, 4, "2024-03-02"),
            order(8, 4, "2024-03-20"),
            order(9, 4, "2024-06-01"),  # June is not complete on June 15
            order(10, 5, "2024-02-01", status="refunded"),
            order(11, 5, "2024-03-10"),
        ],
    )


AS_OF = ts("2024-06-15")


def test_cohort_matrix_recurring_and_on_or_after(shop):
    settings = EngineSettings(churn_window_days=30, cohort_periods=4)
    got = rows(cohorts.cohort_retention(shop, AS_OF, settings), "cohort", "period")
    jan, mar = ts("2024-01-01").date(), ts("2024-03-01").date()
    # January cohort: 1, 2, 3. Active in Jan: all; Feb: 1; Mar: none; Apr: 1.
    # Last active month: 1 -> Apr (k=3), 2 -> May (k=4), 3 -> Jan (k=0).
    assert [got[(jan, k)]["customers"] for k in range(4)] == [3, 3, 3, 3]
    assert [got[(jan, k)]["active"] for k in range(4)] == [3, 1, 0, 1]
    assert [got[(jan, k)]["active_on_or_after"] for k in range(4)] == [3, 2, 2, 2]
    assert got[(jan, 1)]["retention"] == pytest.approx(1 / 3)
    assert got[(jan, 1)]["retention_on_or_after"] == pytest.approx(2 / 3)
    # March cohort: 4 and 5 (5's February order was refunded). May is the last complete month,
    # so k <= 2 only; 4's June order still counts for "on or after".
    assert sorted(k for c, k in got if c == mar) == [0, 1, 2]
    assert [got[(mar, k)]["active"] for k in range(3)] == [2, 0, 0]
    assert [got[(mar, k)]["active_on_or_after"] for k in range(3)] == [2, 1, 1]


def test_cohort_matrix_by_acquisition_channel(shop):
    settings = EngineSettings(churn_window_days=30, cohort_periods=2)
    got = rows(
        cohorts.cohort_retention(shop, AS_OF, settings, by="acquisition_channel"),
        "cohort",
        "period",
    )
    # web: 1 and 2 (Jan cohort); store: 3 (Jan) and 4 (Mar); customer 5 has no channel.
    assert got[("web", 0)]["customers"] == 2
    assert got[("web", 1)]["active"] == 1  # customer 1 in February
    assert got[("store", 1)]["active"] == 0
    assert got[(None, 0)]["customers"] == 1


def test_loyalty_ladder_with_horizon(shop):
    settings = EngineSettings(ladder_max_purchases=3, ladder_horizon_days=60)
    got = rows(cohorts.loyalty_ladder(shop.orders, AS_OF, settings), "purchases")
    # Gaps to the next order: 1: 36 d then 51 d; 2: 104 d; 4: 18 d then 73 d; 3 and 5: none.
    # Eligible = n-th order on or before Apr 16 (60 days before as_of).
    assert got[(1,)]["reached"] == 5 and got[(1,)]["made_next"] == 3
    assert got[(1,)]["repeat_rate"] == pytest.approx(0.6)
    assert (got[(1,)]["eligible"], got[(1,)]["retained"]) == (5, 2)
    assert (got[(2,)]["reached"], got[(2,)]["made_next"]) == (3, 2)
    assert (got[(2,)]["eligible"], got[(2,)]["retained"]) == (2, 1)
    assert got[(2,)]["retention_at_horizon"] == pytest.approx(0.5)
    assert (got[(3,)]["reached"], got[(3,)]["eligible"], got[(3,)]["retained"]) == (2, 1, 0)


@pytest.fixture
def early(duck):
    # All joined on Jan 1; as_of Jun 1; early window 30 days; retained = an order in days 61-120.
    return make_sources(
        duck,
        customers=[dict(customer_id=i, joined_at="2024-01-01") for i in (1, 2, 3, 4)],
        orders=[
            order(1, 2, "2024-02-15"),  # day 45: outside the first 30 days, before day 61
            order(2, 3, "2024-01-10"),
            order(3, 3, "2024-03-15"),  # 74 days after joining, 65 after the first order
            order(4, 4, "2024-01-02"),
            order(5, 4, "2024-01-05"),
            order(6, 4, "2024-01-09"),  # three early orders, capped at 2
        ],
    )


EARLY = EngineSettings(
    churn_window_days=30,
    critical_windows_days=(30,),
    critical_retained_days=(60, 120),
    critical_max_purchases=2,
)


def test_critical_window_from_joining_reproduces_the_zero_vs_one_comparison(early):
    got = rows(
        cohorts.critical_window(early, ts("2024-06-01"), EARLY, anchor="joined"),
        "window_days",
        "purchases",
    )
    # 0 early purchases: customers 1 and 2, neither retained; 1: customer 3, retained;
    # 2 or more: customer 4, not retained.
    assert {k: (r["customers"], r["retained"]) for k, r in got.items()} == {
        (30, 0): (2, 0),
        (30, 1): (1, 1),
        (30, 2): (1, 0),
    }
    assert got[(30, 1)]["retention_rate"] == 1.0


def test_critical_window_from_first_purchase_skips_customers_not_yet_observed(early):
    got = rows(cohorts.critical_window(early, ts("2024-06-01"), EARLY), "window_days", "purchases")
    # Customer 2's first order (Feb 15) + 120 days is after as_of: left out.
    assert {k: (r["customers"], r["retained"]) for k, r in got.items()} == {
        (30, 1): (1, 1),
        (30, 2): (1, 0),
    }


def test_critical_window_rejects_unknown_anchor(early):
    with pytest.raises(ValueError, match="anchor"):
        cohorts.critical_window(early, ts("2024-06-01"), EARLY, anchor="birthday")


def test_tenure_curve_by_month_since_joining(duck):
    src = make_sources(
        duck,
        customers=[
            dict(customer_id=1, joined_at="2024-01-10"),
            dict(customer_id=2),  # no joined_at: joins with the first order (February)
            dict(customer_id=3, joined_at="2024-03-01"),
        ],
        orders=[
            order(1, 1, "2024-01-12"),
            order(2, 1, "2024-03-03"),
            order(3, 1, "2024-03-20"),
            order(4, 2, "2024-02-05"),
            order(5, 2, "2024-02-20"),
            order(6, 2, "2024-04-01"),
        ],
        events=[dict(customer_id=3, occurred_at="2024-03-05", event_type="view")],
    )
    settings = EngineSettings(churn_window_days=30, tenure_max_months=4)
    got = rows(cohorts.tenure_curve(src, ts("2024-05-15"), settings), "tenure_month")
    # Complete months through April: customer 1 sees k 0-3, customer 2 k 0-2, customer 3 k 0-1.
    assert [got[(k,)]["customers"] for k in range(4)] == [3, 3, 2, 1]
    # k0: 1 (Jan) and 2 (Feb, 2 orders); k2: 1 (Mar, 2 orders) and 2 (Apr).
    assert [got[(k,)]["buyers"] for k in range(4)] == [2, 0, 2, 0]
    assert [got[(k,)]["orders"] for k in range(4)] == [3, 0, 3, 0]
    assert got[(0,)]["active_share"] == pytest.approx(2 / 3)
    assert got[(2,)]["orders_per_customer"] == pytest.approx(1.5)
    assert got[(0,)]["visitors"] == 1


def test_subscription_hazard_by_tenure_month(duck):
    src = make_sources(
        duck,
        subscriptions=[
            # 73 days -> month 2, churned; 40 days -> month 1, churned; running 92 days -> 3.
            dict(subscription_id=1, customer_id=1, started_at="2023-01-01", ended_at="2023-03-15"),
            dict(subscription_id=2, customer_id=2, started_at="2023-01-01", ended_at="2023-02-10"),
            dict(subscription_id=3, customer_id=3, started_at="2024-03-01"),
        ],
    )
    settings = EngineSettings(churn_window_days=30, subscription_grace_days=0, hazard_max_months=4)
    got = rows(cohorts.subscription_hazard(src, ts("2024-06-01"), settings), "tenure_month")
    assert [got[(m,)]["at_risk"] for m in range(4)] == [3, 3, 2, 1]
    assert [got[(m,)]["churned"] for m in range(4)] == [0, 1, 1, 0]
    assert got[(1,)]["hazard"] == pytest.approx(1 / 3)
    assert got[(2,)]["hazard"] == pytest.approx(1 / 2)
