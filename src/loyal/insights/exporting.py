"""Exporting what Loyal stores beside the records: per-customer scores and predictions, KPI
snapshots per run, segment counts per run, and every customer's stage history."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pyarrow as pa
from django.db import connection
from django.utils.translation import gettext as _

from loyal.insights.reasons import render_reasons
from loyal.insights.selectors import latest_run

BATCH_ROWS = 50_000

_QUERIES = {
    "scores": (
        "SELECT c.external_id, c.name, s.as_of, s.stage, s.churned, s.recency_days, s.frequency, s.monetary,"
        " s.r_score, s.f_score, s.m_score, s.rfm_segment, s.margin, s.cost_to_serve, s.profit, s.abc_class,"
        " s.return_class, s.p_alive, s.expected_purchases, s.expected_spend, s.clv, s.churn_probability,"
        " s.reasons, s.next_action, s.action_priority, s.suggestion"
        " FROM insights_customerscore s JOIN customers_customer c ON c.id = s.customer_id"
        " {members} ORDER BY c.id"
    ),
    "kpis": (
        "SELECT r.id AS run, k.as_of, k.kpi, k.value FROM insights_kpisnapshot k"
        " JOIN insights_analysisrun r ON r.id = k.run_id WHERE r.status = 'done' ORDER BY k.as_of, r.id, k.kpi"
    ),
    "segments": (
        "SELECT g.name AS segment, n.run_id AS run, n.as_of, n.members FROM insights_segmentcount n"
        " JOIN insights_segment g ON g.id = n.segment_id ORDER BY g.name, n.as_of, n.run_id"
    ),
    "stages": (
        "SELECT c.external_id, h.changed_at, h.from_stage, h.to_stage, h.reason, h.origin,"
        " u.username AS changed_by FROM customers_stagechange h"
        " JOIN customers_customer c ON c.id = h.customer_id"
        " LEFT JOIN accounts_user u ON u.id = h.changed_by_id ORDER BY c.id, h.changed_at, h.id"
    ),
}

_TYPES = {
    "as_of": pa.timestamp("us", tz="UTC"),
    "changed_at": pa.timestamp("us", tz="UTC"),
    "churned": pa.bool_(),
    "recency_days": pa.float64(),
    "monetary": pa.float64(),
    "margin": pa.float64(),
    "cost_to_serve": pa.float64(),
    "profit": pa.float64(),
    "value": pa.float64(),
    "p_alive": pa.float64(),
    "expected_purchases": pa.float64(),
    "expected_spend": pa.float64(),
    "clv": pa.float64(),
    "churn_probability": pa.float64(),
    "action_priority": pa.float64(),
    "reasons": pa.string(),
    "changed_by": pa.string(),
}

EXPORTS = tuple(_QUERIES)


# The scores of one segment's members (at the latest analysis).
_SEGMENT_MEMBERS = (
    "WHERE s.customer_id IN (SELECT m.customer_id FROM insights_segmentmember m"
    " WHERE m.segment_id = %s)"
)


def export_results(name: str, *, segment_id: int | None = None) -> Iterator[pa.Table]:
    """Stored results ``name`` (one of ``EXPORTS``) as Arrow tables; with ``segment_id``, the
    scores of that segment's members only.

    A score's churn reasons are written as the sentence users read (in the active language).
    """
    from loyal.imports.exporting import arrow_column

    sql, params = _QUERIES[name], []
    if name == "scores":
        sql = sql.format(members=_SEGMENT_MEMBERS if segment_id is not None else "")
        params = [segment_id] if segment_id is not None else []
    elif segment_id is not None:
        raise ValueError("only scores can be limited to a segment, not {}".format(name))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [column[0] for column in cursor.description]
        yielded = False
        while rows := cursor.fetchmany(BATCH_ROWS):
            columns = dict(zip(names, zip(*rows, strict=True), strict=True))
            if "reasons" in columns:
                columns["reasons"] = tuple(_reasons_text(value) for value in columns["reasons"])
            yield pa.table(
                {n: arrow_column(values, _TYPES.get(n)) for n, values in columns.items()}
            )
            yielded = True
        if not yielded:
            yield pa.table({n: pa.array([], _TYPES.get(n, pa.string())) for n in names})


def chart_table(name: str | None) -> pa.Table:
    """The table behind chart ``name`` of the latest analysis (the Pareto curve is thinned to
    at most 1,000 points when stored). LookupError says what there is to choose from."""
    run = latest_run()
    if run is None:
        raise LookupError(_("There is no analysis yet: run `loyal analyze` first."))
    if name not in run.charts:
        raise LookupError(
            _("Name the chart with --chart NAME, one of: {names}.").format(
                names=", ".join(sorted(run.charts))
            )
        )
    rows = run.charts[name]
    if not rows:
        return pa.table({})
    return pa.Table.from_pylist(rows)


def _reasons_text(stored: object) -> str:
    """The stored reasons (JSON text on SQLite, decoded on PostgreSQL) as one translated phrase."""
    reasons = json.loads(stored) if isinstance(stored, str) else stored
    return render_reasons(reasons or [])
