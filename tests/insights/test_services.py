"""The helpers that turn the engine's tables into stored rows."""

from __future__ import annotations

import pyarrow as pa

from loyal.insights.services import _top_suggestion


def suggestions(rows: list[tuple]) -> pa.Table:
    names = ["customer_id", "kind", "sku", "category", "score", "rank"]
    columns = list(zip(*rows, strict=True))
    types = [pa.int64(), pa.string(), pa.string(), pa.string(), pa.float64(), pa.int64()]
    return pa.table({n: pa.array(c, t) for n, c, t in zip(names, columns, types, strict=True)})


def top_by_customer(table: pa.Table) -> dict[int, str]:
    return dict(zip(table["customer_id"].to_pylist(), table["suggestion"].to_pylist(), strict=True))


def test_top_suggestion_is_the_highest_score_and_the_first_listed_of_equal_scores():
    table = suggestions(
        [
            (2, "cross_sell", "SKU-9", "tea", 0.5, 1),
            (1, "cross_sell", "SKU-1", "coffee", 0.2, 1),
            (1, "cross_sell", "SKU-2", "coffee", 0.9, 2),
            (1, "up_sell", "SKU-3", "coffee", 0.4, 1),
            (3, "cross_sell", None, "cups", 0.3, 1),  # a category suggestion
            (3, "up_sell", "SKU-7", "cups", 0.3, 1),  # as good, listed later
            (4, "up_sell", "", None, 0.1, 1),  # neither sku nor category
        ]
    )
    got = _top_suggestion(table)
    assert got.schema.field("customer_id").type == pa.int64()
    assert top_by_customer(got) == {
        1: "cross_sell: SKU-2",
        2: "cross_sell: SKU-9",
        3: "cross_sell: cups",
        4: "up_sell: ",
    }


def test_top_suggestion_is_cut_at_200_characters_and_empty_without_suggestions():
    got = _top_suggestion(suggestions([(1, "cross_sell", "X" * 300, None, 1.0, 1)]))
    assert len(got["suggestion"][0].as_py()) == 200
    empty = suggestions([(1, "cross_sell", "A", None, 1.0, 1)]).slice(0, 0)
    assert _top_suggestion(empty).num_rows == 0
