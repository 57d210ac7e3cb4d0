"""Reads of stored analysis results."""

from __future__ import annotations

from loyal.insights.models import AnalysisRun, KpiSnapshot, SegmentCount


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


def segment_history() -> dict[str, list[tuple[str, int]]]:
    """Every segment's member count at every finished run, oldest first: name -> (date, members)."""
    rows = (
        SegmentCount.objects.filter(run__status=AnalysisRun.Status.DONE)
        .order_by("segment__name", "as_of", "run_id")
        .values_list("segment__name", "as_of", "members")
    )
    history: dict[str, list[tuple[str, int]]] = {}
    for name, as_of, members in rows:
        history.setdefault(name, []).append((as_of.date().isoformat(), members))
    return history
