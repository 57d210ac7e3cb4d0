"""The same analyses give the same answers on DuckDB and on PySpark (local mode)."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import ibis
import pyarrow as pa
import pytest

from loyal.engine import churn_window, lifecycle, metrics, stickiness
from loyal.engine.execution import to_arrow
from loyal.engine.run import EngineResults, customer_table, run_all
from loyal.engine.segments import segment_counts
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import Sources, sources_from_arrow

from .conftest import DEMO_AS_OF, demo_tables

pytestmark = pytest.mark.spark


def _key(value: Any) -> tuple:
    # Sort None first and keep mixed types comparable.
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return (0, "")
    return (1, value if not isinstance(value, float) else round(value, 9))


def _rows(table: pa.Table) -> list[dict[str, Any]]:
    rows = table.to_pylist()
    return sorted(rows, key=lambda row: [_key(row[c]) for c in table.column_names])


def _same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, float) or isinstance(b, float):
        return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-12)
    return a == b


def assert_same_table(name: str, duck: pa.Table, spark: pa.Table) -> None:
    assert duck.column_names == spark.column_names, name
    assert duck.num_rows == spark.num_rows, f"{name}: {duck.num_rows} != {spark.num_rows} rows"
    for i, (a, b) in enumerate(zip(_rows(duck), _rows(spark), strict=True)):
        diffs = {c: (a[c], b[c]) for c in a if not _same(a[c], b[c])}
        assert not diffs, f"{name} row {i}: duckdb vs spark {diffs}"


@pytest.fixture(scope="module")
def both(duck, spark) -> dict[str, Sources]:
    tables = demo_tables()
    return {"duckdb": sources_from_arrow(tables, duck), "spark": sources_from_arrow(tables, spark)}


@pytest.fixture(scope="module")
def results(both) -> dict[str, EngineResults]:
    return {name: run_all(src, DEMO_AS_OF, EngineSettings()) for name, src in both.items()}


def test_run_all_agrees_on_every_table_and_kpi(results):
    duck, spark = results["duckdb"], results["spark"]
    assert duck.settings == spark.settings
    for key, value in duck.kpis.items():
        assert _same(value, spark.kpis[key]), f"KPI {key}: {value} != {spark.kpis[key]}"
    assert_same_table("customers", duck.customers, spark.customers)
    for name, table in duck.charts.items():
        assert_same_table(name, table, spark.charts[name])


def test_analyses_outside_run_all_agree(both, results):
    settings = results["duckdb"].settings
    as_of = DEMO_AS_OF
    p_alive = {"customer_id": [1, 2, 3, 6, 7], "p_alive": [0.05, 0.3, 0.9, 0.01, 0.6]}
    rules = {
        "risky_shanghai": {
            "all": [
                {"field": "stage", "op": "in", "value": ["at_risk", "churned"]},
                {"not": {"field": "city", "op": "=", "value": "北京"}},
            ]
        },
        "valuable": {"field": "profit", "op": "between", "value": [10, 1e9]},
    }

    def analyses(src: Sources) -> dict[str, ibis.Table]:
        scores = ibis.memtable(p_alive)
        return {
            "churn_by_channel": metrics.churn_rate(
                src, as_of, settings, by=["acquisition_channel"], p_alive=scores
            ),
            "churn_quarterly": metrics.churn_trend(
                src, as_of, settings, freq="month", periods=3, by=["city"]
            ),
            "weekly": stickiness.stickiness_trend(src, as_of, settings, freq="week", periods=6),
            "daily": stickiness.stickiness_trend(src, as_of, settings, freq="day", periods=10),
            "lifecycle_events": lifecycle.lifecycle_counts(
                src, as_of, settings, freq="week", periods=8, activity="events"
            ),
            "stages_p_alive": lifecycle.customer_stages(src, as_of, settings, scores),
            "segments": segment_counts(customer_table(src, as_of, settings), rules),
            "gaps": churn_window.gap_quantile(src.orders, as_of - dt.timedelta(days=90), 0.75),
        }

    duck = {k: to_arrow(v) for k, v in analyses(both["duckdb"]).items()}
    spark = {k: to_arrow(v) for k, v in analyses(both["spark"]).items()}
    for name in duck:
        assert duck[name].num_rows > 0, name
        assert_same_table(name, duck[name], spark[name])
