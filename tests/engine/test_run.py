"""run_all: every analysis for one as_of, executed, with progress reports."""

from __future__ import annotations

import pyarrow.compute as pc
import pytest

from loyal.engine.lifecycle import STAGES
from loyal.engine.run import EngineResults, customer_table, run_all
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import sources_from_arrow

from .conftest import DEMO_AS_OF, demo_tables


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
