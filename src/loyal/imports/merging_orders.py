"""Merging staged order lines into orders, order lines and products (see ``merging``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from loyal.imports import indexes, summaries
from loyal.imports.staging import execute, fetch
from loyal.imports.upserts import (
    create_missing_customers,
    insert_missing,
    load_result,
    outer_loop_join,
    update_changed,
)

if TYPE_CHECKING:
    from loyal.imports.loading import Loader, LoadResult


def merge_orders(loader: Loader) -> LoadResult:
    s = loader.stage.name
    # An order line's number: as given, else its position among the order's rows in the file.
    # Numbered while read rather than written back: an UPDATE of every staged row costs more
    # (on PostgreSQL it rewrites each row and its index entries).
    lines = s
    if fetch("SELECT 1 FROM {s} WHERE line_no IS NULL LIMIT 1".format(s=s)):
        lines = (
            "(SELECT order_id, sku, quantity, unit_price, discount, unit_cost, COALESCE(line_no,"
            " ROW_NUMBER() OVER (PARTITION BY order_id ORDER BY row_number)) AS line_no FROM {s})".format(
                s=s
            )
        )
    # Products, categories and customers come from the file's summaries: a few rows each.
    loader.summaries.stage(s)
    categories = execute(
        "INSERT INTO commerce_category (name) SELECT s.name FROM {c} s"
        " WHERE NOT EXISTS (SELECT 1 FROM commerce_category g WHERE g.name = s.name)".format(
            c=summaries.CATEGORIES
        )
    )
    products = _merge_products()
    customers = create_missing_customers(loader, "customer", summaries.CUSTOMERS)
    # Lines are summed into orders first (``Loader.order_totals``, also used by the check), so
    # each order (not each line) looks its customer up.
    totals = loader.order_totals()
    # The file's orders, and how many of them are known already.
    orders_in_file, orders_existing = fetch(
        "SELECT COUNT(*), COUNT(o.id) FROM {t} t LEFT JOIN commerce_order o ON o.source = %s"
        " AND o.external_id = t.order_id".format(t=totals),
        [loader.source],
    )[0]
    orders_new = orders_in_file - orders_existing
    # The product's cost is looked up only for the lines that have none in the file: the lines
    # of such an order are summed again, each with its own cost or its product's.
    cost = (
        "CASE WHEN t.lines_without_cost = 0 THEN t.known_cost ELSE (SELECT"
        " SUM(COALESCE(s.quantity, 1) * COALESCE(s.unit_cost, (SELECT p.unit_cost FROM"
        " commerce_product p WHERE p.sku = s.sku), 0)) FROM {s} s WHERE s.order_id = t.order_id) END"
    ).format(s=s)
    file_orders = (
        "(SELECT t.order_id, c.id AS customer_id, t.ordered_at, t.status, t.channel, t.revenue,"
        " {cost} AS cost FROM {t} t {join} customers_customer c ON c.source = %s"
        " AND c.external_id = t.customer_id) f".format(t=totals, join=outer_loop_join(), cost=cost)
    )
    order_fields = ("customer_id", "ordered_at", "status", "channel", "revenue", "cost")
    # Known orders: only those that differ are written.
    orders_updated = 0
    if orders_existing:
        orders_updated = update_changed(
            "commerce_order",
            order_fields,
            file_orders,
            "commerce_order.source = %s AND commerce_order.external_id = f.order_id",
            [loader.source, loader.source],
        )
    # New orders go in by their id in the file, as do the lines below: each index on the order
    # id then grows at its end rather than at random places (much less to write on PostgreSQL).
    orders_created = 0
    if orders_new:
        with indexes.set_aside("commerce_order", orders_new):
            orders_created = insert_missing(
                "commerce_order",
                {
                    "source": "%s",
                    "external_id": "f.order_id",
                    **{c: "f." + c for c in order_fields},
                },
                file_orders,
                "SELECT 1 FROM commerce_order o WHERE o.source = %s AND o.external_id = f.order_id"
                if orders_existing
                else None,
                [loader.source, loader.source] + ([loader.source] if orders_existing else []),
                order_by="f.order_id",
            )
    line_fields = ("product_id", "quantity", "unit_price", "discount", "unit_cost")
    file_lines = (
        "(SELECT o.id AS order_id, s.line_no, p.id AS product_id, COALESCE(s.quantity, 1) AS quantity,"
        " s.unit_price, COALESCE(s.discount, 0) AS discount, COALESCE(s.unit_cost, p.unit_cost) AS unit_cost"
        " FROM {lines} s {join} commerce_order o ON o.source = %s AND o.external_id = s.order_id"
        " {join} commerce_product p ON p.sku = s.sku) f".format(lines=lines, join=outer_loop_join())
    )
    lines_updated = 0
    if orders_existing:
        lines_updated = update_changed(
            "commerce_orderline",
            line_fields,
            file_lines,
            "commerce_orderline.order_id = f.order_id AND commerce_orderline.line_no = f.line_no",
            [loader.source],
        )
    # New lines: all of them on a first import, else about as many as the new orders have.
    lines_new = loader.stage.rows * orders_new // max(orders_in_file, 1)
    with indexes.set_aside("commerce_orderline", lines_new):
        lines_created = insert_missing(
            "commerce_orderline",
            {c: "f." + c for c in ("order_id", "line_no", *line_fields)},
            file_lines,
            "SELECT 1 FROM commerce_orderline l WHERE l.order_id = f.order_id"
            " AND l.line_no = f.line_no"
            if orders_existing
            else None,
            [loader.source],
        )
    if orders_updated or lines_updated:
        # An order re-imported with only some of its lines: its sums come from all its lines.
        execute(
            "UPDATE commerce_order SET revenue = t.revenue, cost = t.cost FROM (SELECT l.order_id,"
            " SUM(l.quantity * l.unit_price - l.discount) AS revenue, SUM(l.quantity * COALESCE(l.unit_cost, 0)) AS cost"
            " FROM (SELECT DISTINCT o.id FROM {s} s {join} commerce_order o ON o.source = %s"
            " AND o.external_id = s.order_id) touched {join} commerce_orderline l ON l.order_id = touched.id"
            " GROUP BY l.order_id) t WHERE commerce_order.id = t.order_id"
            " AND (commerce_order.revenue <> t.revenue OR commerce_order.cost <> t.cost)".format(
                s=s, join=outer_loop_join()
            ),
            [loader.source],
        )
    return load_result(
        loader,
        lines_created,
        lines_created + lines_updated,
        categories=categories,
        products=products,
        customers=customers,
        orders=orders_created,
    )


def _merge_products() -> int:
    # The file's products, and how many of them are known already.
    skus, existing = fetch(
        "SELECT COUNT(*), COUNT(p.id) FROM {s} s LEFT JOIN commerce_product p ON p.sku = s.sku".format(
            s=summaries.PRODUCTS
        )
    )[0]
    execute(
        "INSERT INTO commerce_product (sku, name, category_id, price, unit_cost)"
        " SELECT p.sku, COALESCE(p.name, ''), g.id, p.price, p.unit_cost FROM {s} p"
        " LEFT JOIN commerce_category g ON g.name = p.category WHERE true"
        " ON CONFLICT (sku) DO UPDATE SET name = CASE WHEN excluded.name <> '' THEN excluded.name"
        " ELSE commerce_product.name END, category_id = COALESCE(excluded.category_id, commerce_product.category_id),"
        " unit_cost = COALESCE(excluded.unit_cost, commerce_product.unit_cost)"
        " WHERE (excluded.name <> '' AND excluded.name IS DISTINCT FROM commerce_product.name)"
        " OR (excluded.category_id IS NOT NULL AND excluded.category_id IS DISTINCT FROM commerce_product.category_id)"
        " OR (excluded.unit_cost IS NOT NULL AND excluded.unit_cost IS DISTINCT FROM commerce_product.unit_cost)".format(
            s=summaries.PRODUCTS
        )
    )
    return skus - existing
