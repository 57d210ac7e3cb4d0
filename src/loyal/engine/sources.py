"""The tables the engine reads, and their schemas.

These schemas are the contract between the records (read out of SQLite or PostgreSQL as Arrow by
``loyal.insights``) and every analysis in ``loyal.engine``. An analysis takes Ibis tables with
these columns and an explicit ``as_of``; it never reads the database itself, so the same function
runs on DuckDB in-process or on Spark over Parquet.

All timestamps are UTC. Money is float64 in the engine (the records keep exact decimals).
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir
import pyarrow as pa

TIMESTAMP = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    # One row per customer or prospect.
    "customers": pa.schema(
        [
            ("customer_id", pa.int64()),
            ("external_id", pa.string()),
            ("name", pa.string()),
            ("stage", pa.string()),  # lifecycle stage stored on the record (see kinds.STAGES)
            ("joined_at", TIMESTAMP),
            ("acquisition_source", pa.string()),
            ("acquisition_channel", pa.string()),
            ("city", pa.string()),
            ("birthday", pa.date32()),
            ("owner_id", pa.int64()),
        ]
    ),
    # One row per order; amounts summed over its lines.
    "orders": pa.schema(
        [
            ("order_id", pa.int64()),
            ("customer_id", pa.int64()),
            ("ordered_at", TIMESTAMP),
            ("status", pa.string()),  # paid, refunded, cancelled
            ("channel", pa.string()),
            ("revenue", pa.float64()),  # sum of quantity * unit_price - discount
            ("cost", pa.float64()),  # sum of quantity * unit_cost (0 where unknown)
        ]
    ),
    # One row per order line.
    "order_lines": pa.schema(
        [
            ("order_id", pa.int64()),
            ("customer_id", pa.int64()),
            ("ordered_at", TIMESTAMP),
            ("status", pa.string()),
            ("product_id", pa.int64()),
            ("sku", pa.string()),
            ("category", pa.string()),
            ("quantity", pa.float64()),
            ("revenue", pa.float64()),
            ("cost", pa.float64()),
        ]
    ),
    # One row per subscription, membership or card.
    "subscriptions": pa.schema(
        [
            ("subscription_id", pa.int64()),
            ("customer_id", pa.int64()),
            ("plan", pa.string()),
            ("amount", pa.float64()),  # recurring amount per period
            ("period", pa.string()),  # month, quarter, year
            ("monthly_amount", pa.float64()),  # amount normalised to one month
            ("started_at", TIMESTAMP),
            ("ended_at", TIMESTAMP),  # null while running
            ("cancellation_reason", pa.string()),
        ]
    ),
    # One row per behaviour event.
    "events": pa.schema(
        [
            ("customer_id", pa.int64()),
            ("occurred_at", TIMESTAMP),
            ("session_id", pa.string()),
            ("event_type", pa.string()),
            ("page", pa.string()),
            ("dwell_seconds", pa.float64()),
        ]
    ),
    # One row per call, email, chat, visit, note, complaint...
    "interactions": pa.schema(
        [
            ("interaction_id", pa.int64()),
            ("customer_id", pa.int64()),
            ("occurred_at", TIMESTAMP),
            ("kind", pa.string()),
            ("direction", pa.string()),
            ("outcome", pa.string()),
        ]
    ),
}


@dataclass(frozen=True)
class Sources:
    """The engine's input tables, as Ibis expressions on one backend."""

    customers: ir.Table
    orders: ir.Table
    order_lines: ir.Table
    subscriptions: ir.Table
    events: ir.Table
    interactions: ir.Table


def sources_from_arrow(tables: dict[str, pa.Table], backend: ibis.BaseBackend) -> Sources:
    """Register Arrow tables (missing ones empty) on ``backend`` and return them as Sources."""
    registered = {}
    for name, schema in SCHEMAS.items():
        table = tables.get(name)
        table = schema.empty_table() if table is None else table.select(schema.names).cast(schema)
        registered[name] = backend.create_table(f"loyal_{name}", table, overwrite=True)
    return Sources(**registered)


def sources_from_parquet(paths: dict[str, str], backend: ibis.BaseBackend) -> Sources:
    """Open Parquet files (one per source name) on ``backend`` without loading them into memory.

    DuckDB and Spark read Parquet lazily, so an analysis can run over more data than fits in
    memory. Every source must be present (an empty file for an empty table).
    """
    opened = {}
    for name, schema in SCHEMAS.items():
        table = backend.read_parquet(paths[name], table_name="loyal_{}".format(name))
        opened[name] = table.select(schema.names)
    return Sources(**opened)
