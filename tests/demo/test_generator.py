"""The demo store generator: the import contract, reproducibility, integrity and its findings."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from loyal.demo.generator import DEFAULT_AS_OF, DemoPlan, generate, staff_usernames
from loyal.imports import kinds

AS_OF = pd.Timestamp(DEFAULT_AS_OF)
KIND_ORDER = ("customers", "orders", "subscriptions", "events", "interactions", "consents")


def _tables(customers: int, **options: object) -> dict[str, pa.Table]:
    parts: dict[str, list[pa.Table]] = {}
    for kind, table in generate(customers, **options):
        parts.setdefault(kind, []).append(table)
    return {kind: pa.concat_tables(tables) for kind, tables in parts.items()}


@pytest.fixture(scope="module")
def small() -> dict[str, pa.Table]:
    return _tables(2000, batch_customers=700)


@pytest.fixture(scope="module")
def business() -> dict[str, pd.DataFrame]:
    """A business large enough for its built-in findings to show."""
    return {kind: table.to_pandas() for kind, table in _tables(5000).items()}


def _order_history(business: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per buyer: first, second and last order, and the number of orders."""
    orders = business["orders"].drop_duplicates("order_id").sort_values("ordered_at")
    times = orders.groupby("customer_id").ordered_at
    return pd.DataFrame(
        {
            "first": times.min(),
            "second": times.nth(1).groupby(orders.customer_id).first(),
            "last": times.max(),
            "orders": times.size(),
        }
    )


# ---- the import contract ---------------------------------------------------------------------


def test_every_kind_has_exactly_the_contract_columns_and_types(small):
    assert tuple(small) == KIND_ORDER
    for kind, table in small.items():
        expected = kinds.arrow_schema(kinds.KINDS[kind])
        if kind == "customers":
            expected = expected.append(pa.field(kinds.ATTRIBUTES, pa.string()))
        assert table.schema.equals(expected), kind
        assert kinds.ROW_NUMBER not in table.column_names


def test_required_columns_are_never_null_and_choices_are_valid(small):
    for kind, table in small.items():
        for column in kinds.KINDS[kind].columns:
            values = table.column(column.name)
            if column.required:
                assert values.null_count == 0, (kind, column.name)
            if column.choices:
                assert set(values.drop_null().unique().to_pylist()) <= set(column.choices)


def test_attributes_are_json_objects(small):
    import json

    texts = small["customers"].column(kinds.ATTRIBUTES).drop_null().to_pylist()
    assert texts and all(isinstance(json.loads(text), dict) for text in texts)


def test_staff_columns_name_only_the_staff_the_loader_creates(small):
    staff = set(staff_usernames())
    assert len(staff) == 8 and {"li.na", "wang.wei", "emma.smith"} <= staff
    owners = small["customers"].column("owner")
    assert set(owners.drop_null().unique().to_pylist()) <= staff
    assert 0.3 < 1 - owners.null_count / len(owners) < 0.7  # about half have an owner
    assert set(small["interactions"].column("staff").drop_null().unique().to_pylist()) <= staff


# ---- reproducibility and chunks ----------------------------------------------------------------


def test_same_seed_gives_identical_tables():
    first = list(generate(600, seed=3, batch_customers=250))
    second = list(generate(600, seed=3, batch_customers=250))
    assert [kind for kind, _ in first] == [kind for kind, _ in second]
    assert all(a.equals(b) for (_, a), (_, b) in zip(first, second, strict=True))
    other = _tables(600, seed=4, batch_customers=250)
    assert not other["orders"].equals(pa.concat_tables(t for k, t in first if k == "orders"))


def test_each_chunk_yields_its_customers_before_rows_that_refer_to_them():
    known: set[str] = set()
    kinds_seen = []
    for kind, table in generate(1500, batch_customers=400):
        kinds_seen.append(kind)
        if kind == "customers":
            assert table.num_rows <= 400
            known |= set(table.column("external_id").to_pylist())
        else:
            assert set(table.column("customer_id").unique().to_pylist()) <= known, kind
    assert kinds_seen.count("customers") == 4
    assert kinds_seen[:6] == list(KIND_ORDER)


def test_ids_run_on_across_chunks_and_never_repeat(small):
    ids = small["customers"].column("external_id").to_pylist()
    assert ids == [f"C{i:07d}" for i in range(1, 2001)]
    orders = small["orders"].to_pandas()
    assert not orders.duplicated(["order_id", "line_no"]).any()
    for kind, column in (
        ("subscriptions", "subscription_id"),
        ("events", "event_id"),
        ("interactions", "interaction_id"),
    ):
        assert pd.Series(small[kind].column(column).to_pylist()).is_unique, kind
    consents = small["consents"].to_pandas()
    assert not consents.duplicated(["customer_id", "channel", "recorded_at"]).any()
    customers = small["customers"].to_pandas()
    for column in ("email", "phone", "wechat"):
        assert customers[column].dropna().is_unique, column


def test_naive_as_of_and_bad_sizes_are_refused():
    with pytest.raises(ValueError, match="time zone"):
        generate(10, as_of=dt.datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="batch_customers"):
        generate(10, batch_customers=0)
    with pytest.raises(ValueError, match="seed"):
        generate(10, seed=-1)
    assert list(generate(0)) == []
    with pytest.raises(ValueError, match="channels"):
        DemoPlan(channel_shares=(1.0,))


# ---- integrity ---------------------------------------------------------------------------------


def test_order_lines_share_their_order_fields(small):
    orders = small["orders"].to_pandas()
    per_order = orders.groupby("order_id")
    shared = per_order[["customer_id", "ordered_at", "status", "channel"]].nunique()
    assert (shared == 1).all().all()
    assert (per_order.line_no.min() == 1).all()
    assert (per_order.line_no.max() == per_order.size()).all()
    assert not orders.duplicated(["order_id", "sku"]).any()
    assert (orders.discount <= orders.unit_price * orders.quantity).all()
    assert per_order.size().mean() > 1.3  # multi-line baskets


def test_complaints_name_an_earlier_order_of_the_same_customer(small):
    interactions = small["interactions"].to_pandas()
    complaints = interactions[interactions.kind == "complaint"]
    order_id = complaints.body.str.extract(r"(O\d{8})$")[0]
    assert order_id.notna().all()
    orders = small["orders"].to_pandas().drop_duplicates("order_id").set_index("order_id")
    assert (orders.customer_id[order_id].to_numpy() == complaints.customer_id.to_numpy()).all()
    assert (orders.ordered_at[order_id].to_numpy() <= complaints.occurred_at.to_numpy()).all()


def test_every_timestamp_lies_between_joining_and_as_of(small):
    joined = small["customers"].to_pandas().set_index("external_id").joined_at
    for kind, column in (
        ("orders", "ordered_at"),
        ("subscriptions", "started_at"),
        ("subscriptions", "ended_at"),
        ("events", "occurred_at"),
        ("interactions", "occurred_at"),
        ("consents", "recorded_at"),
    ):
        assert small[kind].schema.field(column).type == pa.timestamp("us", tz="UTC")
        frame = small[kind].select(["customer_id", column]).to_pandas().dropna()
        assert (frame[column] <= AS_OF).all(), (kind, column)
        assert (frame[column] >= frame.customer_id.map(joined)).all(), (kind, column)
    assert (joined <= AS_OF).all()
    subscriptions = small["subscriptions"].to_pandas().dropna(subset=["ended_at"])
    assert (subscriptions.ended_at > subscriptions.started_at).all()


def test_prospects_never_buy_and_customers_always_have(small):
    customers = small["customers"].to_pandas()
    assert set(customers.stage) == {"prospect", "potential_intent", "intent", "customer"}
    prospects = customers.external_id[customers.stage != "customer"]
    assert 0.13 < len(prospects) / len(customers) < 0.22
    buyers = set(small["orders"].column("customer_id").to_pylist())
    assert buyers.isdisjoint(prospects)
    assert buyers == set(customers.external_id[customers.stage == "customer"])
    assert set(small["subscriptions"].column("customer_id").to_pylist()).isdisjoint(prospects)


def test_texts_and_names_mix_chinese_and_english(small):
    customers = small["customers"].to_pandas()
    chinese = customers.name.str.contains(r"[\u4e00-\u9fff]")
    assert 0.5 < chinese.mean() < 0.95
    assert customers.name.str.contains("張|陳|劉|黃|楊|趙|吳").any()  # traditional script too
    mainland = customers.phone.dropna().str.fullmatch(r"1[3-9]\d{9}")
    assert mainland.mean() > 0.6
    bodies = " ".join(small["interactions"].column("body").to_pylist())
    assert all(word in bodies for word in ("退款", "发货", "会员", "优惠", "refund"))
    complaints = small["interactions"].filter(
        pa.compute.equal(small["interactions"]["kind"], "complaint")
    )
    assert set(complaints.column("outcome").to_pylist()) == {"resolved", "unresolved"}


# ---- the findings the demo was built to contain -------------------------------------------------


def test_a_second_purchase_within_sixty_days_keeps_customers(business):
    history = _order_history(business)
    history = history[history["first"] <= AS_OF - pd.Timedelta(days=240)]
    early = history["second"] - history["first"] <= pd.Timedelta(days=60)
    active = history["last"] >= AS_OF - pd.Timedelta(days=90)
    one_purchase = history.orders == 1
    assert active[early].mean() > 2.5 * active[~early].mean()
    assert active[early].mean() > active[one_purchase].mean()


def test_loyalty_grows_with_purchase_count(business):
    counts = _order_history(business).orders
    next_purchase = [(counts > k).sum() / (counts >= k).sum() for k in range(1, 9)]
    assert next_purchase[0] < next_purchase[2] < np.mean(next_purchase[5:])


def test_unresolved_complaints_drive_customers_away(business):
    history = _order_history(business)
    interactions = business["interactions"]
    complaints = interactions[interactions.kind == "complaint"].sort_values("occurred_at")
    first = complaints.drop_duplicates("customer_id").set_index("customer_id")
    first = first[first.occurred_at <= AS_OF - pd.Timedelta(days=150)]
    again = history.loc[first.index, "last"] > first.occurred_at
    by_outcome = again.groupby(first.outcome).mean()
    assert by_outcome["resolved"] > by_outcome["unresolved"] + 0.3
    # Among regular buyers, an unresolved complaint means churn far more often than none.
    regular = history[(history.orders >= 3) & (history["first"] <= AS_OF - pd.Timedelta(days=240))]
    churned = regular["last"] < AS_OF - pd.Timedelta(days=90)
    old = complaints[complaints.occurred_at <= AS_OF - pd.Timedelta(days=150)]
    unresolved = set(old.customer_id[old.outcome == "unresolved"])
    with_unresolved = regular.index.isin(list(unresolved))
    without = ~regular.index.isin(list(set(complaints.customer_id)))
    assert churned[with_unresolved].mean() > churned[without].mean() + 0.15


def test_membership_cancellations_fall_after_six_months(business):
    subscriptions = business["subscriptions"]
    buyers = business["orders"].customer_id.nunique()
    assert 0.18 < len(subscriptions) / buyers < 0.32
    assert set(subscriptions.plan) == {"basic", "plus", "premium"}
    ended = subscriptions.ended_at.notna()
    assert subscriptions.cancellation_reason.notna().equals(ended)
    end = subscriptions.ended_at.fillna(AS_OF)
    months = np.ceil(((end - subscriptions.started_at).dt.days + 0.5) / (365.25 / 12))
    hazard = [((months == m) & ended).sum() / (months >= m).sum() for m in range(1, 19)]
    assert np.mean(hazard[:6]) > 2 * np.mean(hazard[6:])


def test_activity_thins_out_before_customers_leave(business):
    history = _order_history(business)
    joined = business["customers"].set_index("external_id").joined_at
    gone = history[(history.orders >= 2) & (history["last"] <= AS_OF - pd.Timedelta(days=180))]
    gone = gone[joined[gone.index] <= gone["last"] - pd.Timedelta(days=150)]
    events = business["events"]
    events = events[events.customer_id.isin(gone.index)]
    days = (events.occurred_at - events.customer_id.map(gone["last"])).dt.days
    before = ((days >= -150) & (days < -60)).sum() / 3  # per 30 days
    last_month = ((days >= -30) & (days < 0)).sum()
    assert len(gone) > 100
    assert last_month < 0.8 * before


def test_products_bought_together_have_lift_above_one(business):
    baskets = business["orders"].groupby("order_id").category.agg(set)

    def lift(a: str, b: str) -> float:
        has_a, has_b = baskets.map(lambda s: a in s), baskets.map(lambda s: b in s)
        return (has_a & has_b).mean() / (has_a.mean() * has_b.mean())

    assert lift("Coffee / 咖啡", "Coffee gear / 咖啡器具") > 1.2
    assert lift("Phones / 手机", "Phone accessories / 手机配件") > 1.5


def test_referral_customers_are_worth_more_than_ads_customers(business):
    orders = _order_history(business).orders
    channel = business["customers"].set_index("external_id").acquisition_channel
    per_channel = orders.groupby(channel[orders.index].to_numpy()).mean()
    assert per_channel["referral"] > 1.5 * per_channel["ads"]


def test_orders_peak_on_singles_day(business):
    orders = business["orders"].drop_duplicates("order_id")
    local = orders.ordered_at.dt.tz_convert("Asia/Shanghai")
    last_year = local[(local >= "2025-10-01") & (local < "2025-12-01")].dt.date.value_counts()
    assert last_year[dt.date(2025, 11, 11)] > 2.5 * last_year.median()


def test_events_volume_is_moderate(business):
    per_customer = len(business["events"]) / len(business["customers"])
    assert 10 < per_customer < 30
