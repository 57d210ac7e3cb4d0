"""Basket rules (R18) and cross-sell / up-sell suggestions (R19) on hand-computed tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

from loyal.engine import basket
from loyal.engine.basket import BasketSettings
from loyal.engine.execution import to_arrow

from .conftest import make_sources

AS_OF = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
# Every rule kept, so that the arithmetic below can be checked rule by rule.
ALL_RULES = BasketSettings(min_pair_count=1, min_confidence=0.0, min_lift=0.0)
CATEGORY = {"a": "x", "b": "y", "c": "y", "d": "z", "f": "y"}


def lines(
    order_id: int,
    customer_id: int,
    items: list[tuple[str, float, float]],
    status: str = "paid",
    day: str = "2024-03-01",
) -> list[dict[str, Any]]:
    """Order lines of one order; items are (sku, quantity, revenue)."""
    return [
        {
            "order_id": order_id,
            "customer_id": customer_id,
            "ordered_at": day,
            "status": status,
            "sku": sku,
            "category": CATEGORY[sku],
            "quantity": quantity,
            "revenue": revenue,
        }
        for sku, quantity, revenue in items
    ]


# Order baskets (paid, in the 365-day window): O1 {a, b}, O2 {a, b, c}, O3 {a, c}, O4 {b} (two
# lines of b: counted once), O7 {d}. So N = 5; n(a) = 3, n(b) = 3, n(c) = 2, n(d) = 1;
# n(a, b) = 2 (O1, O2), n(a, c) = 2 (O2, O3), n(b, c) = 1 (O2).
# O5 (refunded) and O6 (cancelled) would add a-b and a-c pairs if they counted; O8 is paid but
# before the window: it only matters as "customer 3 already bought b".
BASKETS = [
    *lines(1, 1, [("a", 1, 10), ("b", 1, 5)]),
    *lines(2, 2, [("a", 1, 10), ("b", 1, 5), ("c", 1, 20)]),
    *lines(3, 3, [("a", 1, 10), ("c", 2, 40)]),
    *lines(4, 4, [("b", 1, 5), ("b", 3, 12)]),
    *lines(5, 5, [("a", 1, 10), ("b", 1, 5)], status="refunded"),
    *lines(6, 5, [("a", 1, 10), ("c", 1, 20)], status="cancelled"),
    *lines(7, 1, [("d", 1, 8)], day="2024-04-01"),
    *lines(8, 3, [("b", 1, 5)], day="2022-01-01"),
]


def order_lines(con, rows=BASKETS):
    return make_sources(con, order_lines=rows).order_lines


def rules_by_pair(expr) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["antecedent"], r["consequent"]): r for r in to_arrow(expr).to_pylist()}


def suggested(expr) -> list[tuple[int, str, str | None, str, float, int]]:
    return [
        (r["customer_id"], r["kind"], r["sku"], r["category"], r["score"], r["rank"])
        for r in to_arrow(expr).to_pylist()
    ]


def test_rules_match_hand_computed_support_confidence_lift(duck):
    got = rules_by_pair(basket.association_rules(order_lines(duck), AS_OF, ALL_RULES))
    # (pair_count, n(A), n(B), support, confidence, lift); lift = n(A,B) * N / (n(A) * n(B)).
    expected = {
        ("a", "b"): (2, 3, 3, 2 / 5, 2 / 3, 2 * 5 / (3 * 3)),  # lift 10/9
        ("b", "a"): (2, 3, 3, 2 / 5, 2 / 3, 2 * 5 / (3 * 3)),
        ("a", "c"): (2, 3, 2, 2 / 5, 2 / 3, 2 * 5 / (3 * 2)),  # lift 5/3
        ("c", "a"): (2, 2, 3, 2 / 5, 2 / 2, 2 * 5 / (2 * 3)),  # confidence 1
        ("b", "c"): (1, 3, 2, 1 / 5, 1 / 3, 1 * 5 / (3 * 2)),  # lift 5/6 < 1
        ("c", "b"): (1, 2, 3, 1 / 5, 1 / 2, 1 * 5 / (2 * 3)),
    }
    assert set(got) == set(expected)  # d was never bought with anything in one order
    for pair, (n_ab, n_a, n_b, support, confidence, lift) in expected.items():
        rule = got[pair]
        assert (rule["pair_count"], rule["antecedent_count"], rule["consequent_count"]) == (
            n_ab,
            n_a,
            n_b,
        )
        assert rule["baskets"] == 5
        assert rule["support"] == pytest.approx(support)
        assert rule["confidence"] == pytest.approx(confidence)
        assert rule["lift"] == pytest.approx(lift)


def test_pair_counts_and_support_are_symmetric(duck):
    got = rules_by_pair(basket.association_rules(order_lines(duck), AS_OF, ALL_RULES))
    for (a, b), rule in got.items():
        mirror = got[(b, a)]
        assert rule["pair_count"] == mirror["pair_count"]
        assert rule["support"] == mirror["support"]
        assert rule["lift"] == pytest.approx(mirror["lift"])


def test_refunded_and_cancelled_orders_are_not_baskets(duck):
    # Only the refunded and cancelled orders: nothing is mined at all.
    rows = [r for r in BASKETS if r["order_id"] in (5, 6)]
    assert (
        to_arrow(basket.association_rules(order_lines(duck, rows), AS_OF, ALL_RULES)).num_rows == 0
    )
    items = to_arrow(basket.basket_items(order_lines(duck), AS_OF, ALL_RULES)).to_pylist()
    assert {r["basket_id"] for r in items} == {1, 2, 3, 4, 7}
    # Order 4 holds b on two lines: one (basket, item) pair.
    assert sum(1 for r in items if r["basket_id"] == 4) == 1


def test_thresholds_filter_rules(duck):
    ol = order_lines(duck)
    # Default thresholds: pair_count >= 2 drops b-c (count 1, and lift 5/6 < 1 as well);
    # a-b survives with lift 10/9 >= 1.
    got = rules_by_pair(basket.association_rules(ol, AS_OF, BasketSettings()))
    assert set(got) == {("a", "b"), ("b", "a"), ("a", "c"), ("c", "a")}
    # min_confidence 0.7: only c -> a (confidence 2/2) passes; a -> c has 2/3 < 0.7.
    strict = BasketSettings(min_pair_count=1, min_confidence=0.7, min_lift=0.0)
    assert set(rules_by_pair(basket.association_rules(ol, AS_OF, strict))) == {("c", "a")}
    # min_lift 1.5 keeps a-c (5/3) and drops a-b (10/9).
    lifted = BasketSettings(min_pair_count=1, min_confidence=0.0, min_lift=1.5)
    assert set(rules_by_pair(basket.association_rules(ol, AS_OF, lifted))) == {
        ("a", "c"),
        ("c", "a"),
    }


def test_category_rules_count_each_category_once_per_order(duck):
    # Category baskets: O1 {x, y}, O2 {x, y} (b and c are both y), O3 {x, y}, O4 {y}, O7 {z}.
    # N = 5, n(x) = 3, n(y) = 4, n(x, y) = 3: x -> y has confidence 3/3 = 1 and
    # lift 3 * 5 / (3 * 4) = 1.25; y -> x has confidence 3/4, the same lift.
    got = rules_by_pair(basket.association_rules(order_lines(duck), AS_OF, ALL_RULES, "category"))
    assert set(got) == {("x", "y"), ("y", "x")}
    assert got[("x", "y")]["support"] == pytest.approx(3 / 5)
    assert got[("x", "y")]["confidence"] == pytest.approx(1.0)
    assert got[("y", "x")]["confidence"] == pytest.approx(3 / 4)
    assert got[("x", "y")]["lift"] == pytest.approx(1.25)


def test_customer_mode_pairs_items_across_a_customers_orders(duck):
    # Customer baskets in the window: 1 {a, b, d} (O1 + O7), 2 {a, b, c}, 3 {a, c}, 4 {b}.
    # N = 4, n(a) = 3, n(d) = 1, n(a, d) = 1: a -> d has confidence 1/3, lift 1 * 4 / (3 * 1).
    settings = BasketSettings(mode="customer", min_pair_count=1, min_confidence=0.0, min_lift=0.0)
    got = rules_by_pair(basket.association_rules(order_lines(duck), AS_OF, settings))
    assert got[("a", "d")]["pair_count"] == 1
    assert got[("a", "d")]["baskets"] == 4
    assert got[("a", "d")]["confidence"] == pytest.approx(1 / 3)
    assert got[("a", "d")]["lift"] == pytest.approx(4 / 3)
    # a-b: customers 1 and 2; lift 2 * 4 / (3 * 3) = 8/9.
    assert got[("a", "b")]["lift"] == pytest.approx(8 / 9)


def test_cross_sell_scores_exclude_items_already_bought(duck):
    got = suggested(basket.cross_sell(order_lines(duck), AS_OF, ALL_RULES))
    # Customer 1 bought a, b, d: c via a -> c scores lift 5/3 x confidence 2/3 = 10/9, via
    # b -> c 5/6 x 1/3 = 5/18; the max is 10/9.
    # Customer 2 bought a, b, c: nothing left to suggest.
    # Customer 3 bought a, c in the window, and b in 2022: b is not suggested again.
    # Customer 4 bought b: a via b -> a = 10/9 x 2/3 = 20/27, c via b -> c = 5/18.
    assert got == [
        (1, "cross_sell", "c", "y", pytest.approx(10 / 9), 1),
        (4, "cross_sell", "a", "x", pytest.approx(20 / 27), 1),
        (4, "cross_sell", "c", "y", pytest.approx(5 / 18), 2),
    ]


def test_cross_sell_sum_score_and_top_n(duck):
    settings = BasketSettings(
        min_pair_count=1, min_confidence=0.0, min_lift=0.0, cross_sell_score="sum", top_n=1
    )
    got = suggested(basket.cross_sell(order_lines(duck), AS_OF, settings))
    # Customer 1: 10/9 + 5/18 = 25/18. Customer 4 keeps only its best (a, 20/27).
    assert got == [
        (1, "cross_sell", "c", "y", pytest.approx(25 / 18), 1),
        (4, "cross_sell", "a", "x", pytest.approx(20 / 27), 1),
    ]


def test_cross_sell_by_category(duck):
    # Only customer 4 lacks a category of a rule: it bought y (b), never x. Score of x via
    # y -> x: lift 1.25 x confidence 3/4 = 0.9375.
    got = suggested(basket.cross_sell(order_lines(duck), AS_OF, ALL_RULES, "category"))
    assert got == [(4, "cross_sell", None, "x", pytest.approx(0.9375), 1)]


# Up-sell data, category y: b is cheap, c dearer, f dearest (one buyer only).
UPSELL = [
    *lines(1, 1, [("b", 1, 5)]),
    *lines(2, 2, [("b", 1, 5), ("c", 1, 20)]),
    *lines(3, 3, [("c", 2, 40)]),
    *lines(4, 4, [("b", 1, 5), ("b", 3, 12)]),
    *lines(5, 5, [("f", 1, 50)]),
    *lines(6, 6, [("c", 1, 20)], status="refunded"),
]


def test_product_prices_are_quantity_weighted_over_paid_lines(duck):
    got = {
        r["sku"]: r
        for r in to_arrow(
            basket.product_prices(order_lines(duck, UPSELL), AS_OF, ALL_RULES)
        ).to_pylist()
    }
    # b: (5 + 5 + 5 + 12) / (1 + 1 + 1 + 3) = 27/6; c: (20 + 40) / (1 + 2), refund ignored.
    assert got["b"]["unit_price"] == pytest.approx(27 / 6)
    assert got["c"]["unit_price"] == pytest.approx(20.0)
    assert got["f"]["unit_price"] == pytest.approx(50.0)
    # 5 buying customers (6 only had a refund): c has 2 buyers, popularity 2/5.
    assert (got["c"]["buyers"], got["c"]["popularity"]) == (2, pytest.approx(0.4))


def test_up_sell_suggests_pricier_popular_products_not_bought(duck):
    ol = order_lines(duck, UPSELL)
    # Customer 1 paid 5 per unit in y: c (20, 2 buyers) qualifies, f has 1 buyer < 2.
    # Customer 2 paid (5 + 20) / 2 = 12.5: c is pricier but bought already.
    # Customer 3 paid 20: only f is pricier. Customer 4 paid 17/4 = 4.25: c.
    got = suggested(basket.up_sell(ol, AS_OF, BasketSettings()))
    assert got == [
        (1, "up_sell", "c", "y", pytest.approx(0.4), 1),
        (4, "up_sell", "c", "y", pytest.approx(0.4), 1),
    ]
    # One buyer is enough: f (popularity 1/5) follows c for customers 1 and 4, and is pricier
    # than what customers 2 (12.5) and 3 (20) paid.
    loose = suggested(basket.up_sell(ol, AS_OF, BasketSettings(up_sell_min_buyers=1)))
    assert loose == [
        (1, "up_sell", "c", "y", pytest.approx(0.4), 1),
        (1, "up_sell", "f", "y", pytest.approx(0.2), 2),
        (2, "up_sell", "f", "y", pytest.approx(0.2), 1),
        (3, "up_sell", "f", "y", pytest.approx(0.2), 1),
        (4, "up_sell", "c", "y", pytest.approx(0.4), 1),
        (4, "up_sell", "f", "y", pytest.approx(0.2), 2),
    ]


def test_up_sell_price_ratio_uses_what_the_customer_paid(duck):
    # Ratio 4.5: customer 1 (paid 5) needs more than 22.5, c at 20 fails; customer 4 (paid
    # 4.25) needs more than 19.125, c passes.
    got = suggested(
        basket.up_sell(order_lines(duck, UPSELL), AS_OF, BasketSettings(up_sell_price_ratio=4.5))
    )
    assert got == [(4, "up_sell", "c", "y", pytest.approx(0.4), 1)]


def test_suggestions_union_both_kinds(duck):
    got = suggested(basket.suggestions(order_lines(duck), AS_OF, ALL_RULES))
    # Up-sell in BASKETS: y prices b 27/6 = 4.5 (O1, O2, O4), c 60/3 = 20; customer 1 paid
    # 5 in y and customer 4 paid 4.25, both never bought c: popularity 2 buyers / 4 = 0.5.
    assert got == [
        (1, "cross_sell", "c", "y", pytest.approx(10 / 9), 1),
        (1, "up_sell", "c", "y", pytest.approx(0.5), 1),
        (4, "cross_sell", "a", "x", pytest.approx(20 / 27), 1),
        (4, "cross_sell", "c", "y", pytest.approx(5 / 18), 2),
        (4, "up_sell", "c", "y", pytest.approx(0.5), 1),
    ]


def test_settings_are_checked():
    with pytest.raises(ValueError, match="mode must be one of"):
        BasketSettings(mode="session")
    with pytest.raises(ValueError, match="min_confidence"):
        BasketSettings(min_confidence=1.5)
    with pytest.raises(ValueError, match="level must be one of"):
        basket.basket_items(None, AS_OF, BasketSettings(), level="brand")  # type: ignore[arg-type]
