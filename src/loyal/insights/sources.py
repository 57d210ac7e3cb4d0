"""The records as Arrow with the engine's schemas (``loyal.engine.sources.SCHEMAS``).

Reads go through ADBC (no row-by-row Python): the SQLite file or the PostgreSQL database that
Django uses, on a connection of their own. ``snapshot_records`` streams each table to a Parquet
file batch by batch, so memory stays flat however many events there are; DuckDB (or Spark) then
computes over the files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from django.conf import settings

from loyal.engine.sources import SCHEMAS

_MONTHS_PER_PERIOD = "CASE period WHEN 'year' THEN 12 WHEN 'quarter' THEN 3 ELSE 1 END"

# Per table: (FROM clause, [(column, SQL expression)]), the columns in the engine schema's order.
_QUERIES: dict[str, tuple[str, list[tuple[str, str]]]] = {
    "customers": (
        "customers_customer",
        [
            ("customer_id", "id"),
            ("external_id", "external_id"),
            ("name", "name"),
            ("stage", "stage"),
            ("joined_at", "joined_at"),
            ("acquisition_source", "acquisition_source"),
            ("acquisition_channel", "acquisition_channel"),
            ("city", "city"),
            ("birthday", "birthday"),
            ("owner_id", "owner_id"),
        ],
    ),
    "orders": (
        "commerce_order",
        [
            ("order_id", "id"),
            ("customer_id", "customer_id"),
            ("ordered_at", "ordered_at"),
            ("status", "status"),
            ("channel", "channel"),
            ("revenue", "revenue"),
            ("cost", "cost"),
        ],
    ),
    "order_lines": (
        "commerce_orderline l JOIN commerce_order o ON o.id = l.order_id"
        " JOIN commerce_product p ON p.id = l.product_id LEFT JOIN commerce_category g ON g.id = p.category_id",
        [
            ("order_id", "l.order_id"),
            ("customer_id", "o.customer_id"),
            ("ordered_at", "o.ordered_at"),
            ("status", "o.status"),
            ("product_id", "l.product_id"),
            ("sku", "p.sku"),
            ("category", "g.name"),
            ("quantity", "l.quantity"),
            ("revenue", "l.quantity * l.unit_price - l.discount"),
            ("cost", "l.quantity * COALESCE(l.unit_cost, 0)"),
        ],
    ),
    "subscriptions": (
        "commerce_subscription",
        [
            ("subscription_id", "id"),
            ("customer_id", "customer_id"),
            ("plan", "plan"),
            ("amount", "amount"),
            ("period", "period"),
            ("monthly_amount", "amount / " + _MONTHS_PER_PERIOD),
            ("started_at", "started_at"),
            ("ended_at", "ended_at"),
            ("cancellation_reason", "cancellation_reason"),
        ],
    ),
    "events": (
        "commerce_behaviourevent",
        [
            ("customer_id", "customer_id"),
            ("occurred_at", "occurred_at"),
            ("session_id", "session_id"),
            ("event_type", "event_type"),
            ("page", "page"),
            ("dwell_seconds", "dwell_seconds"),
        ],
    ),
    "interactions": (
        "customers_interaction",
        [
            ("interaction_id", "id"),
            ("customer_id", "customer_id"),
            ("occurred_at", "occurred_at"),
            ("kind", "kind"),
            ("direction", "direction"),
            ("outcome", "outcome"),
        ],
    ),
}


# Rows per Parquet row group. The ADBC drivers hand over small batches (SQLite's 1,024 rows by
# default): written as they come, the files would hold thousands of tiny row groups, slow to write
# and to scan. 131,072 rows is a row group of DuckDB's own size, and a few tens of MB in memory.
ROW_GROUP_ROWS = 131_072


def _row_groups(tables: Iterable[pa.Table], rows: int) -> Iterator[pa.Table]:
    """The rows of ``tables`` (all of one schema) regrouped into tables of ``rows`` rows, the
    last one shorter."""
    pending: list[pa.Table] = []
    pending_rows = 0
    for table in tables:
        pending.append(table)
        pending_rows += table.num_rows
        if pending_rows >= rows:
            whole = pa.concat_tables(pending)
            for start in range(0, whole.num_rows - rows + 1, rows):
                yield whole.slice(start, rows)
            rest = whole.slice(whole.num_rows - whole.num_rows % rows)
            pending, pending_rows = [rest], rest.num_rows
    if pending_rows:
        yield pa.concat_tables(pending)


def snapshot_records(
    directory: Path, on_table: Callable[[str], None] | None = None
) -> dict[str, str]:
    """Stream every engine table to ``directory/NAME.parquet``; returns the paths by name."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    with _connect() as (connection, build):
        cursor = connection.cursor()
        for name, schema in SCHEMAS.items():
            path = directory / "{}.parquet".format(name)
            cursor.execute(build(name))
            reader = cursor.fetch_record_batch()
            with pq.ParquetWriter(path, schema, compression="zstd") as writer:
                # Each batch is conformed on its own: SQLite's batches may guess different types.
                tables = (_conform(pa.Table.from_batches([batch]), schema) for batch in reader)
                for group in _row_groups(tables, ROW_GROUP_ROWS):
                    writer.write_table(group, row_group_size=ROW_GROUP_ROWS)
            paths[name] = str(path)
            if on_table is not None:
                on_table(name)
        cursor.close()
    return paths


@contextmanager
def _connect() -> Iterator[tuple[Any, Callable[[str], str]]]:
    """An ADBC connection to Django's database, and the query builder for its dialect."""
    database = settings.DATABASES["default"]
    if database["ENGINE"] == "django.db.backends.sqlite3":
        import adbc_driver_sqlite.dbapi as adbc

        connection = adbc.connect(str(database["NAME"]))
        build = _sqlite_query
    elif database["ENGINE"] == "django.db.backends.postgresql":
        import adbc_driver_postgresql.dbapi as adbc

        connection = adbc.connect(_postgres_uri(database))
        build = _postgres_query
    else:
        raise RuntimeError(
            "Loyal reads records from SQLite or PostgreSQL, not {}.".format(database["ENGINE"])
        )
    try:
        yield connection, build
    finally:
        connection.close()


def _select_list(name: str, cast: Callable[[str, pa.DataType], str]) -> str:
    schema = SCHEMAS[name]
    return ", ".join(
        "{} AS {}".format(cast(expression, schema.field(column).type), column)
        for column, expression in _QUERIES[name][1]
    )


def _postgres_query(name: str) -> str:
    def cast(expression: str, type_: pa.DataType) -> str:
        # ADBC gives PostgreSQL numerics as text; the engine wants float64.
        return (
            "CAST({} AS double precision)".format(expression)
            if pa.types.is_floating(type_)
            else expression
        )

    return "SELECT {} FROM {}".format(_select_list(name, cast), _QUERIES[name][0])


def _sqlite_query(name: str) -> str:
    """SQLite has no column types: ADBC guesses them from the first rows, and a column that starts
    with NULLs is guessed wrong. A typed first row (a sentinel, dropped afterwards) fixes the guess."""
    schema = SCHEMAS[name]

    def cast(expression: str, type_: pa.DataType) -> str:
        if pa.types.is_floating(type_):
            return "CAST({} AS REAL)".format(expression)
        return expression

    def placeholder(type_: pa.DataType) -> str:
        if pa.types.is_floating(type_):
            return "0.0"
        if pa.types.is_integer(type_):
            return "0"
        return "''"

    sentinel = ", ".join(
        "{} AS {}".format(placeholder(schema.field(column).type), column)
        for column, _ in _QUERIES[name][1]
    )
    return "SELECT 1 AS loyal_sentinel, {} UNION ALL SELECT 0, {} FROM {}".format(
        sentinel, _select_list(name, cast), _QUERIES[name][0]
    )


def _conform(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Drop the sentinel, turn SQLite's text dates into timestamps, and '' into null."""
    if "loyal_sentinel" in table.column_names:
        table = table.filter(pc.equal(table.column("loyal_sentinel"), 0)).drop_columns(
            ["loyal_sentinel"]
        )
    columns = []
    for field in schema:
        column = table.column(field.name)
        if pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
            column = pc.if_else(pc.equal(column, ""), pa.scalar(None, column.type), column)
            if pa.types.is_timestamp(field.type):
                column = pc.assume_timezone(pc.cast(column, pa.timestamp("us")), "UTC")
        if column.type != field.type:
            column = pc.cast(column, field.type)
        columns.append(column)
    return pa.Table.from_arrays(columns, schema=schema)


def _postgres_uri(database: dict) -> str:
    user = database.get("USER") or ""
    password = ":" + database["PASSWORD"] if database.get("PASSWORD") else ""
    credentials = "{}{}@".format(user, password) if user else ""
    host = database.get("HOST") or "localhost"
    port = ":{}".format(database["PORT"]) if database.get("PORT") else ""
    return "postgresql://{}{}{}/{}".format(credentials, host, port, database["NAME"])
