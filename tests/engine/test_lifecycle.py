"""Lifecycle (R1): stages from behaviour, stage changes, PostHog-style counts."""

from __future__ import annotations

import ibis
import pytest

from loyal.engine import lifecycle
from loyal.engine.execution import to_arrow
from loyal.engine.settings import EngineSettings

from .conftest import make_sources, ts

AS_OF = ts("2024-06-01")
# Churn window 60 days; at risk after 30 days without an order; grace 30 days.
SETTINGS = EngineSettings(churn_window_days=60, at_risk_fraction=0.5, subscription_grace_days=30)


def order(order_id, customer_id, at, status="paid"):
    return dict(order_id=order_id, customer_id=customer_id, ordered_at=at, status=status)


@pytest.fixture
def shop(duck):
    return make_sources(
        duck,
        customers=[
            dict(customer_id=i, stage=stage)
            for i, stage in [
                (1, "customer"),
                (2, "customer"),
                (3, None),
                (4, "customer"),
                (5, None),
                (6, "customer"),
                (7, None),
                (8, "intent"),
                (9, "potential_intent"),
                (10, "churned"),
                (11, "customer"),
            ]
        ],
        orders=[
            order(1, 1, "2024-05-20"),  # 12 days ago: customer
            order(2, 2, "2024-04-20"),  # 42 days ago: more than 30, less than 60 -> at risk
            order(3, 3, "2024-03-01"),  # 92 days ago -> churned
            order(4, 4, "2024-01-01"),
            order(5, 4, "2024-05-15"),  # back after a lapse (Mar 1), 17 days ago -> won back
            order(6, 11, "2023-01-01"),
            order(7, 11, "2024-02-10"),  # back in Feb, steady since: a customer again
            order(8, 11, "2024-03-20"),
            order(9, 11, "2024-05-10"),
            order(10, 10, "2024-05-25", status="refunded"),  # refunds are not purchases
        ],
        subscriptions=[
            # 5: every subscription ended May 20, inside the 30-day grace -> at risk.
            dict(subscription_id=1, customer_id=5, started_at="2023-01-01", ended_at="2024-05-20"),
            # 6: running -> customer; 7: ended Jan 1, grace over -> churned.
            dict(subscription_id=2, customer_id=6, started_at="2023-01-01"),
            dict(subscription_id=3, customer_id=7, started_at="2023-01-01", ended_at="2024-01-01"),
        ],
    )


def stages(expr):
    return {r["customer_id"]: r for r in to_arrow(expr).to_pylist()}


def test_stages_from_behaviour(shop):
    got = stages(lifecycle.customer_stages(shop, AS_OF, SETTINGS))
    assert {cid: r["stage"] for cid, r in got.items()} == {
        1: "customer",
        2: "at_risk",
        3: "churned",
        4: "won_back",
        5: "at_risk",
        6: "customer",
        7: "churned",
        8: "intent",  # no purchase: the imported stage is kept
        9: "potential_intent",
        10: "prospect",  # stored "churned" but never bought: behaviour says prospect
        11: "customer",
    }
    assert got[2]["days_since_last_order"] == 42.0
    assert got[4]["spells"] == 2
    assert got[3]["churned"] is True and got[3]["active"] is False
    assert got[6]["basis"] == "subscription"


def test_low_p_alive_moves_customers_to_at_risk_or_churned(shop):
    p_alive = ibis.memtable({"customer_id": [1, 11], "p_alive": [0.05, 0.3]})
    got = stages(lifecycle.customer_stages(shop, AS_OF, SETTINGS, p_alive))
    assert (got[1]["stage"], got[11]["stage"]) == ("churned", "at_risk")


def test_stage_changes_lists_only_changes(shop):
    current = lifecycle.customer_stages(shop, AS_OF, SETTINGS)
    changes = to_arrow(lifecycle.stage_changes(shop.customers, current)).to_pylist()
    got = {r["customer_id"]: (r["from_stage"], r["to_stage"]) for r in changes}
    assert got == {
        2: ("customer", "at_risk"),
        3: (None, "churned"),
        4: ("customer", "won_back"),
        5: (None, "at_risk"),
        7: (None, "churned"),
        10: ("churned", "prospect"),
    }


def test_lifecycle_counts_follow_posthog(duck):
    src = make_sources(
        duck,
        orders=[
            order(1, 1, "2024-01-05"),
            order(2, 1, "2024-02-05"),
            order(3, 1, "2024-04-05"),
            order(4, 2, "2024-02-10"),
            order(5, 2, "2024-03-10"),
            order(6, 3, "2023-11-01"),
            order(7, 3, "2024-03-01"),
        ],
    )
    got = {
        str(r["period"]): (r["new"], r["returning"], r["resurrecting"], r["dormant"])
        for r in to_arrow(
            lifecycle.lifecycle_counts(src, ts("2024-05-10"), SETTINGS, periods=4)
        ).to_pylist()
    }
    # Jan: 1 new. Feb: 1 returning, 2 new. Mar: 2 returning, 3 resurrecting (last seen Nov),
    # 1 dormant. Apr: 1 resurrecting; 2 and 3 dormant.
    assert got == {
        "2024-01-01": (1, 0, 0, 0),
        "2024-02-01": (1, 1, 0, 0),
        "2024-03-01": (0, 1, 1, 1),
        "2024-04-01": (0, 0, 1, 2),
    }


def test_lifecycle_counts_on_events_by_week(duck):
    src = make_sources(
        duck,
        events=[
            dict(customer_id=1, occurred_at="2024-01-01"),  # Monday, week 1
            dict(customer_id=1, occurred_at="2024-01-08"),  # week 2
            dict(customer_id=2, occurred_at="2024-01-14"),  # Sunday, still week 2
        ],
    )
    rows = to_arrow(
        lifecycle.lifecycle_counts(
            src, ts("2024-01-22"), SETTINGS, freq="week", periods=3, activity="events"
        )
    ).to_pylist()
    got = {str(r["period"]): (r["new"], r["returning"], r["dormant"]) for r in rows}
    assert got == {
        "2024-01-01": (1, 0, 0),
        "2024-01-08": (1, 1, 0),
        "2024-01-15": (0, 0, 2),
    }


def test_stages_are_the_records_stages():
    from loyal.imports.kinds import STAGES

    assert lifecycle.STAGES == STAGES
