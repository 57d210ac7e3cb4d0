"""Why customers leave (R17): global drivers, per-customer reasons and stated reasons."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json

import numpy as np
import pandas as pd
import pytest

from loyal.engine import churn, drivers
from loyal.engine.drivers import Reason
from loyal.engine.execution import to_pandas
from loyal.engine.settings import EngineSettings
from tests.engine.conftest import make_sources, ts
from tests.engine.test_churn import demo_backtest

# --- On the demo business, whose members leave when activity thins out or complaints go
# unresolved, cancel more in their first six months, and stay longer when they use more. ---------


def test_global_drivers_find_the_demo_effects():
    bt = demo_backtest()
    found = drivers.global_drivers(bt.model, bt.test)
    by_name = {d.name: d for d in found}
    assert sorted(by_name) == sorted(d.name for d in drivers.DRIVERS)
    assert [d.importance for d in found] == sorted((d.importance for d in found), reverse=True)
    top = [d.name for d in found[:3]]
    assert "activity" in top and "tenure" in top
    # Risk rises with the days without a visit and with unresolved complaints...
    assert by_name["activity"].direction == "up"
    assert by_name["complaints"].direction == "up"
    assert by_name["complaints"].importance > 0
    # ... and falls after the six-month watershed and with the breadth of services used.
    assert by_name["tenure"].direction == "down"
    assert by_name["services"].direction == "down"


def test_reasons_name_unresolved_complaints():
    bt = demo_backtest()
    typical = drivers.typical_customer(bt.test)
    unhappy = dict(typical, customer_id=-1)
    unhappy.update(unresolved_complaints_90d=2, complaints_90d=2, complaints_total=2)
    frame = pd.DataFrame([unhappy, dict(typical, customer_id=-2)])
    reasons = drivers.customer_reasons(bt.model, frame, typical=typical)
    assert Reason("unresolved_complaints", {"count": 2}) in reasons[-1]
    assert reasons[-2] == ()  # the typical customer has nothing pushing them up


def test_reasons_on_the_demo_are_few_and_known():
    bt = demo_backtest()
    reasons = drivers.customer_reasons(bt.model, bt.test)
    assert set(reasons) == set(bt.test.customer_id)
    assert all(len(found) <= 3 for found in reasons.values())
    codes = {r.code for found in reasons.values() for r in found}
    assert codes <= set(drivers.REASON_PARAMS)
    assert "no_activity_days" in codes
    for found in reasons.values():
        for reason in found:
            assert set(reason.params) == set(drivers.REASON_PARAMS[reason.code])


# --- Per-customer reasons with a model whose risk is known ----------------------------------------


class LinearRisk:
    """A stand-in model: risk rises 0.003 a day without a visit, 0.1 per unresolved complaint
    and 0.02 for fewer than 3 services."""

    def churn_probability(self, X: pd.DataFrame) -> np.ndarray:
        return (
            0.1
            + 0.003 * X.days_since_last_event.astype(float)
            + 0.1 * X.unresolved_complaints_90d.astype(float)
            + 0.02 * (X.services_90d.astype(float) < 3)
        ).to_numpy()


def frame_of(*rows: dict) -> pd.DataFrame:
    base = {name: 0 for name in churn.FEATURES}
    base.update(
        plan="basic", acquisition_channel="web", tenure_months=12.0, services_90d=5,
        days_since_last_event=10.0, days_since_last_order=20.0, activity_trend=1.0,
    )  # fmt: skip
    return pd.DataFrame([dict(base, **row) for row in rows])


def test_reasons_are_the_features_raising_risk_most_in_order():
    frame = frame_of(
        {"customer_id": 1, "days_since_last_event": 40.0, "unresolved_complaints_90d": 2},
        {"customer_id": 2, "days_since_last_event": 50.0, "services_90d": 1},
        {"customer_id": 3, "days_since_last_event": 2.0},
        {"customer_id": 4},
    )
    reasons = drivers.customer_reasons(LinearRisk(), frame)
    # Typical: 25 days without a visit (the median), 5 services, no complaint.
    assert reasons[1] == (
        Reason("unresolved_complaints", {"count": 2}),  # +0.2
        Reason("no_activity_days", {"days": 40}),  # +0.045
    )
    assert reasons[2] == (
        Reason("no_activity_days", {"days": 50}),  # +0.075
        Reason("few_services", {"count": 1}),  # +0.02
    )
    assert reasons[3] == () and reasons[4] == ()  # more active than typical
    top_one = drivers.customer_reasons(LinearRisk(), frame, top=1, min_effect=0.05)
    assert top_one[1] == (Reason("unresolved_complaints", {"count": 2}),)
    assert top_one[2] == (Reason("no_activity_days", {"days": 50}),)


def test_typical_customer_is_the_median_and_the_commonest_category():
    frame = frame_of(
        {"customer_id": 1, "plan": "plus", "tenure_months": 2.0},
        {"customer_id": 2, "plan": "plus", "tenure_months": 4.0},
        {"customer_id": 3, "tenure_months": 30.0},
    )
    typical = drivers.typical_customer(frame)
    assert typical["plan"] == "plus" and typical["tenure_months"] == 4.0
    assert typical["acquisition_channel"] == "web"


def test_reasons_table_holds_one_row_per_reason():
    table = drivers.reasons_table(
        {7: (Reason("no_activity_days", {"days": 21}), Reason("few_services", {"count": 1})), 8: ()}
    )
    assert table.column("customer_id").to_pylist() == [7, 7]
    assert table.column("rank").to_pylist() == [1, 2]
    assert json.loads(table.column("params")[0].as_py()) == {"days": 21}
    assert drivers.reasons_table({}).num_rows == 0


class CountingRisk(LinearRisk):
    """LinearRisk that remembers how many rows each call scored."""

    def __init__(self) -> None:
        self.rows_per_call: list[int] = []

    def churn_probability(self, X: pd.DataFrame) -> np.ndarray:
        self.rows_per_call.append(len(X))
        return super().churn_probability(X)


def labelled_frame(customers: int) -> pd.DataFrame:
    rng = np.random.default_rng(5)
    frame = frame_of(*({"customer_id": i} for i in range(customers)))
    frame["days_since_last_event"] = rng.uniform(0, 90, customers)
    frame["unresolved_complaints_90d"] = rng.poisson(0.3, customers)
    frame["churned"] = rng.uniform(size=customers) < 0.1 + frame.days_since_last_event / 200
    return frame


def test_global_drivers_are_measured_on_a_seeded_sample_of_at_most_max_rows():
    frame = labelled_frame(3000)
    model = CountingRisk()
    found = drivers.global_drivers(model, frame, max_rows=400)
    [rows] = model.rows_per_call  # every variant in one call
    assert rows % 400 == 0
    again = drivers.global_drivers(CountingRisk(), frame, max_rows=400)
    assert found == again  # the same sample, the same drivers
    assert found[0].name == "activity" and found[0].direction == "up"
    whole = CountingRisk()
    drivers.global_drivers(whole, frame, max_rows=None)
    assert whole.rows_per_call[0] == rows // 400 * len(frame)
    with pytest.raises(ValueError, match="max_rows"):
        drivers.global_drivers(model, frame, max_rows=0)


def test_reasons_in_batches_equal_reasons_in_one_pass(monkeypatch):
    frame = labelled_frame(500).drop(columns="churned")
    one_pass = drivers.customer_reasons(LinearRisk(), frame)
    monkeypatch.setattr(drivers, "REASON_BATCH_ROWS", 60)
    model = CountingRisk()
    batched = drivers.customer_reasons(model, frame)
    assert batched == one_pass and list(batched) == list(one_pass)
    assert max(model.rows_per_call) == 60 * (1 + len(drivers.DRIVERS))
    assert len(model.rows_per_call) == 9  # 500 customers, 60 at a time


def test_input_checks_say_how_to_fix():
    with pytest.raises(ValueError, match="churned"):
        drivers.global_drivers(LinearRisk(), frame_of({"customer_id": 1}))
    with pytest.raises(ValueError, match="lacks the columns"):
        drivers.customer_reasons(LinearRisk(), frame_of({"customer_id": 1}).drop(columns="plan"))
    with pytest.raises(ValueError, match="one snapshot"):
        drivers.customer_reasons(LinearRisk(), frame_of({"customer_id": 1}, {"customer_id": 1}))


# --- Stated reasons ----------------------------------------------------------------------------


def stated_sources(con):
    def sub(id_, end, reason):
        return {"subscription_id": id_, "customer_id": id_, "started_at": "2024-01-01",
                "ended_at": end, "cancellation_reason": reason}  # fmt: skip

    def complaint(id_, at, outcome, kind="complaint"):
        return {"interaction_id": id_, "customer_id": 1, "occurred_at": at, "kind": kind,
                "outcome": outcome}  # fmt: skip

    return make_sources(
        con,
        subscriptions=[
            sub(1, "2025-03-20", "price"),  # before the three months
            sub(2, "2025-05-02", "price"),
            sub(3, "2025-05-20", "price"),
            sub(4, "2025-05-21", None),
            sub(5, "2025-06-30 23:00", "not_using"),
            sub(6, "2025-07-02", "price"),  # after as_of
            sub(7, None, None),
        ],
        interactions=[
            complaint(1, "2025-05-03", "resolved"),
            complaint(2, "2025-05-04", "unresolved"),
            complaint(3, "2025-05-05", "unresolved"),
            complaint(4, "2025-06-10", "unresolved"),
            complaint(5, "2025-06-11", "answered", kind="call"),
            complaint(6, "2025-07-01", "unresolved"),
        ],
    )


def test_stated_reasons_count_cancellations_and_complaints_per_month(duck):
    sources = stated_sources(duck)
    settings = dataclasses.replace(EngineSettings(), trend_periods=3)
    got = to_pandas(drivers.stated_reasons(sources, ts("2025-07-01"), settings))
    rows = [
        (str(r.period), r.source, r.reason, r.count, round(r.share, 4))
        for r in got.itertuples(index=False)
    ]
    assert rows == [
        ("2025-05-01", "cancellation", "price", 2, 0.6667),
        ("2025-05-01", "cancellation", "unknown", 1, 0.3333),
        ("2025-05-01", "complaint", "unresolved", 2, 0.6667),
        ("2025-05-01", "complaint", "resolved", 1, 0.3333),
        ("2025-06-01", "cancellation", "not_using", 1, 1.0),
        ("2025-06-01", "complaint", "unresolved", 1, 1.0),
    ]
    assert got.period.map(type).eq(dt.date).all()


@pytest.mark.spark
def test_stated_reasons_agree_on_duckdb_and_spark(duck, spark):
    settings = dataclasses.replace(EngineSettings(), trend_periods=3)
    duck_result, spark_result = (
        to_pandas(drivers.stated_reasons(stated_sources(con), ts("2025-07-01"), settings))
        for con in (duck, spark)
    )
    pd.testing.assert_frame_equal(duck_result, spark_result, check_dtype=False)
