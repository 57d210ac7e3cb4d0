"""Basket analysis (R18) and follow-up sales suggestions (R19): what is bought together.

Baskets
-------
The lines mined are the paid order lines (``status = 'paid'``; refunded and cancelled orders are
ignored) placed in [as_of - ``lookback_days``, as_of). An *item* is a product (``sku``) or a
``category``; lines without one are skipped. A *basket* is, by ``mode``:

- ``"order"``: one paid order (items bought in the same order);
- ``"customer"``: everything one customer bought in the window (items bought by the same
  customer, not necessarily at once: "customers who bought A also bought B").

Each basket counts an item once however many lines or units hold it (distinct (basket, item)
pairs come first), so the counts below are numbers of baskets.

Association rules
-----------------
With N baskets, n(A) baskets holding item A and n(A, B) baskets holding both A and B (A != B),
the rule A -> B has

- pair_count = n(A, B) (symmetric: n(A, B) = n(B, A));
- support = n(A, B) / N, the share of baskets holding both;
- confidence = n(A, B) / n(A) = P(B | A);
- lift = confidence / support(B) = n(A, B) · N / (n(A) · n(B)); above 1 means A and B are
  bought together more often than if they were independent.

Rules are kept when pair_count >= ``min_pair_count``, confidence >= ``min_confidence`` and
lift >= ``min_lift`` (all bounds inclusive). Both directions of a pair are listed; a pair can
pass in one direction only, since the confidences differ.

Suggestions
-----------
*Cross-sell* (per customer, at the rules' level): the consequents B of the rules whose
antecedent A the customer bought in the window, excluding every item the customer ever bought
(any paid line before ``as_of``). score(B) = max (or sum, ``cross_sell_score``) over those A of
lift(A -> B) × confidence(A -> B).

*Up-sell* (always products): the unit price of a product is revenue / quantity over its paid
lines in the window (lines with quantity > 0); the customer's price in a category is the same
ratio over their own lines in it. A product is suggested when its category is one the customer
bought in the window, its price is above ``up_sell_price_ratio`` × the customer's price there,
it has at least ``up_sell_min_buyers`` buyers, and the customer never bought it.
score = popularity = the product's buyers / all customers with a paid line in the window.

Each kind keeps the customer's ``top_n`` best (score descending, ties by sku or category), rank 1
first. The result has one schema for both kinds: customer_id, kind (cross_sell | up_sell), sku
(null for category suggestions), category, score, rank.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Literal

import ibis
import ibis.expr.types as ir

from loyal.engine.common import lookback_start, ratio, utc

Level = Literal["sku", "category"]
LEVELS: tuple[str, ...] = ("sku", "category")
MODES: tuple[str, ...] = ("order", "customer")
SCORES: tuple[str, ...] = ("max", "sum")
SUGGESTION_KINDS: tuple[str, ...] = ("cross_sell", "up_sell")


@dataclass(frozen=True)
class BasketSettings:
    """Thresholds of the basket analysis and the suggestions (see the module docstring)."""

    # "order": co-occurrence in one paid order; "customer": in one customer's purchases.
    mode: str = "order"
    # Paid lines in [as_of - lookback_days, as_of) are mined (None: the whole history).
    lookback_days: int | None = 365
    # A rule needs at least this many baskets holding both items: fewer is chance.
    min_pair_count: int = 2
    min_confidence: float = 0.1
    # 1.0 drops pairs bought together less often than independence predicts.
    min_lift: float = 1.0
    # Suggestions kept per customer and kind.
    top_n: int = 5
    # How a cross-sell candidate's rule scores combine over the customer's items.
    cross_sell_score: str = "max"
    # An up-sell product costs more than this multiple of what the customer paid per unit.
    up_sell_price_ratio: float = 1.0
    up_sell_min_buyers: int = 2

    def __post_init__(self) -> None:
        problems: list[str] = []
        if self.mode not in MODES:
            problems.append(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.lookback_days is not None and self.lookback_days <= 0:
            problems.append(f"lookback_days must be positive or None, got {self.lookback_days!r}")
        if self.min_pair_count < 1:
            problems.append(f"min_pair_count must be >= 1, got {self.min_pair_count!r}")
        if not 0 <= self.min_confidence <= 1:
            problems.append(f"min_confidence must be in [0, 1], got {self.min_confidence!r}")
        if self.min_lift < 0:
            problems.append(f"min_lift must be >= 0, got {self.min_lift!r}")
        if self.top_n < 1:
            problems.append(f"top_n must be >= 1, got {self.top_n!r}")
        if self.cross_sell_score not in SCORES:
            problems.append(
                f"cross_sell_score must be one of {SCORES}, got {self.cross_sell_score!r}"
            )
        if self.up_sell_price_ratio <= 0:
            problems.append(
                f"up_sell_price_ratio must be positive, got {self.up_sell_price_ratio!r}"
            )
        if self.up_sell_min_buyers < 1:
            problems.append(f"up_sell_min_buyers must be >= 1, got {self.up_sell_min_buyers!r}")
        if problems:
            raise ValueError("invalid BasketSettings: " + "; ".join(problems))


def _check_level(level: str) -> None:
    if level not in LEVELS:
        raise ValueError(f"level must be one of {LEVELS}, got {level!r}")


def paid_lines(
    order_lines: ir.Table, as_of: dt.datetime, lookback_days: int | None = None
) -> ir.Table:
    """Paid order lines placed in [as_of - lookback_days, as_of) (None: since the beginning)."""
    as_of = utc(as_of)
    cond = (order_lines.status == "paid") & (order_lines.ordered_at < as_of)
    since = lookback_start(as_of, lookback_days)
    if since is not None:
        cond = cond & (order_lines.ordered_at >= since)
    return order_lines.filter(cond)


def basket_items(
    order_lines: ir.Table, as_of: dt.datetime, settings: BasketSettings, level: str = "sku"
) -> ir.Table:
    """Distinct (basket_id, item) of the mined lines: basket_id is the order_id or the
    customer_id by ``settings.mode``, item the sku or category by ``level``."""
    _check_level(level)
    lines = paid_lines(order_lines, as_of, settings.lookback_days)
    key = "order_id" if settings.mode == "order" else "customer_id"
    lines = lines.filter(lines[level].notnull() & lines[key].notnull())
    return lines.select(basket_id=lines[key], item=lines[level]).distinct()


def association_rules(
    order_lines: ir.Table, as_of: dt.datetime, settings: BasketSettings, level: str = "sku"
) -> ir.Table:
    """Association rules A -> B between items bought together (see the module docstring).

    Columns: antecedent, consequent, pair_count, antecedent_count, consequent_count, baskets,
    support, confidence, lift.
    """
    items = basket_items(order_lines, as_of, settings, level)
    # The self-join makes each unordered pair once (a < b), halving the biggest intermediate
    # result; the threshold on the symmetric count applies before the pair is mirrored.
    left = items.select(l_basket="basket_id", a="item")
    right = items.select(r_basket="basket_id", b="item")
    joined = left.join(right, [left.l_basket == right.r_basket, left.a < right.b])
    pairs = joined.group_by(["a", "b"]).aggregate(pair_count=joined.count())
    pairs = pairs.filter(pairs.pair_count >= settings.min_pair_count)
    directed = pairs.select(antecedent=pairs.a, consequent=pairs.b, pair_count=pairs.pair_count)
    mirrored = pairs.select(antecedent=pairs.b, consequent=pairs.a, pair_count=pairs.pair_count)
    rules = directed.union(mirrored, distinct=False)

    counts = items.group_by("item").aggregate(n=items.count())
    total = items.aggregate(baskets=items.basket_id.nunique())
    ante = counts.select(a_item="item", antecedent_count="n")
    cons = counts.select(c_item="item", consequent_count="n")
    t = rules.join(ante, rules.antecedent == ante.a_item).drop("a_item")
    t = t.join(cons, t.consequent == cons.c_item).drop("c_item")
    t = t.cross_join(total)
    t = t.select(
        "antecedent",
        "consequent",
        pair_count=t.pair_count.cast("int64"),
        antecedent_count=t.antecedent_count.cast("int64"),
        consequent_count=t.consequent_count.cast("int64"),
        baskets=t.baskets.cast("int64"),
    )
    # Integer products before the one division: the lift is the correctly rounded ratio, the
    # same on every backend, and exact thresholds such as 0.3 compare as written.
    t = t.mutate(
        support=ratio(t.pair_count, t.baskets),
        confidence=ratio(t.pair_count, t.antecedent_count),
        lift=ratio(t.pair_count * t.baskets, t.antecedent_count * t.consequent_count),
    )
    return t.filter(
        (t.confidence >= settings.min_confidence) & (t.lift >= settings.min_lift)
    ).order_by([ibis.desc("lift"), ibis.desc("confidence"), "antecedent", "consequent"])


def _product_categories(lines: ir.Table) -> ir.Table:
    # A sku normally has one category; should the lines disagree, the greatest is taken so
    # the answer does not depend on row order.
    known = lines.filter(lines.sku.notnull())
    return known.group_by("sku").aggregate(category=known.category.max())


def _top(candidates: ir.Table, kind: str, tie: str, top_n: int) -> ir.Table:
    """Rank candidates (customer_id, sku, category, score) per customer; keep the top n."""
    w = ibis.window(group_by="customer_id", order_by=[ibis.desc("score"), tie])
    ranked = candidates.mutate(rank=(ibis.row_number().over(w) + 1).cast("int64"))
    ranked = ranked.filter(ranked["rank"] <= top_n)
    return ranked.select(
        "customer_id",
        kind=ibis.literal(kind),
        sku=ranked.sku.cast("string"),
        category=ranked.category.cast("string"),
        score=ranked.score.cast("float64"),
        rank=ranked["rank"],
    ).order_by(["customer_id", "rank"])


def cross_sell(
    order_lines: ir.Table,
    as_of: dt.datetime,
    settings: BasketSettings,
    level: str = "sku",
    rules: ir.Table | None = None,
) -> ir.Table:
    """Per customer, the top items associated with what they bought that they never bought.

    ``rules`` defaults to ``association_rules(order_lines, as_of, settings, level)``. Columns:
    customer_id, kind ('cross_sell'), sku (null at category level), category, score, rank.
    """
    _check_level(level)
    if rules is None:
        rules = association_rules(order_lines, as_of, settings, level)
    window = paid_lines(order_lines, as_of, settings.lookback_days)
    window = window.filter(window[level].notnull())
    bought = window.select("customer_id", item=window[level]).distinct()
    ever = paid_lines(order_lines, as_of)
    ever = ever.filter(ever[level].notnull())
    ever = ever.select(e_id="customer_id", e_item=ever[level]).distinct()

    r = rules.select("antecedent", "consequent", s=rules.lift * rules.confidence)
    t = bought.join(r, bought.item == r.antecedent)
    t = t.anti_join(ever, [t.customer_id == ever.e_id, t.consequent == ever.e_item])
    combine = t.s.max() if settings.cross_sell_score == "max" else t.s.sum()
    scored = t.group_by(["customer_id", "consequent"]).aggregate(score=combine)
    if level == "sku":
        cats = _product_categories(paid_lines(order_lines, as_of)).rename(p_sku="sku")
        scored = scored.left_join(cats, scored.consequent == cats.p_sku).drop("p_sku")
        scored = scored.select("customer_id", "category", "score", sku=scored.consequent)
        return _top(scored, "cross_sell", "sku", settings.top_n)
    scored = scored.select(
        "customer_id", "score", sku=ibis.null("string"), category=scored.consequent
    )
    return _top(scored, "cross_sell", "category", settings.top_n)


def product_prices(order_lines: ir.Table, as_of: dt.datetime, settings: BasketSettings) -> ir.Table:
    """Per product with paid lines in the window: sku, category, unit_price (revenue / quantity
    over lines with quantity > 0), buyers (distinct customers), popularity (buyers / all
    customers with a paid line in the window)."""
    lines = paid_lines(order_lines, as_of, settings.lookback_days)
    priced = lines.filter(lines.sku.notnull() & (lines.quantity > 0) & lines.revenue.notnull())
    per = priced.group_by("sku").aggregate(
        revenue=priced.revenue.sum(),
        quantity=priced.quantity.sum(),
        buyers=priced.customer_id.nunique(),
    )
    total = lines.aggregate(customers=lines.customer_id.nunique())
    cats = _product_categories(lines).rename(c_sku="sku")
    t = per.join(cats, per.sku == cats.c_sku).drop("c_sku").cross_join(total)
    return t.select(
        "sku",
        "category",
        unit_price=ratio(t.revenue, t.quantity),
        buyers=t.buyers.cast("int64"),
        popularity=ratio(t.buyers, t.customers),
    )


def up_sell(order_lines: ir.Table, as_of: dt.datetime, settings: BasketSettings) -> ir.Table:
    """Per customer, the most popular pricier products in the categories they buy.

    Columns: customer_id, kind ('up_sell'), sku, category, score (popularity), rank.
    """
    lines = paid_lines(order_lines, as_of, settings.lookback_days)
    own = lines.filter(lines.category.notnull() & (lines.quantity > 0) & lines.revenue.notnull())
    paid = own.group_by(["customer_id", "category"]).aggregate(
        revenue=own.revenue.sum(), quantity=own.quantity.sum()
    )
    paid = paid.select(
        "customer_id", p_category="category", paid_price=ratio(paid.revenue, paid.quantity)
    )
    products = product_prices(order_lines, as_of, settings)
    products = products.filter(products.buyers >= settings.up_sell_min_buyers)
    t = paid.join(
        products,
        [
            paid.p_category == products.category,
            products.unit_price > paid.paid_price * settings.up_sell_price_ratio,
        ],
    )
    ever = paid_lines(order_lines, as_of)
    ever = ever.filter(ever.sku.notnull()).select(e_id="customer_id", e_sku="sku").distinct()
    t = t.anti_join(ever, [t.customer_id == ever.e_id, t.sku == ever.e_sku])
    t = t.select("customer_id", "sku", "category", score=t.popularity)
    return _top(t, "up_sell", "sku", settings.top_n)


def suggestions(
    order_lines: ir.Table,
    as_of: dt.datetime,
    settings: BasketSettings | None = None,
    level: str = "sku",
) -> ir.Table:
    """Cross-sell (at ``level``) and up-sell suggestions for every customer, one table.

    Columns: customer_id, kind (cross_sell | up_sell), sku, category, score, rank.
    """
    settings = settings or BasketSettings()
    cross = cross_sell(order_lines, as_of, settings, level)
    up = up_sell(order_lines, as_of, settings)
    return cross.union(up, distinct=False).order_by(["customer_id", "kind", "rank"])
