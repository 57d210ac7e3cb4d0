"""Churn features, labels, the calibrated classifier and its back-test (R16).

Features and labels are checked on small hand-built tables with values computed by hand; the
model on a generated demo business (``demo_backtest``, shared with test_drivers.py).
"""

from __future__ import annotations

import datetime as dt
import functools

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from loyal.demo.generator import DEFAULT_AS_OF, generate
from loyal.engine import churn
from loyal.engine.common import MONTH_DAYS
from loyal.engine.execution import duckdb_backend, to_pandas
from loyal.engine.sources import SCHEMAS, Sources, sources_from_arrow
from tests.engine.conftest import make_sources, ts

AS_OF = ts("2025-06-01")


# --- Hand-built records ------------------------------------------------------------------------


def customer(id_: int, joined: str, channel: str) -> dict:
    return {"customer_id": id_, "joined_at": joined, "acquisition_channel": channel}


def sub(id_: int, customer_id: int, plan: str, amount: float, start: str, end=None, reason=None):
    return {
        "subscription_id": id_, "customer_id": customer_id, "plan": plan,
        "monthly_amount": amount, "started_at": start, "ended_at": end,
        "cancellation_reason": reason,
    }  # fmt: skip


def event(customer_id: int, at: str, session: str, page: str) -> dict:
    return {"customer_id": customer_id, "occurred_at": at, "session_id": session, "page": page}


def order(id_: int, customer_id: int, at: str, revenue: float, status: str = "paid") -> dict:
    return {
        "order_id": id_, "customer_id": customer_id, "ordered_at": at, "status": status,
        "revenue": revenue,
    }  # fmt: skip


def contact(id_: int, customer_id: int, at: str, kind: str, outcome: str | None = None) -> dict:
    return {
        "interaction_id": id_, "customer_id": customer_id, "occurred_at": at, "kind": kind,
        "outcome": outcome,
    }  # fmt: skip


CUSTOMERS = [
    customer(1, "2024-12-01", "web"),
    customer(2, "2025-01-10", "ads"),
    customer(3, "2024-06-01", "store"),
    customer(4, "2025-05-01", "web"),
    customer(5, "2025-02-01", "wechat"),
]
SUBSCRIPTIONS = [
    # 1: a trial that ended, then a running basic plan.
    sub(1, 1, "trial", 0.0, "2024-12-01", "2024-12-31", "price"),
    sub(2, 1, "basic", 20.0, "2025-01-01"),
    # 2: running at as_of, ends within the horizon without renewal: churned.
    sub(3, 2, "plus", 35.0, "2025-03-01", "2025-07-15", "not_using"),
    # 3 ended before as_of and 4 starts after it: neither is a subscriber at as_of.
    sub(4, 3, "basic", 20.0, "2024-06-01", "2025-05-01"),
    sub(5, 4, "basic", 20.0, "2025-06-02"),
    # 5: ends within the horizon but renews the same day: not churned.
    sub(6, 5, "basic", 20.0, "2025-02-01", "2025-06-20"),
    sub(7, 5, "plus", 35.0, "2025-06-20"),
]
EVENTS = [
    event(1, "2025-05-31 10:00", "a", "home"),
    event(1, "2025-05-31 10:05", "a", "orders"),
    event(1, "2025-05-20", "b", "home"),
    event(1, "2025-05-10", "c", "member-center"),
    event(1, "2025-04-15", "d", "home"),
    event(1, "2025-03-10", "e", "help"),
    event(1, "2025-02-01", "f", "coupons"),
    event(5, "2025-04-01", "g", "home"),
]
ORDERS = [
    order(1, 1, "2025-05-01", 100.0),
    order(2, 1, "2025-02-01", 50.0),
    order(3, 1, "2025-05-15", 70.0, status="refunded"),
]
INTERACTIONS = [
    contact(1, 1, "2025-05-05", "complaint", "unresolved"),
    contact(2, 1, "2025-04-01", "complaint", "resolved"),
    contact(3, 1, "2024-12-15", "complaint", "unresolved"),
    contact(4, 1, "2025-05-06", "call"),
    contact(5, 1, "2025-05-07", "note"),
    contact(6, 1, "2025-01-01", "email"),
]
# What happens at or after as_of: none of it may change the features at as_of.
LATER_EVENTS = [event(1, "2025-06-01", "x", "cart"), event(2, "2025-06-05", "y", "search")]
LATER_ORDERS = [order(9, 2, "2025-06-10", 80.0)]
LATER_INTERACTIONS = [
    contact(9, 1, "2025-06-03", "complaint", "unresolved"),
    contact(10, 2, "2025-06-04", "call"),
]


def hand_sources(duck, *, later: bool = False) -> Sources:
    return make_sources(
        duck,
        customers=CUSTOMERS,
        subscriptions=SUBSCRIPTIONS,
        events=EVENTS + (LATER_EVENTS if later else []),
        orders=ORDERS + (LATER_ORDERS if later else []),
        interactions=INTERACTIONS + (LATER_INTERACTIONS if later else []),
    )


def features_by_customer(sources: Sources, as_of: dt.datetime = AS_OF) -> dict[int, dict]:
    frame = to_pandas(churn.churn_features(sources, as_of)).astype(object)
    rows = frame.where(frame.notna(), None).to_dict("records")  # NaN != NaN: use None
    return {row.pop("customer_id"): row for row in rows}


def days(a: str, b: str) -> float:
    return (ts(b) - ts(a)).total_seconds() / 86_400


def test_features_match_hand_computed_values(duck):
    got = features_by_customer(hand_sources(duck))
    assert sorted(got) == [1, 2, 5]  # 3 ended before as_of, 4 starts after it
    one = got[1]
    expected = {
        "tenure_months": days("2025-01-01", "2025-06-01") / MONTH_DAYS,
        "plan": "basic",
        "monthly_amount": 20.0,
        "past_subscriptions": 1,
        "days_since_last_event": days("2025-05-31 10:05", "2025-06-01"),
        "events_14d": 3,  # 31 May (two), 20 May
        "events_30d": 4,  # and 10 May
        "activity_trend": (4 / 30) / (2 / 60),  # 15 April and 10 March in the 60 days before
        "sessions_30d": 3,
        "active_days_30d": 3,
        "services_90d": 4,  # home, orders, member-center, help (coupons is older)
        "orders_90d": 1,  # the refunded order does not count, 1 February is older
        "revenue_90d": 100.0,
        "days_since_last_order": 31.0,
        "complaints_total": 3,
        "complaints_90d": 2,
        "unresolved_complaints_90d": 1,
        "contacts_90d": 1,  # the call; a note is not a contact
        "acquisition_channel": "web",
    }
    assert one == {k: pytest.approx(v) if isinstance(v, float) else v for k, v in expected.items()}


def test_features_without_activity_count_from_joining(duck):
    got = features_by_customer(hand_sources(duck))
    two = got[2]
    # No event and no order: the days since joining (10 January), before the subscription.
    assert two["days_since_last_event"] == pytest.approx(days("2025-01-10", "2025-06-01"))
    assert two["days_since_last_order"] == pytest.approx(days("2025-01-10", "2025-06-01"))
    assert two["activity_trend"] is None
    assert (two["events_30d"], two["orders_90d"], two["complaints_total"]) == (0, 0, 0)
    assert (two["plan"], two["monthly_amount"], two["past_subscriptions"]) == ("plus", 35.0, 0)
    # 5's renewal starts after as_of: the running plan is the one it had then.
    assert got[5]["plan"] == "basic"
    assert got[5]["activity_trend"] == pytest.approx(0.0)  # one event 61 days ago, none since


def test_later_records_do_not_change_the_features(duck):
    before = features_by_customer(hand_sources(duck))
    with_later = hand_sources(duck, later=True)
    assert features_by_customer(with_later) == before
    assert features_by_customer(churn.known_at(with_later, AS_OF)) == before


def test_labels_mark_subscribers_without_a_running_subscription_at_the_horizon(duck):
    sources = hand_sources(duck)
    labels = to_pandas(churn.churn_labels(sources.subscriptions, AS_OF, horizon_days=60))
    assert dict(zip(labels.customer_id, labels.churned, strict=True)) == {
        1: False,  # still running
        2: True,  # ended 15 July, within 60 days, no renewal
        5: False,  # ended 20 June and renewed the same day
    }
    # With a 30-day horizon, 2's end (44 days later) is outside it.
    short = to_pandas(churn.churn_labels(sources.subscriptions, AS_OF, horizon_days=30))
    assert not short.churned.any()


def test_snapshot_frame_stacks_the_same_rows_as_single_dates(duck):
    sources = hand_sources(duck, later=True)
    dates = [ts("2025-04-01"), AS_OF]
    frame = churn.snapshot_frame(sources, dates, horizon_days=60)
    for date in dates:
        part = frame[frame.snapshot == pd.Timestamp(date)].drop(columns="snapshot")
        single = to_pandas(churn.churn_features(sources, date))
        labels = to_pandas(churn.churn_labels(sources.subscriptions, date, 60))
        expected = single.merge(labels, on="customer_id")
        pd.testing.assert_frame_equal(
            part.reset_index(drop=True), expected[part.columns].reset_index(drop=True)
        )


def test_known_at_hides_later_ends_and_rows(duck):
    known = churn.known_at(hand_sources(duck, later=True), AS_OF)
    subs = to_pandas(known.subscriptions).set_index("subscription_id")
    assert 5 not in subs.index and 7 not in subs.index  # started after as_of
    assert pd.isna(subs.loc[3, "ended_at"]) and pd.isna(subs.loc[3, "cancellation_reason"])
    assert subs.loc[1, "cancellation_reason"] == "price"
    assert to_pandas(known.events).occurred_at.max() < pd.Timestamp(AS_OF)


def test_snapshot_dates_step_back_from_the_newest():
    dates = churn.snapshot_dates(ts("2025-06-01"), ts("2025-04-15"), step_days=15)
    assert dates == [ts("2025-04-17"), ts("2025-05-02"), ts("2025-05-17"), ts("2025-06-01")]
    assert churn.snapshot_dates(ts("2025-06-01"), ts("2024-01-01"), 30, max_snapshots=2) == [
        ts("2025-05-02"),
        ts("2025-06-01"),
    ]
    with pytest.raises(ValueError, match="step_days"):
        churn.snapshot_dates(ts("2025-06-01"), ts("2025-01-01"), step_days=0)


# --- The model: conventions and checks ---------------------------------------------------------


def test_unfitted_model_raises_a_clear_error(duck):
    frame = churn.snapshot_frame(hand_sources(duck), [AS_OF], horizon_days=None)
    with pytest.raises(NotFittedError, match="not fitted"):
        churn.ChurnModel().predict_proba(frame)


def test_model_follows_estimator_conventions():
    model = churn.ChurnModel(horizon_days=30, random_state=3)
    assert model.get_params()["horizon_days"] == 30
    copy = clone(model)
    assert copy.get_params() == model.get_params() and copy is not model
    assert not hasattr(model, "estimator_")


def test_fit_rejects_bad_input(duck):
    frame = churn.snapshot_frame(hand_sources(duck), [ts("2025-04-01"), AS_OF], 60)
    with pytest.raises(ValueError, match="lacks the feature columns"):
        churn.ChurnModel().fit(frame.drop(columns="plan"), frame.churned, frame.snapshot)
    with pytest.raises(ValueError, match="both churners and stayers"):
        churn.ChurnModel().fit(frame, frame.churned, frame.snapshot)
    with pytest.raises(ValueError, match="calibration must be"):
        churn.ChurnModel(calibration="beta").fit(frame, frame.churned, frame.snapshot)
    with pytest.raises(ValueError, match="horizon_days"):
        churn.churn_labels(hand_sources(duck).subscriptions, AS_OF, horizon_days=0)


def test_lift_and_calibration_table_by_hand():
    y = [1, 0, 0, 0, 1, 0, 0, 0, 0, 0]
    p = [0.9, 0.1, 0.2, 0.3, 0.4, 0.05, 0.15, 0.25, 0.35, 0.45]
    assert churn.top_decile_lift(y, p) == pytest.approx(1.0 / 0.2)
    table = churn.calibration_table(y, p, bins=5)
    assert [b.customers for b in table] == [2, 2, 2, 2, 2]
    assert table[-1].mean_predicted == pytest.approx((0.45 + 0.9) / 2)
    assert table[-1].observed_rate == pytest.approx(0.5)
    assert table[0].observed_rate == 0.0


# --- The demo business -------------------------------------------------------------------------


def _ids(column: pa.ChunkedArray) -> pa.ChunkedArray:
    # Demo ids are codes like "C0000042": the number is the engine's id.
    return pc.cast(pc.utf8_slice_codeunits(column, 1), pa.int64())


def demo_tables(customers: int, seed: int) -> dict[str, pa.Table]:
    """The demo store's import tables turned into the engine's source tables."""
    parts: dict[str, list[pa.Table]] = {}
    for kind, table in generate(customers, seed=seed):
        parts.setdefault(kind, []).append(table)
    t = {kind: pa.concat_tables(tables) for kind, tables in parts.items()}
    c = t["customers"]
    customers_table = c.select(
        ["external_id", "joined_at", "acquisition_source", "acquisition_channel", "city"]
    ).append_column("customer_id", _ids(c["external_id"]))
    lines = t["orders"].to_pandas()
    lines["revenue"] = lines.quantity.astype(float) * lines.unit_price.astype(
        float
    ) - lines.discount.astype(float)
    lines["cost"] = lines.quantity.astype(float) * lines.unit_cost.astype(float)
    orders = lines.groupby("order_id", sort=False).agg(
        customer_id=("customer_id", "first"),
        ordered_at=("ordered_at", "first"),
        status=("status", "first"),
        channel=("channel", "first"),
        revenue=("revenue", "sum"),
        cost=("cost", "sum"),
    )
    orders_table = pa.Table.from_pandas(orders.reset_index(), preserve_index=False)
    for name in ("order_id", "customer_id"):
        orders_table = orders_table.set_column(
            orders_table.schema.get_field_index(name), name, _ids(orders_table[name])
        )
    s = t["subscriptions"]
    amount = pc.cast(s["amount"], pa.float64())  # the demo's plans are monthly
    subscriptions = pa.table(
        {
            "subscription_id": _ids(s["subscription_id"]),
            "customer_id": _ids(s["customer_id"]),
            "plan": s["plan"],
            "amount": amount,
            "period": s["period"],
            "monthly_amount": amount,
            "started_at": s["started_at"],
            "ended_at": s["ended_at"],
            "cancellation_reason": s["cancellation_reason"],
        }
    )
    events = t["events"].drop_columns(["event_id"])
    events = events.set_column(0, "customer_id", _ids(events["customer_id"]))
    i = t["interactions"]
    interactions = pa.table(
        {
            "interaction_id": _ids(i["interaction_id"]),
            "customer_id": _ids(i["customer_id"]),
            "occurred_at": i["occurred_at"],
            "kind": i["kind"],
            "direction": i["direction"],
            "outcome": i["outcome"],
        }
    )
    tables = {
        "customers": customers_table,
        "orders": orders_table,
        "subscriptions": subscriptions,
        "events": events,
        "interactions": interactions,
    }
    return {name: _conform(name, table) for name, table in tables.items()}


def _conform(name: str, table: pa.Table) -> pa.Table:
    """``table`` with every column of the engine's schema (missing ones null)."""
    schema = SCHEMAS[name]
    columns = [
        table[f.name] if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(columns, names=schema.names).cast(schema)


DEMO_CUSTOMERS, DEMO_SEED = 6000, 11


@functools.cache
def demo_sources() -> Sources:
    """The demo store (6,000 records, seed 11) on its own DuckDB connection."""
    return sources_from_arrow(demo_tables(DEMO_CUSTOMERS, DEMO_SEED), duckdb_backend())


@functools.cache
def demo_backtest() -> churn.Backtest:
    """The back-test at the demo's as_of, with the default model."""
    return churn.backtest(demo_sources(), DEFAULT_AS_OF)


def test_backtest_on_the_demo_ranks_churners_first():
    bt = demo_backtest()
    assert bt.test_snapshot == DEFAULT_AS_OF - dt.timedelta(days=60)
    assert bt.test_rows > 300 and bt.train_rows > 3000
    assert 0.1 < bt.churn_rate < 0.4
    assert bt.auc > 0.62
    assert bt.top_decile_lift > 1.5
    # Better than predicting the base rate for everyone.
    assert bt.brier < bt.churn_rate * (1 - bt.churn_rate)


def test_backtest_probabilities_are_calibrated():
    bt = demo_backtest()
    assert abs(bt.mean_predicted - bt.churn_rate) < 0.03
    table = bt.calibration
    assert len(table) == 10 and sum(b.customers for b in table) == bt.test_rows
    assert table[-1].observed_rate > 2 * table[0].observed_rate
    assert all(0 < b.mean_predicted < 1 for b in table)


def test_backtest_trains_only_on_labels_known_before_the_test_snapshot():
    bt = demo_backtest()
    horizon = dt.timedelta(days=bt.horizon_days)
    assert bt.train_snapshots and max(bt.train_snapshots) <= bt.test_snapshot - horizon
    model = bt.model
    assert max(model.train_snapshots_) + horizon <= min(model.calibration_snapshots_)
    assert max(model.calibration_snapshots_) <= bt.test_snapshot - horizon


def test_backtest_ignores_records_after_as_of():
    sources = demo_sources()
    as_of = DEFAULT_AS_OF - dt.timedelta(days=45)
    everything = churn.backtest(sources, as_of)
    as_known = churn.backtest(churn.known_at(sources, as_of), as_of)
    assert everything == as_known  # every metric and the calibration table
    pd.testing.assert_frame_equal(everything.test, as_known.test)


def test_score_gives_every_current_subscriber_a_probability():
    sources = demo_sources()
    scored = churn.score(sources, DEFAULT_AS_OF)
    current = to_pandas(churn.churn_features(sources, DEFAULT_AS_OF))
    assert scored.schema == churn.SCORE_SCHEMA
    assert sorted(scored["customer_id"].to_pylist()) == sorted(current.customer_id)
    p = scored["churn_probability"].to_numpy()
    assert ((p > 0) & (p < 1)).all()
    assert 0.05 < p.mean() < 0.4


# --- Memory: snapshots a few dates at a time, sampled, scored in batches ---------------------------


def test_snapshot_frame_is_the_same_one_date_per_query(duck, monkeypatch):
    sources = hand_sources(duck, later=True)
    dates = [ts("2025-03-01"), ts("2025-04-01"), ts("2025-05-01"), AS_OF]
    together = churn.snapshot_frame(sources, dates, horizon_days=60)
    monkeypatch.setattr(churn, "DATES_PER_QUERY", 1)
    apart = churn.snapshot_frame(sources, dates, horizon_days=60)
    pd.testing.assert_frame_equal(together, apart)
    assert set(together.snapshot) == {pd.Timestamp(d) for d in dates}


def test_compact_snapshots_hold_float32_features_of_the_same_values(duck):
    sources = hand_sources(duck)
    [(date, exact)] = churn.snapshot_batches(sources, [AS_OF], 60)
    [(_, compact)] = churn.snapshot_batches(sources, [AS_OF], 60, compact=True)
    assert date == AS_OF
    assert all(compact[name].dtype == "float32" for name in churn.NUMERIC)
    assert compact[list(churn.CATEGORICAL)].equals(exact[list(churn.CATEGORICAL)])
    for name in churn.NUMERIC:
        expected = exact[name].to_numpy(dtype=float)
        assert compact[name].to_numpy(dtype=float) == pytest.approx(expected, nan_ok=True)


def test_sample_snapshot_caps_rows_reproducibly_in_order():
    frame = pd.DataFrame({"customer_id": range(1000), "x": range(1000)})
    date = ts("2025-05-01")
    sample = churn.sample_snapshot(frame, date, max_rows=100, random_state=0)
    assert len(sample) == 100 and sample.customer_id.is_unique
    assert sample.customer_id.is_monotonic_increasing  # kept in the snapshot's order
    assert set(sample.customer_id) <= set(frame.customer_id)
    again = churn.sample_snapshot(frame, date, max_rows=100, random_state=0)
    pd.testing.assert_frame_equal(sample, again)
    other_day = churn.sample_snapshot(frame, ts("2025-05-16"), max_rows=100, random_state=0)
    other_seed = churn.sample_snapshot(frame, date, max_rows=100, random_state=1)
    assert not sample.customer_id.equals(other_day.customer_id)
    assert not sample.customer_id.equals(other_seed.customer_id)
    # Under the cap, or without one, every row is kept.
    assert churn.sample_snapshot(frame, date, max_rows=1000, random_state=0) is frame
    assert churn.sample_snapshot(frame, date, max_rows=None, random_state=0) is frame


def test_training_frame_takes_at_most_the_cap_per_snapshot():
    sources = demo_sources()
    newest = DEFAULT_AS_OF - dt.timedelta(days=60)
    model = churn.ChurnModel(max_rows_per_snapshot=150, max_snapshots=6)
    sampled = churn.training_frame(sources, newest, model)
    every_row = churn.training_frame(
        sources, newest, clone(model).set_params(max_rows_per_snapshot=None)
    )
    sizes = sampled.groupby("snapshot").size()
    assert len(sizes) == 6 and (sizes == 150).all()
    assert (every_row.groupby("snapshot").size() > 150).all()
    # The sample is made of real rows: each one is in the full frame, unchanged.
    keys = ["snapshot", "customer_id"]
    merged = sampled.merge(every_row, on=keys, suffixes=("", "_all"))
    assert len(merged) == len(sampled)
    assert (merged.churned == merged.churned_all).all()


def test_backtest_with_sampled_snapshots_keeps_the_time_split():
    model = churn.ChurnModel(max_rows_per_snapshot=200)
    bt = churn.backtest(demo_sources(), DEFAULT_AS_OF, model)
    horizon = dt.timedelta(days=bt.horizon_days)
    assert bt.train_rows <= 200 * len(bt.train_snapshots)
    assert max(bt.train_snapshots) <= bt.test_snapshot - horizon
    assert max(bt.model.calibration_snapshots_) <= bt.test_snapshot - horizon
    # The whole test snapshot is scored, not a sample of it.
    assert bt.test_rows == demo_backtest().test_rows > 200


def test_backtest_and_fit_match_backtest_and_fit_history():
    sources = demo_sources()
    tested, fitted = churn.backtest_and_fit(sources, DEFAULT_AS_OF)
    assert tested == demo_backtest()  # every metric and the calibration table
    pd.testing.assert_frame_equal(tested.test, demo_backtest().test)
    alone = churn.fit_history(sources, DEFAULT_AS_OF)
    assert fitted is not None
    assert fitted.train_snapshots_ == alone.train_snapshots_
    current = churn.current_frame(sources, DEFAULT_AS_OF)
    assert fitted.churn_probability(current) == pytest.approx(alone.churn_probability(current))


def test_scores_in_batches_equal_scores_in_one_pass(monkeypatch):
    bt = demo_backtest()
    one_pass = bt.model.predict_proba(bt.test)
    monkeypatch.setattr(churn, "SCORE_BATCH_ROWS", 97)
    batched = bt.model.predict_proba(bt.test)
    assert len(bt.test) > 97 * 3
    assert batched.shape == one_pass.shape == (len(bt.test), 2)
    assert batched == pytest.approx(one_pass, rel=1e-12, abs=1e-15)


@pytest.mark.spark
def test_features_and_labels_agree_on_duckdb_and_spark(duck, spark):
    results = {}
    for name, con in (("duckdb", duck), ("spark", spark)):
        sources = hand_sources(con, later=True)
        frame = churn.snapshot_frame(sources, [ts("2025-04-01"), AS_OF], horizon_days=60)
        results[name] = frame.sort_values(["snapshot", "customer_id"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(results["duckdb"], results["spark"], check_dtype=False)
