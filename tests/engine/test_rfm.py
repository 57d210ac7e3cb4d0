"""RFM (R13): values, quantile scores with ties, the classic segment map."""

from __future__ import annotations

import pytest

from loyal.engine import rfm
from loyal.engine.execution import to_arrow
from loyal.engine.settings import EngineSettings

from .conftest import make_sources, ts

AS_OF = ts("2024-06-01")


@pytest.fixture
def shop(duck):
    def o(order_id, customer_id, at, revenue, status="paid"):
        return dict(
            order_id=order_id,
            customer_id=customer_id,
            ordered_at=at,
            status=status,
            revenue=revenue,
        )

    return make_sources(
        duck,
        orders=[
            o(1, 1, "2024-03-01", 100.0),
            o(2, 1, "2024-04-01", 100.0),
            o(3, 1, "2024-05-30", 100.0),
            o(4, 2, "2024-05-30", 50.0),
            o(5, 3, "2024-03-01", 50.0),
            o(6, 3, "2024-04-01", 50.0),
            o(7, 4, "2024-01-01", 20.0),
            *[o(10 + i, 5, f"2023-{7 + i:02d}-01", 100.0) for i in range(5)],
            o(20, 6, "2024-05-01", 70.0, status="refunded"),
        ],
    )


def by_id(expr):
    return {r["customer_id"]: r for r in to_arrow(expr).to_pylist()}


def test_rfm_values(shop):
    got = by_id(rfm.rfm_values(shop.orders, AS_OF, EngineSettings()))
    assert set(got) == {1, 2, 3, 4, 5}  # 6 only has a refunded order
    assert (got[1]["recency_days"], got[1]["frequency"], got[1]["monetary"]) == (2.0, 3, 300.0)
    # Customer 5's last order: 2023-11-01, 213 days before 2024-06-01.
    assert (got[5]["recency_days"], got[5]["frequency"], got[5]["monetary"]) == (213.0, 5, 500.0)


def test_rfm_scores_are_quantiles_with_ties_sharing_a_score(shop):
    got = by_id(rfm.rfm(shop.orders, AS_OF, EngineSettings()))
    # n = 5; score = min(5, 1 + floor(5 r / 4)), r = customers strictly worse.
    # Recency (worst first): 5 (213 d) r0, 4 (152 d) r1, 3 (61 d) r2, 1 and 2 (2 d) r3
    #   -> 1, 2, 3, 4, 4 (the tie shares 4).
    # Frequency: 2 and 4 (1 order) r0 -> 1; 3 (2) r2 -> 3; 1 (3) r3 -> 4; 5 (5) r4 -> 5.
    # Monetary: 4 (20) 1; 2 (50) 2; 3 (100) 3; 1 (300) 4; 5 (500) 5.
    scores = {cid: (r["r_score"], r["f_score"], r["m_score"]) for cid, r in got.items()}
    assert scores == {1: (4, 4, 4), 2: (4, 1, 2), 3: (3, 3, 3), 4: (2, 1, 1), 5: (1, 5, 5)}
    segments = {cid: r["rfm_segment"] for cid, r in got.items()}
    assert segments == {
        1: "loyal",
        2: "promising",
        3: "need_attention",
        4: "hibernating",
        5: "cant_lose",
    }


def test_classic_map_gives_every_cell_exactly_one_segment():
    rfm.validate_segment_map(rfm.CLASSIC_SEGMENT_MAP, 5)
    assert len(rfm.RFM_SEGMENTS) == 11
    cells = {
        (r, f): rule.segment
        for rule in rfm.CLASSIC_SEGMENT_MAP
        for r in range(rule.recency[0], rule.recency[1] + 1)
        for f in range(rule.frequency[0], rule.frequency[1] + 1)
    }
    assert len(cells) == 25
    assert (cells[(5, 5)], cells[(1, 1)], cells[(2, 2)], cells[(1, 5)]) == (
        "champions",
        "lost",
        "hibernating",
        "cant_lose",
    )


def test_segment_map_with_gaps_or_overlaps_is_rejected():
    overlapping = (*rfm.CLASSIC_SEGMENT_MAP, rfm.RfmSegmentRule("vip", (5, 5), (5, 5)))
    with pytest.raises(ValueError, match=r"R=5 F=5: \['champions', 'vip'\]"):
        rfm.validate_segment_map(overlapping, 5)
    with pytest.raises(ValueError, match="R=6 F=1: no segment"):
        rfm.validate_segment_map(rfm.CLASSIC_SEGMENT_MAP, 6)


def test_rfm_grid_counts_cells(shop):
    scored = rfm.rfm(shop.orders, AS_OF, EngineSettings())
    grid = {(r["r_score"], r["f_score"]): r for r in to_arrow(rfm.rfm_grid(scored)).to_pylist()}
    assert sum(r["customers"] for r in grid.values()) == 5
    assert grid[(4, 4)]["rfm_segment"] == "loyal"
    assert grid[(1, 5)]["monetary_mean"] == 500.0
