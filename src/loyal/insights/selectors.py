"""Reads of stored analysis results."""

from __future__ import annotations

from loyal.insights.models import AnalysisRun, KpiSnapshot


def latest_run() -> AnalysisRun | None:
    """The most recent analysis run that finished."""
    return (
        AnalysisRun.objects.filter(status=AnalysisRun.Status.DONE)
        .order_by("-finished_at", "-id")
        .first()
    )


def kpi_history(kpi: str) -> list[tuple[str, float | None]]:
    """One KPI's value at every finished run, oldest first: (as_of date, value)."""
    rows = (
        KpiSnapshot.objects.filter(kpi=kpi, run__status=AnalysisRun.Status.DONE)
        .order_by("as_of", "run_id")
        .values_list("as_of", "value")
    )
    return [(as_of.date().isoformat(), value) for as_of, value in rows]
