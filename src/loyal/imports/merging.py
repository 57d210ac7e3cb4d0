"""Merging staged rows into the records: one set-based upsert per kind.

Every statement starts from the staging table and looks records up by key, so its cost follows
the size of the file, not of the records. SQLite's planner, which has no statistics on the
low-cardinality ``source`` column, would rather scan the records; ``CROSS JOIN`` (SQLite's way to
fix the join order) keeps the staging table as the outer loop. Counts come from the staged keys
that already existed, never from counting whole tables.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loyal.imports import indexes, kinds, summaries
from loyal.imports.staging import (
    StageColumn,
    StagingTable,
    execute,
    false,
    fetch,
    json_value,
    true,
    vendor,
)

if TYPE_CHECKING:
    from loyal.imports.loading import Loader, LoadResult


def merge(loader: Loader) -> LoadResult:
    return _MERGES[loader.kind.name](loader)


def _join() -> str:
    """An inner join that keeps the left table as the outer loop."""
    return "CROSS JOIN" if vendor() == "sqlite" else "JOIN"


def _materialized() -> str:
    """Computes a WITH query on its own first: else SQLite may look its rows up from the wrong end."""
    return "MATERIALIZED " if vendor() == "sqlite" else ""


def _count(sql: str, params: list) -> int:
    return int(fetch(sql, params)[0][0])


def _changed(table: str, values: dict[str, str]) -> str:
    return " OR ".join(
        "{}.{} IS DISTINCT FROM {}".format(table, column, value) for column, value in values.items()
    )


def _insert_missing(
    table: str,
    values: dict[str, str],
    rows: str,
    stored: str | None,
    params: list,
    *,
    order_by: str = "",
) -> int:
    """Insert ``rows`` (a subquery aliased ``f``) into ``table``, each column of ``values`` set to
    its expression, skipping the rows that ``stored`` (a query on ``f``) finds already there;
    ``stored`` is None when none can be (a first import). Returns the number inserted."""
    sql = "INSERT INTO {} ({}) SELECT {} FROM {}".format(
        table, ", ".join(values), ", ".join(values.values()), rows
    )
    if stored is not None:
        sql += " WHERE NOT EXISTS ({})".format(stored)
    if order_by:
        sql += " ORDER BY " + order_by
    return execute(sql, params)


def _result(loader: Loader, created: int, changed: int, **also: int) -> LoadResult:
    from loyal.imports.loading import LoadResult

    updated = max(changed - created, 0)
    rows = loader.stage.rows
    return LoadResult(
        loader.kind.name, rows, created, updated, max(rows - created - updated, 0), also
    )


def _customers_exist(loader: Loader, column: str) -> str:
    return "EXISTS (SELECT 1 FROM customers_customer c WHERE c.source = %s AND c.external_id = s.{})".format(
        column
    )


def _distinct(loader: Loader, column: str) -> str:
    """The staged rows' distinct values of ``column``: one lookup per value, not per row."""
    return "(SELECT DISTINCT {c} FROM {s} WHERE {c} IS NOT NULL) s".format(
        c=column, s=loader.stage.name
    )


def referenced_customers(loader: Loader, time_column: str) -> str:
    """The staged rows' customer ids, each once, with the time it first appears (``joined``)."""
    return "(SELECT customer_id, MIN({t}) AS joined FROM {s} GROUP BY customer_id)".format(
        t=time_column, s=loader.stage.name
    )


def create_missing_customers(loader: Loader, stage: str, referenced: str) -> int:
    """Customers named in a file before their own record came: made with the least we know.

    ``referenced`` is a table (or subquery) of the file's ``customer_id`` values, each once, with
    the time each first appears (``joined``). The unknown ones are found once and inserted in one
    statement; each of them, and only they, gets the first step of its stage history.
    """
    new = StagingTable(
        "loyal_stage_new_customers",
        [StageColumn("customer_id", "text"), StageColumn("joined", "datetime")],
    )
    try:
        missing = execute(
            "INSERT INTO {n} (customer_id, joined) SELECT r.customer_id, r.joined FROM {r} r"
            " WHERE r.customer_id IS NOT NULL AND NOT EXISTS (SELECT 1 FROM customers_customer c"
            " WHERE c.source = %s AND c.external_id = r.customer_id)".format(
                n=new.name, r=referenced
            ),
            [loader.source],
        )
        new.seal()
        # The customers' plain indexes (on stage and owner: few values, many duplicates) cost
        # more to keep up row by row than to build again after a large load.
        with indexes.set_aside("customers_customer", missing):
            created = execute(
                "INSERT INTO customers_customer (source, external_id, name, stage, stage_changed_at,"
                " acquisition_source, acquisition_channel, joined_at, city, attributes, created_at,"
                " updated_at) SELECT %s, n.customer_id, '', %s, n.joined, '', '', n.joined, '',"
                " {attrs}, %s, %s FROM {n} n".format(n=new.name, attrs=json_value("'{}'")),
                [loader.source, stage, loader.now, loader.now],
            )
        if created:
            with indexes.set_aside("customers_stagechange", created):
                execute(
                    "INSERT INTO customers_stagechange (customer_id, changed_at, from_stage,"
                    " to_stage, reason, origin) SELECT c.id, c.stage_changed_at, '', c.stage, %s,"
                    " 'import' FROM {n} n {join} customers_customer c ON c.source = %s"
                    " AND c.external_id = n.customer_id".format(n=new.name, join=_join()),
                    [loader.label, loader.source],
                )
    finally:
        new.drop()
    return created


def initial_stage_history(loader: Loader, column: str) -> None:
    """The first step of every new customer's journey: the stage it arrived in."""
    execute(
        "INSERT INTO customers_stagechange (customer_id, changed_at, from_stage, to_stage, reason, origin)"
        " SELECT c.id, c.stage_changed_at, '', c.stage, %s, 'import' FROM {s} {join} customers_customer c"
        " ON c.source = %s AND c.external_id = s.{c}"
        " WHERE NOT EXISTS (SELECT 1 FROM customers_stagechange h WHERE h.customer_id = c.id)".format(
            s=_distinct(loader, column), join=_join(), c=column
        ),
        [loader.label, loader.source],
    )


# ---- customers ---------------------------------------------------------------------------------


def merge_customers(loader: Loader) -> LoadResult:
    s, target, present = loader.stage.name, "customers_customer", loader.present
    # Stage changes of known customers go to the history before the record changes.
    if "stage" in present:
        execute(
            "INSERT INTO customers_stagechange (customer_id, changed_at, from_stage, to_stage, reason, origin)"
            " SELECT c.id, %s, c.stage, s.stage, %s, 'import' FROM {s} s {join} customers_customer c"
            " ON c.source = %s AND c.external_id = s.external_id"
            " WHERE s.stage IS NOT NULL AND s.stage <> c.stage".format(s=s, join=_join()),
            [loader.now, loader.label, loader.source],
        )
    # A column given in the file replaces the stored value (empty clears it); a column the file
    # lacks leaves it alone. Only rows that really change are written (re-imports change nothing).
    # In the expressions, x is the staged row, u its owner, {t} the stored record.
    new_values = {
        c: "COALESCE(x.{}, '')".format(c)
        for c in ("name", "acquisition_source", "acquisition_channel", "city")
    }
    new_values["joined_at"] = "COALESCE(x.joined_at, {t}.joined_at)"
    new_values["birthday"] = "x.birthday"
    new_values["owner_id"] = "u.id"
    new_values["attributes"] = json_value("COALESCE(x.attributes, '{{}}')")
    new_values["stage"] = "COALESCE(x.stage, {t}.stage)"
    given = {"owner_id": "owner", "attributes": kinds.ATTRIBUTES}
    updates = {c: v for c, v in new_values.items() if given.get(c, c) in present}
    changed = 0
    if updates:
        columns = list(updates)
        values = [v.format(t=target) for v in updates.values()]
        params: list = []
        if "stage" in updates:
            columns.append("stage_changed_at")
            values.append(
                "CASE WHEN x.stage IS NOT NULL AND x.stage <> {t}.stage THEN %s ELSE {t}.stage_changed_at END".format(
                    t=target
                )
            )
            params.append(loader.now)
        columns.append("updated_at")
        values.append("%s")
        params.append(loader.now)
        differs = " OR ".join(
            "c.{} IS DISTINCT FROM {}".format(c, v.format(t="c")) for c, v in updates.items()
        )
        staged = "{s} x LEFT JOIN accounts_user u ON u.username = x.owner".format(s=s)
        # Matched by key from the staging side, then each record takes its staged row's values.
        changed = execute(
            "UPDATE {t} SET ({columns}) = (SELECT {values} FROM {staged} WHERE x.external_id = {t}.external_id)"
            " WHERE {t}.id IN (SELECT c.id FROM {staged} {join} customers_customer c ON c.source = %s"
            " AND c.external_id = x.external_id WHERE {differs})".format(
                t=target,
                columns=", ".join(columns),
                values=", ".join(values),
                staged=staged,
                join=_join(),
                differs=differs,
            ),
            [*params, loader.source],
        )
    created = execute(
        "INSERT INTO customers_customer (source, external_id, name, stage, stage_changed_at, owner_id,"
        " acquisition_source, acquisition_channel, joined_at, birthday, city, attributes, created_at, updated_at)"
        " SELECT %s, s.external_id, COALESCE(s.name, ''), COALESCE(s.stage, 'prospect'),"
        " COALESCE(s.joined_at, %s), u.id, COALESCE(s.acquisition_source, ''), COALESCE(s.acquisition_channel, ''),"
        " COALESCE(s.joined_at, %s), s.birthday, COALESCE(s.city, ''), {attrs}, %s, %s"
        " FROM {s} s LEFT JOIN accounts_user u ON u.username = s.owner WHERE NOT {exists}".format(
            s=s,
            attrs=json_value("COALESCE(s.attributes, '{}')"),
            exists=_customers_exist(loader, "external_id"),
        ),
        [loader.source, loader.now, loader.now, loader.now, loader.now, loader.source],
    )
    initial_stage_history(loader, "external_id")
    _merge_contact_points(loader)
    if "tags" in present:
        _merge_tags(loader)
    return _result(loader, created, created + changed)


def _merge_contact_points(loader: Loader) -> None:
    s = loader.stage.name
    for kind in ("email", "phone", "wechat"):
        if kind not in loader.present:
            continue
        # A new address becomes the primary one; the old ones stay on the record.
        execute(
            "UPDATE customers_contactpoint SET is_primary = {f} WHERE id IN (SELECT p.id FROM {s} s {join}"
            " customers_customer c ON c.source = %s AND c.external_id = s.external_id {join} customers_contactpoint p"
            " ON p.customer_id = c.id WHERE p.kind = %s AND p.is_primary = {t} AND s.{k} IS NOT NULL"
            " AND s.{k} <> p.value)".format(f=false(), t=true(), s=s, join=_join(), k=kind),
            [loader.source, kind],
        )
        execute(
            "INSERT INTO customers_contactpoint (customer_id, kind, value, is_primary)"
            " SELECT c.id, %s, s.{k}, {t} FROM {s} s {join} customers_customer c ON c.source = %s"
            " AND c.external_id = s.external_id WHERE s.{k} IS NOT NULL"
            " ON CONFLICT (customer_id, kind, value) DO UPDATE SET is_primary = {t}"
            " WHERE customers_contactpoint.is_primary <> {t}".format(
                s=s, join=_join(), k=kind, t=true()
            ),
            [kind, loader.source],
        )


def _merge_tags(loader: Loader) -> None:
    tags, s = loader.tag_stage.name, loader.stage.name
    execute(
        "INSERT INTO customers_tag (name) SELECT DISTINCT tag FROM {t} WHERE true ON CONFLICT (name) DO NOTHING".format(
            t=tags
        )
    )
    # The file's tags replace the customer's tags.
    execute(
        "DELETE FROM customers_customer_tags WHERE id IN (SELECT ct.id FROM {s} s {join} customers_customer c"
        " ON c.source = %s AND c.external_id = s.external_id {join} customers_customer_tags ct ON ct.customer_id = c.id"
        " {join} customers_tag g ON g.id = ct.tag_id WHERE NOT EXISTS (SELECT 1 FROM {t} t"
        " WHERE t.external_id = s.external_id AND t.tag = g.name))".format(
            s=s, t=tags, join=_join()
        ),
        [loader.source],
    )
    execute(
        "INSERT INTO customers_customer_tags (customer_id, tag_id) SELECT DISTINCT c.id, g.id FROM {t} t"
        " {join} customers_customer c ON c.source = %s AND c.external_id = t.external_id"
        " {join} customers_tag g ON g.name = t.tag WHERE true ON CONFLICT (customer_id, tag_id) DO NOTHING".format(
            t=tags, join=_join()
        ),
        [loader.source],
    )


# ---- orders ------------------------------------------------------------------------------------


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
        " AND c.external_id = t.customer_id) f".format(t=totals, join=_join(), cost=cost)
    )
    order_fields = ("customer_id", "ordered_at", "status", "channel", "revenue", "cost")
    # Known orders: only those that differ are written. (An upsert would lock, and so write and
    # log, every matched row even when nothing changes.)
    orders_updated = 0
    if orders_existing:
        orders_updated = execute(
            "WITH f AS {materialized}({f}) UPDATE commerce_order SET {set} FROM f"
            " WHERE commerce_order.source = %s AND commerce_order.external_id = f.order_id"
            " AND ({changed})".format(
                materialized=_materialized(),
                set=", ".join("{c} = f.{c}".format(c=c) for c in order_fields),
                f=file_orders.removesuffix(" f")[1:-1],
                changed=_changed("commerce_order", {c: "f." + c for c in order_fields}),
            ),
            [loader.source, loader.source],
        )
    # New orders go in by their id in the file, as do the lines below: each index on the order
    # id then grows at its end rather than at random places (much less to write on PostgreSQL).
    orders_created = 0
    if orders_new:
        with indexes.set_aside("commerce_order", orders_new):
            orders_created = _insert_missing(
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
        " {join} commerce_product p ON p.sku = s.sku) f".format(lines=lines, join=_join())
    )
    lines_updated = 0
    if orders_existing:
        lines_updated = execute(
            "WITH f AS {materialized}({f}) UPDATE commerce_orderline SET {set} FROM f"
            " WHERE commerce_orderline.order_id = f.order_id AND commerce_orderline.line_no = f.line_no"
            " AND ({changed})".format(
                materialized=_materialized(),
                set=", ".join("{c} = f.{c}".format(c=c) for c in line_fields),
                f=file_lines.removesuffix(" f")[1:-1],
                changed=_changed("commerce_orderline", {c: "f." + c for c in line_fields}),
            ),
            [loader.source],
        )
    # New lines: all of them on a first import, else about as many as the new orders have.
    lines_new = loader.stage.rows * orders_new // max(orders_in_file, 1)
    with indexes.set_aside("commerce_orderline", lines_new):
        lines_created = _insert_missing(
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
                s=s, join=_join()
            ),
            [loader.source],
        )
    return _result(
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


# ---- subscriptions, events, interactions, consents ---------------------------------------------


def _keyed_upsert(
    loader: Loader,
    table: str,
    key: tuple[str, str],
    columns: dict[str, str],
    select_from: str,
    params: list,
    where: str = "true",
) -> tuple[int, int]:
    """Upsert rows keyed by (source, key) into ``table``; returns (created, changed)."""
    s = loader.stage.name
    target_key, staged_key = key
    existing = _count(
        "SELECT COUNT(*) FROM {s} s WHERE {where} AND EXISTS (SELECT 1 FROM {t} r WHERE r.source = %s"
        " AND r.{tk} = s.{sk})".format(s=s, where=where, t=table, tk=target_key, sk=staged_key),
        [loader.source],
    )
    rows = _count("SELECT COUNT(*) FROM {s} s WHERE {where}".format(s=s, where=where), [])
    compared = {c: "excluded." + c for c in columns if c not in ("source", target_key)}
    changed = execute(
        "INSERT INTO {t} ({names}) SELECT {values} FROM {select_from} WHERE {where}"
        " ON CONFLICT (source, {tk}) DO UPDATE SET {set} WHERE {changed}".format(
            t=table,
            names=", ".join(columns),
            values=", ".join(columns.values()),
            select_from=select_from,
            where=where,
            tk=target_key,
            set=", ".join("{} = {}".format(c, v) for c, v in compared.items()),
            changed=_changed(table, compared),
        ),
        params,
    )
    return rows - existing, changed


def merge_subscriptions(loader: Loader) -> LoadResult:
    customers = create_missing_customers(
        loader, "customer", referenced_customers(loader, "started_at")
    )
    created, changed = _keyed_upsert(
        loader,
        "commerce_subscription",
        ("external_id", "subscription_id"),
        {
            "source": "%s",
            "external_id": "s.subscription_id",
            "customer_id": "c.id",
            "plan": "s.plan",
            "amount": "s.amount",
            "period": "COALESCE(s.period, 'month')",
            "started_at": "s.started_at",
            "ended_at": "s.ended_at",
            "cancellation_reason": "COALESCE(s.cancellation_reason, '')",
        },
        "{s} s {join} customers_customer c ON c.source = %s AND c.external_id = s.customer_id".format(
            s=loader.stage.name, join=_join()
        ),
        [loader.source, loader.source],
    )
    return _result(loader, created, changed, customers=customers)


def _first_of_key(loader: Loader) -> str:
    """Only the first of several staged rows with the same key (identical rows without an id)."""
    return "s.row_number IN (SELECT MIN(row_number) FROM {} GROUP BY key)".format(loader.stage.name)


def merge_events(loader: Loader) -> LoadResult:
    s = loader.stage.name
    customers = create_missing_customers(
        loader, "prospect", referenced_customers(loader, "occurred_at")
    )
    # Events never change once they happened: a known key is skipped.
    created = execute(
        "INSERT INTO commerce_behaviourevent (source, key, customer_id, occurred_at, session_id, event_type, page,"
        " dwell_seconds) SELECT %s, s.key, c.id, s.occurred_at, COALESCE(s.session_id, ''),"
        " COALESCE(s.event_type, 'view'), COALESCE(s.page, ''), s.dwell_seconds FROM {s} s {join} customers_customer c"
        " ON c.source = %s AND c.external_id = s.customer_id WHERE {first} ON CONFLICT (source, key) DO NOTHING".format(
            s=s, join=_join(), first=_first_of_key(loader)
        ),
        [loader.source, loader.source],
    )
    return _result(loader, created, created, customers=customers)


def merge_interactions(loader: Loader) -> LoadResult:
    customers = create_missing_customers(
        loader, "prospect", referenced_customers(loader, "occurred_at")
    )
    created, changed = _keyed_upsert(
        loader,
        "customers_interaction",
        ("external_id", "key"),
        {
            "source": "%s",
            "external_id": "s.key",
            "customer_id": "c.id",
            "occurred_at": "s.occurred_at",
            "kind": "s.kind",
            "direction": "COALESCE(s.direction, '')",
            "staff_id": "u.id",
            "subject": "COALESCE(s.subject, '')",
            "body": "COALESCE(s.body, '')",
            "outcome": "COALESCE(s.outcome, '')",
            "search_document": "s.search_document",
        },
        "{s} s {join} customers_customer c ON c.source = %s AND c.external_id = s.customer_id"
        " LEFT JOIN accounts_user u ON u.username = s.staff".format(
            s=loader.stage.name, join=_join()
        ),
        [loader.source, loader.source],
        where=_first_of_key(loader),
    )
    return _result(loader, created, changed, customers=customers)


def merge_consents(loader: Loader) -> LoadResult:
    s = loader.stage.name
    customers = create_missing_customers(
        loader, "prospect", referenced_customers(loader, "recorded_at")
    )
    existing = _count(
        "SELECT COUNT(*) FROM {s} s {join} customers_customer c ON c.source = %s AND c.external_id = s.customer_id"
        " WHERE EXISTS (SELECT 1 FROM customers_consent k WHERE k.customer_id = c.id AND k.channel = s.channel"
        " AND k.recorded_at = s.recorded_at)".format(s=s, join=_join()),
        [loader.source],
    )
    changed = execute(
        "INSERT INTO customers_consent (customer_id, channel, opted_in, recorded_at, source)"
        " SELECT c.id, s.channel, s.opted_in, s.recorded_at, COALESCE(s.source, '') FROM {s} s {join}"
        " customers_customer c ON c.source = %s AND c.external_id = s.customer_id WHERE true"
        " ON CONFLICT (customer_id, channel, recorded_at) DO UPDATE SET opted_in = excluded.opted_in,"
        " source = excluded.source WHERE customers_consent.opted_in IS DISTINCT FROM excluded.opted_in"
        " OR customers_consent.source IS DISTINCT FROM excluded.source".format(s=s, join=_join()),
        [loader.source],
    )
    return _result(loader, loader.stage.rows - existing, changed, customers=customers)


_MERGES = {
    "customers": merge_customers,
    "orders": merge_orders,
    "subscriptions": merge_subscriptions,
    "events": merge_events,
    "interactions": merge_interactions,
    "consents": merge_consents,
}
