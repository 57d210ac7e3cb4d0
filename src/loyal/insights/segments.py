"""Rule segments (R14) on the records' side: stored rules, checked when saved, counted by every
analysis run.

A segment is a rule of ``loyal.engine.segments`` (JSON data, never code) over the table that
every analysis builds: the engine's per-customer table (attributes, stage, RFM, value classes)
with the predictions joined on (P(alive), expected purchases, CLV, churn probability, next best
action). ``loyal analyze`` stores each segment's member count per run, so counts over time are the
``SegmentCount`` rows of successive runs; the members of the latest run are ``SegmentMember``
rows (``loyal export scores --segment NAME`` writes them out).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from functools import cache
from typing import Any

import ibis
import pyarrow as pa
from django.db import transaction
from django.utils.translation import gettext as _

from loyal.engine.execution import duckdb_backend
from loyal.engine.run import customer_table
from loyal.engine.segments import RuleError, compile_rule, validate_rule
from loyal.engine.settings import EngineSettings
from loyal.engine.sources import SCHEMAS, sources_from_arrow
from loyal.imports.staging import StageColumn, StagingTable, execute
from loyal.insights.models import AnalysisRun, Segment, SegmentCount

logger = logging.getLogger(__name__)

# Predictions joined onto the engine's per-customer table before segments are evaluated.
PREDICTION_COLUMNS = {
    "p_alive": pa.float64(),
    "expected_purchases": pa.float64(),
    "expected_spend": pa.float64(),
    "clv": pa.float64(),
    "churn_probability": pa.float64(),
    "next_action": pa.string(),
    "action_priority": pa.float64(),
}


class SegmentError(ValueError):
    """A segment cannot be saved; the message says what is wrong, in the user's language."""


@cache
def segment_schema() -> ibis.Schema:
    """The columns (and types) a segment rule may use."""
    backend = duckdb_backend()
    empty = {name: schema.empty_table() for name, schema in SCHEMAS.items()}
    # The churn window only changes values, not columns: any fixed window gives the schema.
    settings = EngineSettings(churn_window_days=90)
    table = customer_table(sources_from_arrow(empty, backend), dt.datetime.now(dt.UTC), settings)
    return ibis.schema({**table.schema(), **PREDICTION_COLUMNS})


def parse_rule(text: str) -> Any:
    """A rule from its JSON text; SegmentError names the position of a syntax error."""
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise SegmentError(
            _("The rule is not valid JSON (line {line}, column {column}): {message}.").format(
                line=error.lineno, column=error.colno, message=error.msg
            )
        ) from None


def check_rule(name: str, rule: Any) -> None:
    """Raise SegmentError unless ``name`` is given and ``rule`` fits the segment table."""
    if not name.strip():
        raise SegmentError(_("A segment needs a name."))
    try:
        validate_rule(rule, segment_schema())
    except RuleError as error:
        raise SegmentError(
            _("The rule of segment {name} is wrong at {path}: {message}").format(
                name=name, path=error.path, message=_(error.template).format(**error.params)
            )
        ) from None


def save_segment(
    name: str,
    rule: Any,
    *,
    description: str = "",
    expected_service: str = "",
    user: Any = None,
) -> Segment:
    """Create the segment ``name``, or replace its rule and texts; the rule is checked first."""
    name = name.strip()
    check_rule(name, rule)
    with transaction.atomic():
        segment, created = Segment.objects.update_or_create(
            name=name,
            defaults={
                "rules": rule,
                "description": description,
                "expected_service": expected_service,
            },
        )
        if created and user is not None:
            segment.created_by = user
            segment.save(update_fields=["created_by"])
        segment.audit("segment.created" if created else "segment.changed", user)
    return segment


def delete_segment(name: str, *, user: Any = None) -> None:
    """Delete segment ``name`` and its counts."""
    segment = Segment.objects.filter(name=name).first()
    if segment is None:
        raise SegmentError(_("There is no segment named {name}.").format(name=name))
    with transaction.atomic():
        segment.audit("segment.deleted", user)
        segment.delete()


def store_segments(run: AnalysisRun, customers: pa.Table) -> dict[str, str]:
    """Evaluate every segment on ``customers`` (the run's segment table): store its member count
    for ``run`` and its members (only the latest run's members are kept). Returns
    {name: error} for the rules that no longer fit the table: they are skipped, the run goes on.
    """
    execute("DELETE FROM insights_segmentmember")
    segments = list(Segment.objects.all())
    if not segments:
        return {}
    backend = duckdb_backend()
    table = backend.create_table("segment_customers", customers, temp=True)
    staged = StagingTable(
        "loyal_stage_members",
        [StageColumn("segment_id", "integer"), StageColumn("customer_id", "integer")],
    )
    failed: dict[str, str] = {}
    counts = []
    try:
        for segment in segments:
            try:
                members = backend.to_pyarrow(
                    table.filter(compile_rule(segment.rules, table)).select("customer_id")
                )
            except RuleError as error:
                logger.warning("Segment %s was not evaluated: %s", segment.name, error)
                failed[segment.name] = "{}: {}".format(
                    error.path, _(error.template).format(**error.params)
                )
                continue
            staged.append(
                pa.table(
                    {
                        "segment_id": pa.repeat(
                            pa.scalar(segment.pk, pa.int64()), members.num_rows
                        ),
                        "customer_id": members.column("customer_id"),
                    }
                )
            )
            counts.append(
                SegmentCount(segment=segment, run=run, as_of=run.as_of, members=members.num_rows)
            )
        staged.seal()
        execute(
            "INSERT INTO insights_segmentmember (segment_id, customer_id)"
            " SELECT segment_id, customer_id FROM loyal_stage_members"
        )
    finally:
        staged.drop()
        backend.disconnect()
    SegmentCount.objects.bulk_create(counts)
    return failed
