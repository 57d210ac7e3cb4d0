"""The loader: parsed rows of one kind → staging table → merged into the records.

Every way in (users' files, the demo store, later the API's bulk endpoints) goes through
``Loader``: ``add`` stages parsed Arrow tables, ``check`` finds the errors that need several rows
to see (duplicate keys, an order whose lines disagree on its customer), ``merge`` upserts with
set-based SQL. Keys make re-importing the same rows change nothing. The caller runs the whole
load inside one transaction (see ``loyal.imports.services.import_file``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass, field

import pyarrow as pa
from django.db import connection
from django.utils import timezone
from django.utils.translation import gettext as _

from loyal.customers.search import search_document
from loyal.imports import kinds
from loyal.imports.staging import (
    StageColumn,
    StagingTable,
    count,
    execute,
    false,
    fetch,
    json_value,
    true,
)

# Rows a single merge error report names at most (the rest are counted).
_MAX_ROWS_NAMED = 1000


@dataclass(frozen=True)
class MergeError:
    """A rule broken by a row that is only visible next to other rows."""

    row: int
    column: str
    value: str | None
    message: str


@dataclass(frozen=True)
class LoadResult:
    kind: str
    rows: int  # staged rows
    created: int
    updated: int
    unchanged: int
    # Related records made on the way, e.g. {"customers": 12, "products": 3}.
    also_created: dict[str, int] = field(default_factory=dict)


_EXTRA_COLUMNS: dict[str, tuple[StageColumn, ...]] = {
    "customers": (StageColumn(kinds.ATTRIBUTES, "text"),),
    "events": (StageColumn("key", "text"),),
    "interactions": (StageColumn("key", "text"), StageColumn("search_document", "text")),
}
_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "customers": (("external_id",),),
    "orders": (("order_id", "line_no"), ("customer_id",), ("sku",)),
    "subscriptions": (("subscription_id",), ("customer_id",)),
    "events": (("key",), ("customer_id",)),
    "interactions": (("key",), ("customer_id",)),
    "consents": (("customer_id",),),
}


class Loader:
    """Loads rows of one kind from one source (one shop, one CRM export...)."""

    def __init__(self, kind: kinds.Kind, *, source: str, label: str = "import"):
        self.kind = kind
        self.source = source
        self.label = label  # what the stage history says changed the stage, e.g. the file name
        # As the database stores it (SQLite: UTC text like Django writes), for raw SQL parameters.
        self.now = connection.ops.adapt_datetimefield_value(timezone.now())
        self.present: set[str] = set()  # canonical columns given by at least one added table
        columns = [StageColumn(kinds.ROW_NUMBER, "integer")]
        columns += [StageColumn(c.name, _stage_type(c.type)) for c in kind.columns]
        columns += _EXTRA_COLUMNS.get(kind.name, ())
        indexes = ((kinds.ROW_NUMBER,), *_INDEXES[kind.name])
        self.stage = StagingTable("loyal_stage_{}".format(kind.name), columns, indexes)
        self.tag_stage = (
            StagingTable(
                "loyal_stage_tags",
                [StageColumn("external_id", "text"), StageColumn("tag", "text")],
                [("external_id",)],
            )
            if kind.name == "customers"
            else None
        )

    # ---- staging -------------------------------------------------------------------------------

    def add(self, table: pa.Table) -> None:
        """Stage parsed rows: canonical columns (any subset) and ``row_number``."""
        if table.num_rows == 0:
            return
        self.present.update(name for name in table.column_names if name in self.kind.column_names)
        if kinds.ATTRIBUTES in table.column_names:
            self.present.add(kinds.ATTRIBUTES)
        full = {}
        for column in self.stage.columns:
            if column.name in table.column_names:
                full[column.name] = table.column(column.name)
            else:
                full[column.name] = pa.nulls(table.num_rows, _arrow_stage_type(column.sql_type))
        staged = pa.table(full)
        if self.kind.name == "events":
            staged = staged.set_column(
                staged.schema.get_field_index("key"), "key", _keys(staged, "event_id")
            )
        elif self.kind.name == "interactions":
            staged = staged.set_column(
                staged.schema.get_field_index("key"), "key", _keys(staged, "interaction_id")
            )
            documents = [
                search_document(subject, body)
                for subject, body in zip(
                    staged.column("subject").to_pylist(),
                    staged.column("body").to_pylist(),
                    strict=True,
                )
            ]
            staged = staged.set_column(
                staged.schema.get_field_index("search_document"),
                "search_document",
                pa.array(documents),
            )
        elif self.kind.name == "customers" and "tags" in table.column_names:
            self._stage_tags(staged)
        self.stage.append(staged)

    def _stage_tags(self, staged: pa.Table) -> None:
        ids, tags = [], []
        for external_id, text in zip(
            staged.column("external_id").to_pylist(), staged.column("tags").to_pylist(), strict=True
        ):
            for tag in (
                (text or "").replace(",", ";").replace("，", ";").replace("；", ";").split(";")
            ):
                if tag.strip():
                    ids.append(external_id)
                    tags.append(tag.strip()[:100])
        self.tag_stage.append(
            pa.table(
                {"external_id": pa.array(ids, pa.string()), "tag": pa.array(tags, pa.string())}
            )
        )

    # ---- checks --------------------------------------------------------------------------------

    def check(self) -> list[MergeError]:
        """Errors that need several rows (or the records) to see, naming each offending row."""
        stage = self.stage.name
        errors: list[MergeError] = []
        if self.kind.name == "orders":
            errors += self._conflicting_order_fields()
            lines = "(SELECT row_number, order_id, {} AS line_no FROM {}) s".format(
                _line_no_sql(), stage
            )
            errors += self._duplicates(["order_id", "line_no"], "line_no", lines)
        elif self.kind.name in ("events", "interactions"):
            # Rows without an id are identified by their content: identical ones are one record.
            id_column = self.kind.key[0]
            if id_column in self.present:
                with_id = "(SELECT * FROM {} WHERE {} IS NOT NULL) s".format(stage, id_column)
                errors += self._duplicates([id_column], id_column, with_id)
        else:
            errors += self._duplicates(list(self.kind.key), self.kind.key[0], "{} s".format(stage))
        for column in ("owner", "staff"):
            if column in self.present:
                rows = fetch(
                    "SELECT s.row_number, s.{c} FROM {s} s WHERE s.{c} IS NOT NULL AND NOT EXISTS"
                    " (SELECT 1 FROM accounts_user u WHERE u.username = s.{c})"
                    " ORDER BY s.row_number LIMIT {n}".format(c=column, s=stage, n=_MAX_ROWS_NAMED)
                )
                errors += [
                    MergeError(
                        row,
                        column,
                        value,
                        _("no staff user is called {value!r}: create the user first").format(
                            value=value
                        ),
                    )
                    for row, value in rows
                ]
        if self.kind.name == "subscriptions":
            rows = fetch(
                "SELECT row_number, ended_at FROM {s} WHERE ended_at < started_at"
                " ORDER BY row_number LIMIT {n}".format(s=stage, n=_MAX_ROWS_NAMED)
            )
            errors += [
                MergeError(row, "ended_at", str(value), _("the subscription ends before it starts"))
                for row, value in rows
            ]
        return errors

    def _duplicates(self, key: list[str], column: str, source: str) -> list[MergeError]:
        """Rows whose key an earlier row of the same file already had."""
        rows = fetch(
            "SELECT row_number, first_row, {col} FROM (SELECT row_number, {col}, MIN(row_number) OVER"
            " (PARTITION BY {key}) AS first_row FROM {source}) d WHERE row_number > first_row"
            " ORDER BY row_number LIMIT {n}".format(
                col=column, key=", ".join(key), source=source, n=_MAX_ROWS_NAMED
            )
        )
        return [
            MergeError(
                row,
                column,
                None if value is None else str(value),
                _("the same {key} is already on row {first}").format(
                    key=" + ".join(key), first=first
                ),
            )
            for row, first, value in rows
        ]

    def _conflicting_order_fields(self) -> list[MergeError]:
        errors = []
        for column in ("customer_id", "ordered_at", "status", "channel"):
            if column not in self.present:
                continue
            rows = fetch(
                "SELECT s.row_number, s.{c}, f.first_row FROM {s} s JOIN (SELECT order_id, MIN(row_number) AS first_row"
                " FROM {s} GROUP BY order_id) f ON f.order_id = s.order_id JOIN {s} first"
                " ON first.row_number = f.first_row WHERE s.{c} IS DISTINCT FROM first.{c}"
                " ORDER BY s.row_number LIMIT {n}".format(
                    c=column, s=self.stage.name, n=_MAX_ROWS_NAMED
                )
            )
            errors += [
                MergeError(
                    row,
                    column,
                    None if value is None else str(value),
                    _(
                        "lines of one order must agree on {column}: row {first} has another value"
                    ).format(column=column, first=first),
                )
                for row, value, first in rows
            ]
        return errors

    def discard(self, rows: set[int]) -> None:
        """Drop staged rows (those rejected by ``check`` when invalid rows are skipped)."""
        ordered = sorted(rows)
        for start in range(0, len(ordered), 500):
            chunk = ordered[start : start + 500]
            placeholders = ", ".join("%s" for _ in chunk)
            execute(
                "DELETE FROM {} WHERE row_number IN ({})".format(self.stage.name, placeholders),
                chunk,
            )

    # ---- merge ---------------------------------------------------------------------------------

    def merge(self) -> LoadResult:
        """Upsert the staged rows into the records; returns what changed."""
        merge = getattr(self, "_merge_{}".format(self.kind.name))
        try:
            return merge()
        finally:
            self.stage.drop()
            if self.tag_stage is not None:
                self.tag_stage.drop()

    def _upsert(
        self, table: str, insert_sql: str, params: list, staged: int
    ) -> tuple[int, int, int]:
        before = count(table)
        changed = execute(insert_sql, params)
        created = count(table) - before
        updated = max(changed - created, 0)
        return created, updated, max(staged - created - updated, 0)

    def _create_missing_customers(self, column: str, stage: str, joined_sql: str) -> int:
        """Customers named in a file before their own record came: made with the least we know."""
        created = execute(
            "INSERT INTO customers_customer (source, external_id, name, stage, stage_changed_at, acquisition_source,"
            " acquisition_channel, joined_at, city, attributes, created_at, updated_at)"
            " SELECT %s, s.{c}, '', %s, {joined}, '', '', {joined}, '', {attrs}, %s, %s FROM {stage} s"
            " WHERE NOT EXISTS (SELECT 1 FROM customers_customer c WHERE c.source = %s AND c.external_id = s.{c})"
            " GROUP BY s.{c}".format(
                c=column, stage=self.stage.name, joined=joined_sql, attrs=json_value("'{}'")
            ),
            [self.source, stage, self.now, self.now, self.source],
        )
        if created:
            self._initial_stage_history()
        return created

    def _initial_stage_history(self) -> None:
        """The first step of every new customer's journey: the stage it arrived in."""
        execute(
            "INSERT INTO customers_stagechange (customer_id, changed_at, from_stage, to_stage, reason, origin)"
            " SELECT c.id, c.stage_changed_at, '', c.stage, %s, 'import' FROM customers_customer c"
            " WHERE c.source = %s AND NOT EXISTS (SELECT 1 FROM customers_stagechange h WHERE h.customer_id = c.id)",
            [self.label, self.source],
        )

    def _merge_customers(self) -> LoadResult:
        s = self.stage.name
        present = self.present
        # Stage changes of known customers go to the history before the record changes.
        if "stage" in present:
            execute(
                "INSERT INTO customers_stagechange (customer_id, changed_at, from_stage, to_stage, reason, origin)"
                " SELECT c.id, %s, c.stage, s.stage, %s, 'import' FROM {s} s JOIN customers_customer c"
                " ON c.source = %s AND c.external_id = s.external_id"
                " WHERE s.stage IS NOT NULL AND s.stage <> c.stage".format(s=s),
                [self.now, self.label, self.source],
            )
        # A column given in the file replaces the stored value (empty clears it); a column the file
        # lacks leaves it alone. Only rows that really change are written (re-imports change nothing).
        target = "customers_customer"
        new_values = {c: "COALESCE(s.{}, '')".format(c) for c in ("name", "acquisition_source", "acquisition_channel", "city")}
        new_values["joined_at"] = "COALESCE(s.joined_at, {}.joined_at)".format(target)
        new_values["birthday"] = "s.birthday"
        new_values["owner_id"] = "s.owner_user_id"
        new_values["attributes"] = json_value("COALESCE(s.attributes, '{}')")
        new_values["stage"] = "COALESCE(s.stage, {}.stage)".format(target)
        given = {"owner_id": "owner", "attributes": kinds.ATTRIBUTES}
        updates = {c: v for c, v in new_values.items() if given.get(c, c) in present}
        updated = 0
        if updates:
            assignments = ["{} = {}".format(c, v) for c, v in updates.items()]
            params: list = []
            if "stage" in updates:
                assignments.append(
                    "stage_changed_at = CASE WHEN s.stage IS NOT NULL AND s.stage <> {t}.stage THEN %s"
                    " ELSE {t}.stage_changed_at END".format(t=target)
                )
                params.append(self.now)
            assignments.append("updated_at = %s")
            params.append(self.now)
            changed = " OR ".join("{}.{} IS DISTINCT FROM {}".format(target, c, v) for c, v in updates.items())
            updated = execute(
                "UPDATE {t} SET {set} FROM (SELECT x.*, u.id AS owner_user_id FROM {s} x LEFT JOIN accounts_user u"
                " ON u.username = x.owner) s WHERE {t}.source = %s AND {t}.external_id = s.external_id"
                " AND ({changed})".format(t=target, set=", ".join(assignments), s=s, changed=changed),
                [*params, self.source],
            )
        created = execute(
            "INSERT INTO customers_customer (source, external_id, name, stage, stage_changed_at, owner_id,"
            " acquisition_source, acquisition_channel, joined_at, birthday, city, attributes, created_at, updated_at)"
            " SELECT %s, s.external_id, COALESCE(s.name, ''), COALESCE(s.stage, 'prospect'),"
            " COALESCE(s.joined_at, %s), u.id, COALESCE(s.acquisition_source, ''), COALESCE(s.acquisition_channel, ''),"
            " COALESCE(s.joined_at, %s), s.birthday, COALESCE(s.city, ''), {attrs}, %s, %s"
            " FROM {s} s LEFT JOIN accounts_user u ON u.username = s.owner WHERE NOT EXISTS"
            " (SELECT 1 FROM customers_customer c WHERE c.source = %s AND c.external_id = s.external_id)".format(
                s=s, attrs=json_value("COALESCE(s.attributes, '{}')")
            ),
            [self.source, self.now, self.now, self.now, self.now, self.source],
        )
        self._initial_stage_history()
        self._merge_contact_points()
        if "tags" in present:
            self._merge_tags()
        return LoadResult("customers", self.stage.rows, created, updated, self.stage.rows - created - updated)

    def _merge_contact_points(self) -> None:
        for kind in ("email", "phone", "wechat"):
            if kind not in self.present:
                continue
            customer = "SELECT c.id FROM customers_customer c WHERE c.source = %s AND c.external_id = s.external_id"
            # A new address becomes the primary one; the old ones stay on the record.
            execute(
                "UPDATE customers_contactpoint SET is_primary = {f} WHERE kind = %s AND is_primary = {t} AND EXISTS"
                " (SELECT 1 FROM {s} s JOIN customers_customer c ON c.source = %s AND c.external_id = s.external_id"
                " WHERE c.id = customers_contactpoint.customer_id AND s.{k} IS NOT NULL AND s.{k} <> customers_contactpoint.value)".format(
                    f=false(), t=true(), s=self.stage.name, k=kind
                ),
                [kind, self.source],
            )
            execute(
                "INSERT INTO customers_contactpoint (customer_id, kind, value, is_primary)"
                " SELECT ({customer}), %s, s.{k}, {t} FROM {s} s WHERE s.{k} IS NOT NULL"
                " ON CONFLICT (customer_id, kind, value) DO UPDATE SET is_primary = {t}".format(
                    customer=customer, s=self.stage.name, k=kind, t=true()
                ),
                [self.source, kind],
            )

    def _merge_tags(self) -> None:
        tags = self.tag_stage.name
        execute(
            "INSERT INTO customers_tag (name) SELECT DISTINCT tag FROM {t} WHERE true ON CONFLICT (name) DO NOTHING".format(
                t=tags
            )
        )
        # The file's tags replace the customer's tags.
        execute(
            "DELETE FROM customers_customer_tags WHERE customer_id IN (SELECT c.id FROM customers_customer c JOIN {s} s"
            " ON c.source = %s AND c.external_id = s.external_id) AND NOT EXISTS (SELECT 1 FROM {t} t JOIN customers_tag g"
            " ON g.name = t.tag JOIN customers_customer c ON c.source = %s AND c.external_id = t.external_id"
            " WHERE c.id = customers_customer_tags.customer_id AND g.id = customers_customer_tags.tag_id)".format(
                s=self.stage.name, t=tags
            ),
            [self.source, self.source],
        )
        execute(
            "INSERT INTO customers_customer_tags (customer_id, tag_id) SELECT DISTINCT c.id, g.id FROM {t} t"
            " JOIN customers_customer c ON c.source = %s AND c.external_id = t.external_id"
            " JOIN customers_tag g ON g.name = t.tag WHERE true ON CONFLICT (customer_id, tag_id) DO NOTHING".format(
                t=tags
            ),
            [self.source],
        )

    def _merge_orders(self) -> LoadResult:
        s = self.stage.name
        if fetch("SELECT 1 FROM {s} WHERE line_no IS NULL LIMIT 1".format(s=s)):
            execute(
                "UPDATE {s} SET line_no = x.n FROM (SELECT row_number AS r, {ln} AS n FROM {s}) x"
                " WHERE x.r = {s}.row_number AND {s}.line_no IS NULL".format(s=s, ln=_line_no_sql())
            )
        also = {}
        categories_before = count("commerce_category")
        execute(
            "INSERT INTO commerce_category (name) SELECT DISTINCT category FROM {s} WHERE category IS NOT NULL"
            " ON CONFLICT (name) DO NOTHING".format(s=s)
        )
        also["categories"] = count("commerce_category") - categories_before
        products_before = count("commerce_product")
        execute(
            "INSERT INTO commerce_product (sku, name, category_id, price, unit_cost)"
            " SELECT p.sku, COALESCE(p.name, ''), g.id, p.price, p.unit_cost FROM (SELECT sku, MAX(product_name) AS name,"
            " MAX(category) AS category, MAX(unit_price) AS price, MAX(unit_cost) AS unit_cost FROM {s} GROUP BY sku) p"
            " LEFT JOIN commerce_category g ON g.name = p.category WHERE true"
            " ON CONFLICT (sku) DO UPDATE SET name = CASE WHEN excluded.name <> '' THEN excluded.name ELSE commerce_product.name END,"
            " category_id = COALESCE(excluded.category_id, commerce_product.category_id),"
            " unit_cost = COALESCE(excluded.unit_cost, commerce_product.unit_cost)"
            " WHERE (excluded.name <> '' AND excluded.name IS DISTINCT FROM commerce_product.name)"
            " OR (excluded.category_id IS NOT NULL AND excluded.category_id IS DISTINCT FROM commerce_product.category_id)"
            " OR (excluded.unit_cost IS NOT NULL AND excluded.unit_cost IS DISTINCT FROM commerce_product.unit_cost)".format(
                s=s
            )
        )
        also["products"] = count("commerce_product") - products_before
        also["customers"] = self._create_missing_customers(
            "customer_id", "customer", "MIN(s.ordered_at)"
        )
        revenue = "SUM(COALESCE(s.quantity, 1) * s.unit_price - COALESCE(s.discount, 0))"
        cost = "SUM(COALESCE(s.quantity, 1) * COALESCE(s.unit_cost, p.unit_cost, 0))"
        compared = ["customer_id", "ordered_at", "status", "channel", "revenue", "cost"]
        order_sql = (
            "INSERT INTO commerce_order (source, external_id, customer_id, ordered_at, status, channel, revenue, cost)"
            " SELECT %s, s.order_id, c.id, MIN(s.ordered_at), COALESCE(MIN(s.status), 'paid'), COALESCE(MIN(s.channel), ''),"
            " {revenue}, {cost} FROM {s} s JOIN customers_customer c ON c.source = %s AND c.external_id = s.customer_id"
            " JOIN commerce_product p ON p.sku = s.sku GROUP BY s.order_id, c.id"
            " ON CONFLICT (source, external_id) DO UPDATE SET {set} WHERE {changed}"
        ).format(
            s=s,
            revenue=revenue,
            cost=cost,
            set=", ".join("{c} = excluded.{c}".format(c=c) for c in compared),
            changed=" OR ".join(
                "commerce_order.{c} IS DISTINCT FROM excluded.{c}".format(c=c) for c in compared
            ),
        )
        created, updated, _unchanged = self._upsert(
            "commerce_order", order_sql, [self.source, self.source], 0
        )
        line_columns = ["product_id", "quantity", "unit_price", "discount", "unit_cost"]
        lines_before = count("commerce_orderline")
        lines_changed = execute(
            "INSERT INTO commerce_orderline (order_id, line_no, product_id, quantity, unit_price, discount, unit_cost)"
            " SELECT o.id, s.line_no, p.id, COALESCE(s.quantity, 1), s.unit_price, COALESCE(s.discount, 0),"
            " COALESCE(s.unit_cost, p.unit_cost) FROM {s} s JOIN commerce_order o ON o.source = %s AND o.external_id = s.order_id"
            " JOIN commerce_product p ON p.sku = s.sku WHERE true"
            " ON CONFLICT (order_id, line_no) DO UPDATE SET {set} WHERE {changed}".format(
                s=s,
                set=", ".join("{c} = excluded.{c}".format(c=c) for c in line_columns),
                changed=" OR ".join(
                    "commerce_orderline.{c} IS DISTINCT FROM excluded.{c}".format(c=c)
                    for c in line_columns
                ),
            ),
            [self.source],
        )
        lines_created = count("commerce_orderline") - lines_before
        lines_updated = max(lines_changed - lines_created, 0)
        if updated or lines_updated:
            # An order re-imported with only some of its lines: its sums come from all its lines.
            execute(
                "UPDATE commerce_order SET revenue = t.revenue, cost = t.cost FROM (SELECT l.order_id,"
                " SUM(l.quantity * l.unit_price - l.discount) AS revenue, SUM(l.quantity * COALESCE(l.unit_cost, 0)) AS cost"
                " FROM commerce_orderline l WHERE l.order_id IN (SELECT o.id FROM commerce_order o JOIN {s} s"
                " ON o.source = %s AND o.external_id = s.order_id) GROUP BY l.order_id) t"
                " WHERE commerce_order.id = t.order_id AND (commerce_order.revenue <> t.revenue OR commerce_order.cost <> t.cost)".format(
                    s=s
                ),
                [self.source],
            )
        also["orders"] = created
        return LoadResult(
            "orders",
            self.stage.rows,
            lines_created,
            lines_updated,
            self.stage.rows - lines_created - lines_updated,
            also,
        )

    def _merge_subscriptions(self) -> LoadResult:
        s = self.stage.name
        also = {
            "customers": self._create_missing_customers(
                "customer_id", "customer", "MIN(s.started_at)"
            )
        }
        compared = [
            "customer_id",
            "plan",
            "amount",
            "period",
            "started_at",
            "ended_at",
            "cancellation_reason",
        ]
        sql = (
            "INSERT INTO commerce_subscription (source, external_id, customer_id, plan, amount, period, started_at, ended_at,"
            " cancellation_reason) SELECT %s, s.subscription_id, c.id, s.plan, s.amount, COALESCE(s.period, 'month'),"
            " s.started_at, s.ended_at, COALESCE(s.cancellation_reason, '') FROM {s} s JOIN customers_customer c"
            " ON c.source = %s AND c.external_id = s.customer_id WHERE true"
            " ON CONFLICT (source, external_id) DO UPDATE SET {set} WHERE {changed}"
        ).format(
            s=s,
            set=", ".join("{c} = excluded.{c}".format(c=c) for c in compared),
            changed=" OR ".join(
                "commerce_subscription.{c} IS DISTINCT FROM excluded.{c}".format(c=c)
                for c in compared
            ),
        )
        created, updated, unchanged = self._upsert(
            "commerce_subscription", sql, [self.source, self.source], self.stage.rows
        )
        return LoadResult("subscriptions", self.stage.rows, created, updated, unchanged, also)

    def _merge_events(self) -> LoadResult:
        s = self.stage.name
        also = {
            "customers": self._create_missing_customers(
                "customer_id", "prospect", "MIN(s.occurred_at)"
            )
        }
        # Events never change once they happened: a known key is skipped.
        sql = (
            "INSERT INTO commerce_behaviourevent (source, key, customer_id, occurred_at, session_id, event_type, page,"
            " dwell_seconds) SELECT %s, s.key, c.id, s.occurred_at, COALESCE(s.session_id, ''), COALESCE(s.event_type, 'view'),"
            " COALESCE(s.page, ''), s.dwell_seconds FROM {s} s JOIN customers_customer c ON c.source = %s"
            " AND c.external_id = s.customer_id WHERE {first} ON CONFLICT (source, key) DO NOTHING"
        ).format(s=s, first=_first_of_key(s))
        created, updated, unchanged = self._upsert(
            "commerce_behaviourevent", sql, [self.source, self.source], self.stage.rows
        )
        return LoadResult("events", self.stage.rows, created, updated, unchanged, also)

    def _merge_interactions(self) -> LoadResult:
        s = self.stage.name
        also = {
            "customers": self._create_missing_customers(
                "customer_id", "prospect", "MIN(s.occurred_at)"
            )
        }
        compared = [
            "customer_id",
            "occurred_at",
            "kind",
            "direction",
            "staff_id",
            "subject",
            "body",
            "outcome",
        ]
        sql = (
            "INSERT INTO customers_interaction (source, external_id, customer_id, occurred_at, kind, direction, staff_id,"
            " subject, body, outcome, search_document) SELECT %s, s.key, c.id, s.occurred_at, s.kind,"
            " COALESCE(s.direction, ''), u.id, COALESCE(s.subject, ''), COALESCE(s.body, ''), COALESCE(s.outcome, ''),"
            " s.search_document FROM {s} s JOIN customers_customer c ON c.source = %s AND c.external_id = s.customer_id"
            " LEFT JOIN accounts_user u ON u.username = s.staff WHERE {first}"
            " ON CONFLICT (source, external_id) DO UPDATE SET {set}, search_document = excluded.search_document"
            " WHERE {changed}"
        ).format(
            s=s,
            first=_first_of_key(s),
            set=", ".join("{c} = excluded.{c}".format(c=c) for c in compared),
            changed=" OR ".join(
                "customers_interaction.{c} IS DISTINCT FROM excluded.{c}".format(c=c)
                for c in compared
            ),
        )
        created, updated, unchanged = self._upsert(
            "customers_interaction", sql, [self.source, self.source], self.stage.rows
        )
        return LoadResult("interactions", self.stage.rows, created, updated, unchanged, also)

    def _merge_consents(self) -> LoadResult:
        s = self.stage.name
        also = {
            "customers": self._create_missing_customers(
                "customer_id", "prospect", "MIN(s.recorded_at)"
            )
        }
        sql = (
            "INSERT INTO customers_consent (customer_id, channel, opted_in, recorded_at, source)"
            " SELECT c.id, s.channel, s.opted_in, s.recorded_at, COALESCE(s.source, '') FROM {s} s"
            " JOIN customers_customer c ON c.source = %s AND c.external_id = s.customer_id WHERE true"
            " ON CONFLICT (customer_id, channel, recorded_at) DO UPDATE SET opted_in = excluded.opted_in,"
            " source = excluded.source WHERE customers_consent.opted_in IS DISTINCT FROM excluded.opted_in"
            " OR customers_consent.source IS DISTINCT FROM excluded.source"
        ).format(s=s)
        created, updated, unchanged = self._upsert(
            "customers_consent", sql, [self.source], self.stage.rows
        )
        return LoadResult("consents", self.stage.rows, created, updated, unchanged, also)


def _first_of_key(stage: str) -> str:
    """Only the first of several staged rows with the same key (identical rows without an id)."""
    return "s.row_number IN (SELECT MIN(row_number) FROM {} GROUP BY key)".format(stage)


def _line_no_sql() -> str:
    """An order line's number: as given, else its position among the order's rows in the file."""
    return "COALESCE(line_no, ROW_NUMBER() OVER (PARTITION BY order_id ORDER BY row_number))"


def _stage_type(column_type: kinds.ColumnType) -> str:
    return "text" if column_type == kinds.ColumnType.CHOICE else column_type.value


def _arrow_stage_type(sql_type: str) -> pa.DataType:
    if sql_type == "text":
        return pa.string()
    return kinds.ARROW_TYPES[kinds.ColumnType(sql_type)]


def _keys(staged: pa.Table, id_column: str) -> pa.Array:
    """The row's id when the source has one, else a digest of the row (identical rows are one)."""
    ids = staged.column(id_column).to_pylist()
    if all(value is not None for value in ids):
        return pa.array(ids, pa.string())
    names = [
        n
        for n in staged.column_names
        if n not in (kinds.ROW_NUMBER, "key", "search_document", id_column)
    ]
    columns = [staged.column(n).to_pylist() for n in names]
    keys = []
    for i, given in enumerate(ids):
        if given is not None:
            keys.append(given)
            continue
        text = "\x1f".join("" if column[i] is None else _canonical(column[i]) for column in columns)
        keys.append("#" + hashlib.blake2b(text.encode(), digest_size=12).hexdigest())
    return pa.array(keys, pa.string())


def _canonical(value: object) -> str:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).isoformat()
    return str(value)
