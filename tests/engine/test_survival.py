"""Survival (R10): subscription durations and Kaplan-Meier curves by segment."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from loyal.engine import survival
from loyal.engine.execution import to_arrow
from loyal.engine.settings import EngineSettings

from .conftest import make_sources, ts


def test_durations_of_subscription_spells(duck):
    src = make_sources(
        duck,
        customers=[
            dict(customer_id=1, acquisition_channel="web"),
            dict(customer_id=2, acquisition_channel="store"),
        ],
        subscriptions=[
            # Customer 1: renewed 10 days after the first end (grace 30): one spell, Jan 1 to
            # Apr 1 = 91 days, churned (Apr 1 + 30 days < Jun 1).
            dict(subscription_id=1, customer_id=1, started_at="2024-01-01", ended_at="2024-02-01"),
            dict(subscription_id=2, customer_id=1, started_at="2024-02-11", ended_at="2024-04-01"),
            # Customer 2: ended May 20, still in grace on Jun 1: censored at Jun 1 (31 days).
            dict(subscription_id=3, customer_id=2, started_at="2024-05-01", ended_at="2024-05-20"),
            # Customer 3 still subscribes: censored, 152 days.
            dict(subscription_id=4, customer_id=3, started_at="2024-01-01"),
        ],
        orders=[dict(order_id=1, customer_id=9, ordered_at="2024-01-01", status="paid")],
    )
    settings = EngineSettings(churn_window_days=30, subscription_grace_days=30)
    expr = survival.subscription_durations(
        src, ts("2024-06-01"), settings, by="acquisition_channel"
    )
    got = {r["customer_id"]: r for r in to_arrow(expr).to_pylist()}
    assert set(got) == {1, 2, 3}  # order-based customer 9 has no subscription
    assert (got[1]["duration_days"], got[1]["event"], got[1]["acquisition_channel"]) == (
        91.0,
        True,
        "web",
    )
    assert (got[2]["duration_days"], got[2]["event"]) == (31.0, False)
    assert (got[3]["duration_days"], got[3]["event"], got[3]["acquisition_channel"]) == (
        152.0,
        False,
        None,
    )


def test_kaplan_meier_by_hand():
    durations = pa.table(
        {"duration_days": [1.0, 2.0, 2.0, 3.0, 4.0], "event": [True, True, False, True, False]}
    )
    got = survival.kaplan_meier(durations).to_pylist()
    curve = {r["time_days"]: r for r in got}
    # t=1: 5 at risk, 1 churns -> 4/5 = 0.8; t=2: 4 at risk, 1 churns (1 censored) -> 0.8 x 3/4
    # = 0.6; t=3: 2 at risk, 1 churns -> 0.3; t=4: 1 at risk, censored -> 0.3.
    assert [curve[t]["survival"] for t in (0.0, 1.0, 2.0, 3.0, 4.0)] == pytest.approx(
        [1.0, 0.8, 0.6, 0.3, 0.3]
    )
    assert [curve[t]["at_risk"] for t in (1.0, 2.0, 3.0, 4.0)] == [5, 4, 2, 1]
    assert {r["group"] for r in got} == {"all"}
    for r in got:
        assert r["ci_lower"] <= r["survival"] <= r["ci_upper"]


def test_kaplan_meier_by_segment_on_a_timeline():
    durations = pa.table(
        {
            "duration_days": [10.0, 20.0, 30.0, 5.0],
            "event": [True, True, True, False],
            "plan": ["basic", "basic", "pro", None],
        }
    )
    got = survival.kaplan_meier(durations, by="plan", timeline=[0, 15, 25]).to_pylist()
    curves = {(r["group"], r["time_days"]): r["survival"] for r in got}
    # basic: churn at 10 and 20 -> 0.5 at day 15, 0 at day 25; pro: 1 until day 30.
    assert curves[("basic", 15.0)] == pytest.approx(0.5)
    assert curves[("basic", 25.0)] == pytest.approx(0.0)
    assert curves[("pro", 25.0)] == pytest.approx(1.0)
    assert curves[(None, 25.0)] == pytest.approx(1.0)


def test_kaplan_meier_names_missing_columns():
    with pytest.raises(ValueError, match="'plan'"):
        survival.kaplan_meier(pa.table({"duration_days": [1.0], "event": [True]}), by="plan")


@pytest.mark.parametrize("timeline", [None, [0.0, 3.5, 7.0, 14.0, 30.0, 61.0, 200.0]])
def test_kaplan_meier_matches_lifelines(timeline):
    lifelines = pytest.importorskip("lifelines")
    rng = np.random.default_rng(3)
    size = 400
    durations = pa.table(
        {
            # Whole days give ties; some zero durations; about a third censored.
            "duration_days": np.floor(rng.exponential(40.0, size)),
            "event": rng.random(size) < 0.65,
            "plan": rng.choice(np.array(["basic", "pro", None], dtype=object), size),
        }
    )
    got = survival.kaplan_meier(durations, by="plan", alpha=0.1, timeline=timeline)
    frame = durations.to_pandas()
    for label in ("basic", "pro", None):
        part = frame[frame["plan"].isna()] if label is None else frame[frame["plan"] == label]
        fitter = lifelines.KaplanMeierFitter(alpha=0.1).fit(
            part["duration_days"], part["event"], timeline=timeline
        )
        mine = got.filter(
            pc.is_null(got["group"]) if label is None else pc.equal(got["group"], label)
        )
        expected_times = fitter.survival_function_.index.to_numpy(dtype=float)
        np.testing.assert_array_equal(mine["time_days"].to_numpy(), expected_times)
        np.testing.assert_allclose(
            mine["survival"].to_numpy(), fitter.survival_function_.iloc[:, 0], rtol=1e-12
        )
        ci = fitter.confidence_interval_survival_function_
        np.testing.assert_allclose(mine["ci_lower"].to_numpy(), ci.iloc[:, 0], rtol=1e-9)
        np.testing.assert_allclose(mine["ci_upper"].to_numpy(), ci.iloc[:, 1], rtol=1e-9)
        sizes = part["duration_days"].to_numpy()
        at_risk = [int((sizes >= t).sum()) for t in expected_times]
        assert mine["at_risk"].to_pylist() == at_risk
