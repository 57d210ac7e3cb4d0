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
from loyal.imports import kinds, merging
from loyal.imports.staging import (
    StageColumn,
    StagingTable,
    count,
    execute,
    false,
    fetch,
    tune_for_bulk_load,
    without_hash_aggregation,
)
from loyal.imports.summaries import OrderSummaries

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
_ORDER_TOTALS = (
    StageColumn("order_id", "text"),
    StageColumn("customer_id", "text"),
    StageColumn("ordered_at", "datetime"),
    StageColumn("status", "text"),
    StageColumn("channel", "text"),
    StageColumn("revenue", "decimal"),
    StageColumn("known_cost", "decimal"),
    StageColumn("lines_without_cost", "integer"),
    StageColumn("disagrees", "boolean"),
)
_INDEXES: dict[str, tuple[tuple[str, ...], ...]] = {
    "customers": (("external_id",),),
    "orders": (("order_id", "row_number"),),
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
        # As the database stores it (SQLite: UTC text like Django writes), for raw SQL parameters;
        # whole seconds, which every export format (Excel included) keeps exactly.
        self.now = connection.ops.adapt_datetimefield_value(timezone.now().replace(microsecond=0))
        self.present: set[str] = set()  # canonical columns given by at least one added table
        tune_for_bulk_load()
        columns = [StageColumn(kinds.ROW_NUMBER, "integer")]
        columns += [StageColumn(c.name, _stage_type(c.type)) for c in kind.columns]
        columns += _EXTRA_COLUMNS.get(kind.name, ())
        # No index on row_number alone: only ``discard`` looks rows up by it, and builds one.
        self.stage = StagingTable(
            "loyal_stage_{}".format(kind.name), columns, _INDEXES[kind.name], bulk=True
        )
        self.tag_stage = (
            StagingTable(
                "loyal_stage_tags",
                [StageColumn("external_id", "text"), StageColumn("tag", "text")],
                [("external_id",)],
            )
            if kind.name == "customers"
            else None
        )
        self.summaries = OrderSummaries() if kind.name == "orders" else None
        self._order_totals: StagingTable | None = None

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
        elif self.summaries is not None:
            self.summaries.add(staged)
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
        self.stage.seal()
        if self.tag_stage is not None:
            self.tag_stage.seal()
        stage = self.stage.name
        errors: list[MergeError] = []
        if self.kind.name == "orders":
            errors += self._conflicting_order_fields(self.order_totals())
            # Without line numbers in the file, each line takes its position: none can repeat.
            if "line_no" in self.present:
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

    def order_totals(self) -> str:
        """The staged lines summed into orders, one grouped pass for the check and the merge.

        Per order: its fields (the lines agree on them, see ``_conflicting_order_fields``, so MIN
        picks them), its revenue, the cost of its lines that give one and how many do not (those
        take the product's cost, known only once products are merged: see ``merge_orders``), and
        whether its lines disagree (several values, or values and blanks). Built again after
        ``discard``. Returns the table's name.
        """
        if self._order_totals is not None:
            return self._order_totals.name
        self.stage.seal()
        columns = self._order_level_columns()
        disagrees = " OR ".join(
            "MIN({c}) <> MAX({c}) OR COUNT({c}) NOT IN (0, COUNT(*))".format(c=c) for c in columns
        )
        totals = StagingTable("loyal_stage_order_totals", _ORDER_TOTALS)
        # Grouped along the staging index on (order_id, row_number): PostgreSQL would rather
        # hash a million lines, which takes twice as long and half a GiB of memory.
        with without_hash_aggregation():
            execute(
                "INSERT INTO {t} (order_id, customer_id, ordered_at, status, channel, revenue,"
                " known_cost, lines_without_cost, disagrees) SELECT order_id, MIN(customer_id),"
                " MIN(ordered_at), COALESCE(MIN(status), 'paid'), COALESCE(MIN(channel), ''),"
                " SUM(COALESCE(quantity, 1) * unit_price - COALESCE(discount, 0)),"
                " SUM(COALESCE(quantity, 1) * unit_cost), COUNT(*) - COUNT(unit_cost), {disagrees}"
                " FROM {s} WHERE order_id IS NOT NULL GROUP BY order_id".format(
                    t=totals.name, s=self.stage.name, disagrees=disagrees or false()
                )
            )
        totals.rows = count(totals.name)
        totals.seal()
        self._order_totals = totals
        return totals.name

    def _order_level_columns(self) -> list[str]:
        """The order-level fields the file has: every line of an order must agree on them."""
        return [c for c in ("customer_id", "ordered_at", "status", "channel") if c in self.present]

    def _conflicting_order_fields(self, totals: str) -> list[MergeError]:
        """Lines of one order that disagree with its first line on an order-level field."""
        columns = self._order_level_columns()
        # Most files have no such line: the order totals say whether any order has one before
        # they are looked for.
        if not columns or not fetch("SELECT 1 FROM {} WHERE disagrees LIMIT 1".format(totals)):
            return []
        # One ordered pass: each line beside the first line of its order, every field at once.
        firsts = ", ".join("FIRST_VALUE({c}) OVER w AS first_{c}".format(c=c) for c in columns)
        differs = " OR ".join("{c} IS DISTINCT FROM first_{c}".format(c=c) for c in columns)
        rows = fetch(
            "SELECT row_number, first_row, {columns}, {first_columns} FROM (SELECT row_number, {columns},"
            " FIRST_VALUE(row_number) OVER w AS first_row, {firsts} FROM {s}"
            " WINDOW w AS (PARTITION BY order_id ORDER BY row_number)) d WHERE {differs}"
            " ORDER BY row_number LIMIT {n}".format(
                columns=", ".join(columns),
                first_columns=", ".join("first_" + c for c in columns),
                firsts=firsts,
                s=self.stage.name,
                differs=differs,
                n=_MAX_ROWS_NAMED,
            )
        )
        errors = []
        for row, first, *values in rows:
            mine, theirs = values[: len(columns)], values[len(columns) :]
            for column, value, first_value in zip(columns, mine, theirs, strict=True):
                if value != first_value:
                    errors.append(
                        MergeError(
                            row,
                            column,
                            None if value is None else str(value),
                            _(
                                "lines of one order must agree on {column}: row {first} has another value"
                            ).format(column=column, first=first),
                        )
                    )
        return errors

    def discard(self, rows: set[int]) -> None:
        """Drop staged rows (those rejected by ``check`` when invalid rows are skipped)."""
        if self.summaries is not None:
            self.summaries.stale = True
        if self._order_totals is not None:
            self._order_totals.drop()
            self._order_totals = None
        self.stage.add_index((kinds.ROW_NUMBER,))
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
        """Upsert the staged rows into the records (see ``merging``); returns what changed."""
        self.stage.seal()
        if self.tag_stage is not None:
            self.tag_stage.seal()
        try:
            return merging.merge(self)
        finally:
            self.stage.drop()
            if self.tag_stage is not None:
                self.tag_stage.drop()
            if self.summaries is not None:
                self.summaries.drop()
            if self._order_totals is not None:
                self._order_totals.drop()
                self._order_totals = None


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
