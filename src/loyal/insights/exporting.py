"""Exporting stored analysis results: per-customer scores and KPI snapshots per run."""

from __future__ import annotations

from collections.abc import Iterator

import pyarrow as pa
from django.db import connection

BATCH_ROWS = 50_000

_QUERIES = {
    "scores": (
        "SELECT c.external_id, c.name, s.as_of, s.stage, s.churned, s.recency_days, s.frequency, s.monetary,"
        " s.r_score, s.f_score, s.m_score, s.rfm_segment, s.margin, s.cost_to_serve, s.profit, s.abc_class,"
        " s.return_class FROM insights_customerscore s JOIN customers_customer c ON c.id = s.customer_id"
        " ORDER BY c.id"
    ),
    "kpis": (
        "SELECT r.id AS run, k.as_of, k.kpi, k.value FROM insights_kpisnapshot k"
        " JOIN insights_analysisrun r ON r.id = k.run_id WHERE r.status = 'done' ORDER BY k.as_of, r.id, k.kpi"
    ),
}

_TYPES = {
    "as_of": pa.timestamp("us", tz="UTC"),
    "churned": pa.bool_(),
    "recency_days": pa.float64(),
    "monetary": pa.float64(),
    "margin": pa.float64(),
    "cost_to_serve": pa.float64(),
    "profit": pa.float64(),
    "value": pa.float64(),
}

EXPORTS = tuple(_QUERIES)


def export_results(name: str) -> Iterator[pa.Table]:
    """Stored results ``name`` ("scores" or "kpis") as Arrow tables."""
    from loyal.imports.exporting import arrow_column

    with connection.cursor() as cursor:
        cursor.execute(_QUERIES[name])
        names = [column[0] for column in cursor.description]
        yielded = False
        while rows := cursor.fetchmany(BATCH_ROWS):
            columns = list(zip(*rows, strict=True))
            yield pa.table(
                {
                    n: arrow_column(values, _TYPES.get(n))
                    for n, values in zip(names, columns, strict=True)
                }
            )
            yielded = True
        if not yielded:
            yield pa.table({n: pa.array([], _TYPES.get(n, pa.string())) for n in names})
