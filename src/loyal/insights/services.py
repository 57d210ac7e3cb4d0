"""Running the engine over the records and storing what it found."""

from __future__ import annotations

import datetime as dt
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
from django.conf import settings as django_settings
from django.db import transaction
from django.utils import timezone

from loyal.accounts.models import AuditEntry
from loyal.engine.execution import duckdb_backend
from loyal.engine.run import EngineResults, run_all
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import sources_from_parquet
from loyal.imports.staging import StageColumn, StagingTable, execute, vendor
from loyal.insights.models import AnalysisRun, KpiSnapshot
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
)


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
            results = run_all(sources, as_of, settings, progress=progress)
        with transaction.atomic():
            changes = _store_scores(run, results)
            KpiSnapshot.objects.bulk_create(
                KpiSnapshot(run=run, as_of=as_of, kpi=name, value=_number(value))
                for name, value in results.kpis.items()
            )
            run.charts = {
                name: _rows(table, thin=name == "pareto") for name, table in results.charts.items()
            }
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
                },
            )
    except Exception as error:
        AnalysisRun.objects.filter(pk=run.pk).update(
            status=AnalysisRun.Status.FAILED, error=str(error)[:2000], finished_at=timezone.now()
        )
        raise
    return run


def _store_scores(run: AnalysisRun, results: EngineResults) -> int:
    """Upsert every customer's score and write stage changes; returns the number of changes."""
    customers = results.customers
    stage = StagingTable(
        "loyal_stage_scores", [StageColumn(n, t) for n, t in _SCORE_COLUMNS], [("customer_id",)]
    )
    try:
        stage.append(customers.select([n for n, _ in _SCORE_COLUMNS]))
        as_of = _db_datetime(results.as_of)
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
            "COALESCE(s.{}, {})".format(n, defaults[n])
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
