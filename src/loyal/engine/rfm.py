"""RFM (R13): recency, frequency and monetary scores, and the classic RFM segment map.

Definitions (paid orders before ``as_of``, within ``rfm_lookback_days`` when set):

- recency_days: days from the customer's last paid order to ``as_of``;
- frequency: number of paid orders; monetary: their revenue.

*Scores* 1..``rfm_bins`` (5) by quantile, 5 best (most recent, most frequent, highest spend):
score = min(bins, 1 + floor(bins × r / (n - 1))), where n is the number of scored customers
and r how many of them are strictly worse on that measure (SQL ``rank()`` in worst-first order,
so r / (n - 1) is ``percent_rank``): the worst customer scores 1, the best ``bins``. Equal
values always get equal scores, whatever their order in the table; with heavy ties (most
customers bought once) some scores stay empty rather than splitting equal customers
arbitrarily. The arithmetic is on integers, so every backend gives the same scores.

*Segments* from the R and F scores by ``CLASSIC_SEGMENT_MAP`` (the widely used RFM grid: an
R×F cell belongs to exactly one segment; M refines the ranking inside a segment but does not
move a customer between segments):

====  ========================  ========================================================
R     F                         segment
====  ========================  ========================================================
5     4-5                       champions
3-4   4-5                       loyal
4-5   2-3                       potential_loyalist
5     1                         new
4     1                         promising
3     3                         need_attention
3     1-2                       about_to_sleep
1-2   3-4                       at_risk
1-2   5                         cant_lose
2     1-2                       hibernating
1     1-2                       lost
====  ========================  ========================================================

Segment codes only; their names in English and Chinese belong to the web layer.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from loyal.engine.common import DAY, epoch, lookback_start, paid_order_values, utc
from loyal.engine.settings import EngineSettings


@dataclass(frozen=True)
class RfmSegmentRule:
    """Customers whose R and F scores fall in these inclusive ranges belong to ``segment``."""

    segment: str
    recency: tuple[int, int]
    frequency: tuple[int, int]


CLASSIC_SEGMENT_MAP: tuple[RfmSegmentRule, ...] = (
    RfmSegmentRule("champions", (5, 5), (4, 5)),
    RfmSegmentRule("loyal", (3, 4), (4, 5)),
    RfmSegmentRule("potential_loyalist", (4, 5), (2, 3)),
    RfmSegmentRule("new", (5, 5), (1, 1)),
    RfmSegmentRule("promising", (4, 4), (1, 1)),
    RfmSegmentRule("need_attention", (3, 3), (3, 3)),
    RfmSegmentRule("about_to_sleep", (3, 3), (1, 2)),
    RfmSegmentRule("at_risk", (1, 2), (3, 4)),
    RfmSegmentRule("cant_lose", (1, 2), (5, 5)),
    RfmSegmentRule("hibernating", (2, 2), (1, 2)),
    RfmSegmentRule("lost", (1, 1), (1, 2)),
)
RFM_SEGMENTS = tuple(rule.segment for rule in CLASSIC_SEGMENT_MAP)


def rfm_values(
    orders: ir.Table,
    as_of: dt.datetime,
    settings: EngineSettings,
    *,
    purchases: ir.Table | None = None,
    totals: ir.Table | None = None,
) -> ir.Table:
    """Per customer with a paid order: recency_days, frequency, monetary (see module docstring).

    ``purchases``: a shared ``common.purchase_sequence(orders, as_of)`` (or
    ``common.paid_order_values``), read instead of the orders when given; ``totals``: a shared
    ``common.order_totals`` of it, read instead when there is no RFM lookback.
    """
    as_of = utc(as_of)
    since = lookback_start(as_of, settings.rfm_lookback_days)
    if totals is not None and since is None:
        agg = totals
    else:
        paid = paid_order_values(orders, as_of) if purchases is None else purchases
        if since is not None:
            paid = paid.filter(paid.o_s >= epoch(since))
        agg = paid.group_by("customer_id").aggregate(
            last_s=paid.o_s.max(), frequency=paid.count(), monetary=paid.revenue.sum()
        )
    return agg.select(
        "customer_id",
        recency_days=(epoch(as_of) - agg.last_s).cast("float64") / DAY,
        frequency=agg.frequency.cast("int64"),
        monetary=agg.monetary,
    )


def rfm_scores(values: ir.Table, bins: int) -> ir.Table:
    """Adds r_score, f_score, m_score (1..bins, higher is better) to ``rfm_values``."""
    n = values.count().over(ibis.window())

    def score(worst_first: ir.Value) -> ir.IntegerValue:
        worse = ibis.rank().over(ibis.window(order_by=worst_first))  # 0-based, ties share
        raw = (worse * bins) // ibis.greatest(n - 1, 1) + 1
        return ibis.least(raw, bins).cast("int64")

    return values.mutate(
        r_score=score(ibis.desc(values.recency_days)),
        f_score=score(values.frequency),
        m_score=score(values.monetary),
    )


def validate_segment_map(segment_map: Sequence[RfmSegmentRule], bins: int) -> None:
    """Raise ValueError unless every (R, F) cell of the bins × bins grid has exactly one
    segment."""
    problems = []
    for r in range(1, bins + 1):
        for f in range(1, bins + 1):
            hits = [
                rule.segment
                for rule in segment_map
                if rule.recency[0] <= r <= rule.recency[1]
                and rule.frequency[0] <= f <= rule.frequency[1]
            ]
            if len(hits) != 1:
                problems.append(f"R={r} F={f}: {hits or 'no segment'}")
    if problems:
        raise ValueError(
            f"the RFM segment map must give each cell of the {bins}x{bins} score grid exactly one "
            "segment (with rfm_bins other than 5, pass a segment map of your own); "
            "problems: " + "; ".join(problems[:10])
        )


def rfm_segments(
    scored: ir.Table, segment_map: Sequence[RfmSegmentRule] = CLASSIC_SEGMENT_MAP, bins: int = 5
) -> ir.Table:
    """Adds ``rfm_segment`` to ``rfm_scores`` output by the R x F segment map."""
    validate_segment_map(segment_map, bins)
    cases = [
        (
            scored.r_score.between(rule.recency[0], rule.recency[1])
            & scored.f_score.between(rule.frequency[0], rule.frequency[1]),
            rule.segment,
        )
        for rule in segment_map
    ]
    return scored.mutate(rfm_segment=ibis.cases(*cases, else_=ibis.null("string")))


def rfm(
    orders: ir.Table,
    as_of: dt.datetime,
    settings: EngineSettings,
    segment_map: Sequence[RfmSegmentRule] = CLASSIC_SEGMENT_MAP,
    *,
    purchases: ir.Table | None = None,
    totals: ir.Table | None = None,
) -> ir.Table:
    """RFM values, scores and segment for every customer with a paid order.

    ``purchases``: a shared ``common.purchase_sequence(orders, as_of)``; ``totals``: as in
    ``rfm_values``.
    """
    values = rfm_values(orders, as_of, settings, purchases=purchases, totals=totals)
    return rfm_segments(rfm_scores(values, settings.rfm_bins), segment_map, settings.rfm_bins)


def rfm_grid(scored: ir.Table) -> ir.Table:
    """Counts per (r_score, f_score) cell for the RFM map: customers, the cell's segment,
    mean monetary and mean recency."""
    return (
        scored.group_by(["r_score", "f_score"])
        .aggregate(
            rfm_segment=scored.rfm_segment.max(),  # one segment per cell by construction
            customers=scored.count(),
            monetary_mean=scored.monetary.mean(),
            recency_days_mean=scored.recency_days.mean(),
        )
        .order_by(["r_score", "f_score"])
    )
