"""run_all: every analysis for one as_of, executed, with progress reports."""

from __future__ import annotations

import datetime as dt

import ibis
import pyarrow.compute as pc
import pytest

from loyal.engine import lifecycle, metrics, rfm, stickiness, value
from loyal.engine.common import complete_periods, lookback_start, order_totals, purchase_sequence
from loyal.engine.execution import to_arrow
from loyal.engine.lifecycle import STAGES
from loyal.engine.run import EngineResults, customer_table, run_all
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import sources_from_arrow

from .conftest import DEMO_AS_OF, demo_tables, make_sources, ts
from .test_backends import assert_same_table


@pytest.fixture(scope="module")
def results(duck) -> tuple[EngineResults, list[tuple[str, int, int]]]:
    calls: list[tuple[str, int, int]] = []
    sources = sources_from_arrow(demo_tables(), duck)
    result = run_all(
        sources, DEMO_AS_OF, EngineSettings(), progress=lambda *args: calls.append(args)
    )
    return result, calls


def test_progress_reports_every_step_in_order(results):
    _, calls = results
    n = len(calls)
    assert [i for _, i, _ in calls] == list(range(n))
    assert {total for _, _, total in calls} == {n}
    names = [name for name, _, _ in calls]
    assert names[:2] == ["purchases", "churn_window"]
    assert names.index("shared") < names.index("customers") < names.index("kpis")


def test_churn_window_is_resolved_from_the_data(results):
    result, _ = results
    window = result.settings.churn_window_days
    assert window is not None and 30 <= window <= 365
    assert result.kpis["churn_window_days"] == window


def test_customer_table_has_one_row_per_customer_and_known_stages(results):
    result, _ = results
    customers = result.customers
    ids = customers.column("customer_id").to_pylist()
    assert len(ids) == len(set(ids)) == 60
    assert set(customers.column("stage").to_pylist()) <= set(STAGES)
    for column in ("rfm_segment", "abc_class", "return_class", "profit", "churned", "r_score"):
        assert column in customers.column_names
    # Prospects (every fifth customer buys and subscribes nothing) have no RFM or class.
    rows = customers.to_pylist()
    assert {r["rfm_segment"] for r in rows if r["customer_id"] % 5 == 0} == {None}


def test_kpis_agree_with_the_customer_table(results):
    result, _ = results
    stages = result.customers.column("stage").to_pylist()
    kpis = result.kpis
    assert kpis["churned_customers"] == stages.count("churned")
    assert kpis["at_risk_customers"] == stages.count("at_risk")
    assert kpis["customers"] + kpis["prospects"] == 60
    assert kpis["profit"] == pytest.approx(
        sum(p for p in result.customers["profit"].to_pylist() if p)
    )
    table = result.kpi_table()
    assert table.num_rows == len(kpis)


def test_chart_tables_are_filled(results):
    result, _ = results
    charts = result.charts
    assert set(charts) >= {
        "cohort_matrix",
        "pareto",
        "rfm_grid",
        "churn_trend",
        "loyalty_ladder",
        "critical_window",
        "tenure_curve",
        "km_curves",
    }
    for name in ("churn_trend", "stickiness_trend", "lifecycle_counts", "revenue_retention"):
        assert charts[name].num_rows == 12, name
    assert set(charts["critical_window"].column("anchor").to_pylist()) == {
        "first_purchase",
        "joined",
    }
    pareto = charts["pareto"]
    assert pareto.column("rank").to_pylist() == list(range(1, pareto.num_rows + 1))
    assert charts["km_curves"].num_rows > 0
    assert (
        sum(charts["rfm_grid"].column("customers").to_pylist())
        == pc.count(result.customers.column("r_score")).as_py()
    )


def test_customer_table_needs_a_resolved_window(duck):
    sources = sources_from_arrow(demo_tables(customers=5), duck)
    with pytest.raises(ValueError, match="churn_window_days is None"):
        customer_table(sources, DEMO_AS_OF, EngineSettings())


@pytest.mark.parametrize("as_of", [DEMO_AS_OF, DEMO_AS_OF + dt.timedelta(days=10, hours=5)])
def test_shared_tables_give_the_answers_of_the_analyses_alone(duck, as_of):
    # run_all hands the purchase sequence (and spells) to the analyses; each must answer as it
    # does from the source tables alone.
    sources = sources_from_arrow(demo_tables(seed=11, customers=120), duck)
    settings = EngineSettings(churn_window_days=45)
    purchases = purchase_sequence(sources.orders, as_of)
    pairs = {
        "rfm": (
            rfm.rfm(sources.orders, as_of, settings, purchases=purchases),
            rfm.rfm(sources.orders, as_of, settings),
        ),
        "value": (
            value.customer_value(sources, as_of, settings, purchases=purchases),
            value.customer_value(sources, as_of, settings),
        ),
    }
    # run_all groups the orders by customer once for RFM and value.
    since = lookback_start(as_of, settings.value_lookback_days)
    totals = order_totals(purchases, since)
    pairs["rfm_totals"] = (
        rfm.rfm(sources.orders, as_of, settings, purchases=purchases, totals=totals),
        rfm.rfm(sources.orders, as_of, settings),
    )
    pairs["value_totals"] = (
        value.customer_value(sources, as_of, settings, purchases=purchases, totals=totals),
        value.customer_value(sources, as_of, settings),
    )
    for freq in ("month", "week", "day"):
        pairs[f"lifecycle_{freq}"] = (
            lifecycle.lifecycle_counts(sources, as_of, settings, freq=freq, purchases=purchases),
            lifecycle.lifecycle_counts(sources, as_of, settings, freq=freq),
        )
        pairs[f"stickiness_{freq}"] = (
            stickiness.stickiness_trend(
                sources, as_of, settings, freq=freq, periods=14, purchases=purchases
            ),
            stickiness.stickiness_trend(sources, as_of, settings, freq=freq, periods=14),
        )
    kpi = metrics.default_period(as_of, settings)
    pairs["stickiness_kpi"] = (
        stickiness.stickiness(sources, kpi.start, kpi.end, settings, purchases=purchases),
        stickiness.stickiness(sources, kpi.start, kpi.end, settings),
    )
    grid = complete_periods(as_of, "month", 6)
    p_alive = ibis.memtable(
        {"customer_id": [1, 2, 3, 4, 5], "p_alive": [0.01, 0.2, 0.9, 0.05, 0.6]}
    )
    last = [metrics.default_period(as_of, settings)]
    for name, periods, by, scores in (
        ("churn_trend", grid, [], None),
        ("churn_trend_by_city", grid, ["city"], None),
        ("churn_kpi_p_alive", last, [], p_alive),
        ("churn_kpi_by_channel", last, ["acquisition_channel"], p_alive),
    ):
        flags = metrics.churn_flags(sources, periods, as_of, settings, scores)
        segmented = metrics._segmented(flags, by, None, sources)
        pairs[name] = (
            metrics.churn_per_period(sources, periods, as_of, settings, scores, by=by),
            metrics.churn_rates(segmented, ["period", *by]),
        )
    # run_all aggregates the trend's periods and the KPI period at once.
    trend = complete_periods(as_of, settings.trend_freq, settings.trend_periods)
    columns = metrics.churn_period_columns(sources, [*trend, *last], as_of, settings)
    pairs["churn_trend_with_kpi"] = (
        metrics.churn_period_rows(columns, trend).order_by("period"),
        metrics.churn_trend(sources, as_of, settings),
    )
    pairs["churn_kpi_with_trend"] = (
        metrics.churn_period_rows(columns, last, first=len(trend), drop_empty=False).drop("period"),
        metrics.churn_rate(sources, as_of, settings),
    )
    for name, (shared, alone) in pairs.items():
        assert_same_table(name, to_arrow(shared), to_arrow(alone))


def test_customer_table_keeps_the_attributes_of_customers_recorded_after_as_of(duck):
    # Customer 2 joined after as_of but ordered before it: no stored stage as of then, yet the
    # record's attributes are theirs; customer 3 ordered without any record.
    sources = make_sources(
        duck,
        customers=[
            dict(customer_id=1, joined_at="2024-01-01", city="北京", external_id="a"),
            dict(customer_id=2, joined_at="2024-09-01", city="上海", external_id="b"),
        ],
        orders=[
            dict(order_id=1, customer_id=1, ordered_at="2024-02-01", status="paid", revenue=5.0),
            dict(order_id=2, customer_id=2, ordered_at="2024-03-01", status="paid", revenue=7.0),
            dict(order_id=3, customer_id=3, ordered_at="2024-04-01", status="paid", revenue=9.0),
        ],
    )
    settings = EngineSettings(churn_window_days=365)
    table = to_arrow(customer_table(sources, ts("2024-06-01"), settings))
    rows = {row["customer_id"]: row for row in table.to_pylist()}
    assert set(rows) == {1, 2, 3}
    assert [rows[i]["city"] for i in (1, 2, 3)] == ["北京", "上海", None]
    assert [rows[i]["external_id"] for i in (1, 2, 3)] == ["a", "b", None]
    assert [rows[i]["stage"] for i in (1, 2, 3)] == ["customer", "customer", "customer"]
