"""Running the engine over the records and storing what it found."""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone

from loyal.accounts.models import AuditEntry
from loyal.engine.execution import duckdb_backend
from loyal.engine.predict import Analysis, analyse
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import sources_from_parquet
from loyal.imports.staging import StageColumn, StagingTable, execute, json_value, vendor
from loyal.insights.models import AnalysisRun, KpiSnapshot
from loyal.insights.segments import PREDICTION_COLUMNS, store_segments
from loyal.insights.sources import snapshot_records

Progress = Callable[[str, int, int], None]

# DuckDB's memory budget for one analysis; past it, it spills to disk (LOYAL_ANALYSIS_MEMORY).
MEMORY_LIMIT = os.environ.get("LOYAL_ANALYSIS_MEMORY", "2GB")

# Chart tables keep at most this many rows when stored (the Pareto curve has one per customer).
MAX_CHART_ROWS = 1000

# Per-customer columns of the engine's customer table stored on CustomerScore.
_SCORE_COLUMNS = (
    ("customer_id", "integer"),
    ("stage", "text"),
    ("churned", "boolean"),
    ("recency_days", "number"),
    ("frequency", "integer"),
    ("monetary", "number"),
    ("r_score", "integer"),
    ("f_score", "integer"),
    ("m_score", "integer"),
    ("rfm_segment", "text"),
    ("margin", "number"),
    ("cost_to_serve", "number"),
    ("profit", "number"),
    ("abc_class", "text"),
    ("return_class", "text"),
    ("p_alive", "number"),
    ("expected_purchases", "number"),
    ("expected_spend", "number"),
    ("clv", "number"),
    ("churn_probability", "number"),
    ("reasons", "text"),
    ("next_action", "text"),
    ("action_priority", "number"),
    ("suggestion", "text"),
)
# The columns above that come from the engine's per-customer table.
_ENGINE_COLUMNS = {
    "customer_id",
    "stage",
    "churned",
    "recency_days",
    "frequency",
    "monetary",
    "r_score",
    "f_score",
    "m_score",
    "rfm_segment",
    "margin",
    "cost_to_serve",
    "profit",
    "abc_class",
    "return_class",
}


def run_analysis(
    as_of: dt.datetime | None = None,
    *,
    settings: EngineSettings | None = None,
    progress: Progress | None = None,
) -> AnalysisRun:
    """Read the records, run every analysis for ``as_of`` and store the results.

    Stores per-customer scores, the KPI snapshot and the chart tables, and writes the stage
    changes the engine found into each customer's stage history (origin "analysis").
    """
    as_of = as_of or timezone.now()
    started = time.perf_counter()
    run = AnalysisRun.objects.create(as_of=as_of, engine="duckdb")
    try:
        with tempfile.TemporaryDirectory(prefix="analysis-", dir=_work_dir()) as work:
            paths = snapshot_records(Path(work) / "records")
            backend = duckdb_backend(threads=os.cpu_count(), memory_limit=MEMORY_LIMIT)
            # DuckDB spills to disk past its memory limit, beside the snapshot.
            backend.raw_sql("SET temp_directory = '{}'".format(Path(work) / "spill"))
            sources = sources_from_parquet(paths, backend)
            try:
                analysis = analyse(sources, as_of, settings, progress=progress)
            finally:
                # The results are Arrow tables of their own: free DuckDB's memory before
                # storing them.
                del sources
                backend.disconnect()
        results = analysis.results
        scores = _score_table(analysis)
        kpis = _kpis(analysis)
        charts = {
            name: _rows(table, thin=name == "pareto") for name, table in _charts(analysis).items()
        }
        fitted_models = _json_safe(_fitted_models(analysis))
        # What is left to store is in scores, results, kpis and charts: let the suggestions,
        # actions and models' tables go before the database needs memory of its own.
        del analysis
        with transaction.atomic():
            changes = _store_scores(run, results.as_of, scores)
            segment_table = _segment_table(results.customers, scores)
            del scores
            uncounted = store_segments(run, segment_table)
            del segment_table
            KpiSnapshot.objects.bulk_create(
                KpiSnapshot(run=run, as_of=as_of, kpi=name, value=_number(value))
                for name, value in kpis.items()
            )
            run.charts = charts
            run.fitted_models = fitted_models
            run.settings = _json_safe(results.settings.__dict__)
            run.customers = results.customers.num_rows
            run.status = AnalysisRun.Status.DONE
            run.finished_at = timezone.now()
            run.seconds = time.perf_counter() - started
            run.save()
            AuditEntry.objects.create(
                origin="analysis",
                action="analysis.run",
                object_type="analysis_run",
                object_id=str(run.pk),
                details={
                    "as_of": as_of.isoformat(),
                    "customers": run.customers,
                    "stage_changes": changes,
                    "segments_not_counted": uncounted,
                },
            )
    except Exception as error:
        AnalysisRun.objects.filter(pk=run.pk).update(
            status=AnalysisRun.Status.FAILED, error=str(error)[:2000], finished_at=timezone.now()
        )
        raise
    return run


def _score_table(analysis: Analysis) -> pa.Table:
    """One row per customer: the engine's per-customer table with every prediction joined on."""
    table = analysis.results.customers.select(
        [n for n, _ in _SCORE_COLUMNS if n in _ENGINE_COLUMNS]
    )
    if analysis.btyd is not None:
        table = table.join(analysis.btyd.scores, "customer_id", join_type="left outer")
    if analysis.churn is not None:
        table = table.join(analysis.churn.scores, "customer_id", join_type="left outer")
        table = table.join(
            _reasons_json(analysis.churn.reasons), "customer_id", join_type="left outer"
        )
    actions = analysis.actions.select(["customer_id", "action", "priority"]).rename_columns(
        ["customer_id", "next_action", "action_priority"]
    )
    table = table.join(actions, "customer_id", join_type="left outer")
    table = table.join(_top_suggestion(analysis.suggestions), "customer_id", join_type="left outer")
    columns = {}
    for name, sql_type in _SCORE_COLUMNS:
        if name in table.column_names:
            columns[name] = table.column(name)
        else:
            columns[name] = pa.nulls(
                table.num_rows, pa.string() if sql_type == "text" else pa.float64()
            )
    return pa.table(columns)


def _segment_table(customers: pa.Table, scores: pa.Table) -> pa.Table:
    """The table segment rules run on: the engine's per-customer table and the predictions."""
    predictions = scores.select(["customer_id", *PREDICTION_COLUMNS])
    return customers.join(predictions, "customer_id", join_type="left outer")


def _reasons_json(reasons: pa.Table) -> pa.Table:
    """customer_id, reasons: the ranked reasons of each customer as one JSON list."""
    grouped: dict[int, list[dict[str, Any]]] = {}
    for row in reasons.sort_by([("customer_id", "ascending"), ("rank", "ascending")]).to_pylist():
        grouped.setdefault(row["customer_id"], []).append(
            {"code": row["code"], "params": json.loads(row["params"])}
        )
    return pa.table(
        {
            "customer_id": pa.array(list(grouped), pa.int64()),
            "reasons": pa.array(
                [json.dumps(found, ensure_ascii=False) for found in grouped.values()], pa.string()
            ),
        }
    )


def _top_suggestion(suggestions: pa.Table) -> pa.Table:
    """customer_id, suggestion: each customer's highest-scored suggestion (the first listed of
    equal scores), as "cross_sell: SKU" or "up_sell: CATEGORY"; in Arrow, without a Python
    object per suggestion."""
    # A stable sort keeps the listed order among equal scores.
    order = pc.sort_indices(
        suggestions, sort_keys=[("customer_id", "ascending"), ("score", "descending")]
    )
    ranked = suggestions.select(["customer_id", "kind", "sku", "category"]).take(order)
    customers = ranked.column("customer_id").combine_chunks()
    first = np.ones(len(customers), dtype=bool)
    if len(customers) > 1:
        ids = customers.to_numpy()
        first[1:] = ids[1:] != ids[:-1]
    best = ranked.filter(pa.array(first))
    item = _coalesce_text(best.column("sku"), best.column("category"), pa.scalar(""))
    text = pc.binary_join_element_wise(best.column("kind"), item, ": ")
    return pa.table(
        {
            "customer_id": pc.cast(best.column("customer_id"), pa.int64()),
            "suggestion": pc.utf8_slice_codeunits(pc.cast(text, pa.string()), 0, 200),
        }
    )


def _coalesce_text(*values: Any) -> Any:
    """The first of ``values`` that is neither null nor empty, element by element."""
    result = values[-1]
    for value in reversed(values[:-1]):
        present = pc.fill_null(pc.not_equal(value, ""), False)
        result = pc.if_else(present, value, result)
    return result


def _kpis(analysis: Analysis) -> dict[str, Any]:
    kpis = dict(analysis.results.kpis)
    if analysis.btyd is not None:
        kpis["customer_equity"] = analysis.btyd.customer_equity
        kpis["btyd_log_likelihood"] = analysis.btyd.log_likelihood
        kpis["btyd_holdout_mae"] = analysis.btyd.holdout.get("mae")
        kpis["btyd_holdout_actual"] = analysis.btyd.holdout.get("total_actual")
        kpis["btyd_holdout_predicted"] = analysis.btyd.holdout.get("total_predicted")
    if analysis.churn is not None:
        kpis["churn_model_auc"] = analysis.churn.backtest["auc"]
        kpis["churn_model_lift"] = analysis.churn.backtest["top_decile_lift"]
        kpis["churn_model_brier"] = analysis.churn.backtest["brier"]
    return kpis


def _charts(analysis: Analysis) -> dict[str, pa.Table]:
    charts = dict(analysis.results.charts)
    if analysis.btyd is not None:
        charts["btyd_tracking"] = analysis.btyd.tracking
    if analysis.churn is not None:
        charts["churn_calibration"] = analysis.churn.calibration
        charts["churn_drivers"] = analysis.churn.drivers
    charts["stated_reasons"] = analysis.stated_reasons
    charts["actions"] = _action_summary(analysis.actions)
    return charts


def _action_summary(actions: pa.Table) -> pa.Table:
    counts = pc.value_counts(actions.column("action")).to_pylist()
    return pa.table(
        {
            "action": pa.array([c["values"] for c in counts], pa.string()),
            "customers": pa.array([c["counts"] for c in counts], pa.int64()),
        }
    )


def _fitted_models(analysis: Analysis) -> dict[str, Any]:
    models: dict[str, Any] = {}
    if analysis.btyd is not None:
        fitted = analysis.btyd
        models["btyd"] = {
            "model": "BG/NBD + Gamma-Gamma (days)",
            "params": fitted.params,
            "standard_errors": fitted.standard_errors,
            "log_likelihood": fitted.log_likelihood,
            "spend_params": fitted.spend_params,
            "holdout": fitted.holdout,
        }
    if analysis.churn is not None:
        models["churn"] = analysis.churn.backtest
    return models


def _store_scores(run: AnalysisRun, as_of: dt.datetime, customers: pa.Table) -> int:
    """Upsert every customer's score and write stage changes; returns the number of changes."""
    stage = StagingTable(
        "loyal_stage_scores", [StageColumn(n, t) for n, t in _SCORE_COLUMNS], [("customer_id",)]
    )
    try:
        stage.append(customers.select([n for n, _ in _SCORE_COLUMNS]))
        stage.seal()
        as_of = _db_datetime(as_of)
        names = [n for n, _ in _SCORE_COLUMNS if n != "customer_id"]
        defaults = {
            "frequency": "0",
            "monetary": "0",
            "margin": "0",
            "cost_to_serve": "0",
            "profit": "0",
            "churned": _false(),
        }
        values = [
            json_value("COALESCE(s.reasons, '[]')")
            if n == "reasons"
            else "COALESCE(s.{}, {})".format(n, defaults[n])
            if n in defaults
            else ("COALESCE(s.{}, '')".format(n) if t == "text" else "s." + n)
            for n, t in _SCORE_COLUMNS
            if n != "customer_id"
        ]
        execute(
            "INSERT INTO insights_customerscore (customer_id, run_id, as_of, {names}) SELECT s.customer_id, %s, %s,"
            " {values} FROM loyal_stage_scores s WHERE true ON CONFLICT (customer_id) DO UPDATE SET run_id = excluded.run_id,"
            " as_of = excluded.as_of, {set}".format(
                names=", ".join(names),
                values=", ".join(values),
                set=", ".join("{n} = excluded.{n}".format(n=n) for n in names),
            ),
            [run.pk, as_of],
        )
        changes = execute(
            "INSERT INTO customers_stagechange (customer_id, changed_at, from_stage, to_stage, reason, origin)"
            " SELECT c.id, %s, c.stage, s.stage, 'analysis', 'analysis' FROM loyal_stage_scores s {join}"
            " customers_customer c ON c.id = s.customer_id WHERE s.stage IS NOT NULL AND s.stage <> c.stage".format(
                join="CROSS JOIN" if vendor() == "sqlite" else "JOIN"
            ),
            [as_of],
        )
        if changes:
            execute(
                "UPDATE customers_customer SET stage = (SELECT s.stage FROM loyal_stage_scores s"
                " WHERE s.customer_id = customers_customer.id), stage_changed_at = %s WHERE id IN"
                " (SELECT s.customer_id FROM loyal_stage_scores s {join} customers_customer c ON c.id = s.customer_id"
                " WHERE s.stage IS NOT NULL AND s.stage <> c.stage)".format(
                    join="CROSS JOIN" if vendor() == "sqlite" else "JOIN"
                ),
                [as_of],
            )
        return changes
    finally:
        stage.drop()


def _false() -> str:
    return "false" if vendor() == "postgresql" else "0"


def _db_datetime(value: dt.datetime) -> Any:
    from django.db import connection

    return connection.ops.adapt_datetimefield_value(value)


def _rows(table: pa.Table, *, thin: bool = False) -> list[dict[str, Any]]:
    """A chart table as JSON-ready rows; a per-customer curve is thinned evenly to MAX_CHART_ROWS."""
    if thin and table.num_rows > MAX_CHART_ROWS:
        step = table.num_rows / (MAX_CHART_ROWS - 1)
        keep = sorted({min(round(i * step), table.num_rows - 1) for i in range(MAX_CHART_ROWS)})
        table = table.take(pa.array(keep))
    return [_json_safe(row) for row in table.to_pylist()]


def _json_safe(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _number(value: Any) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _work_dir() -> Path:
    path = Path(django_settings.DATA_DIR) / "work"
    path.mkdir(parents=True, exist_ok=True)
    return path
