"""The SQL building blocks of merging staged rows into the records (see ``merging``).

Every statement starts from the staging table and looks records up by key, so its cost follows
the size of the file, not of the records. SQLite's planner, which has no statistics on the
low-cardinality ``source`` column, would rather scan the records; ``CROSS JOIN`` (SQLite's way to
fix the join order) keeps the staging table as the outer loop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from loyal.imports import indexes
from loyal.imports.staging import (
    StageColumn,
    StagingTable,
    execute,
    fetch,
    json_value,
    vendor,
)

if TYPE_CHECKING:
    from loyal.imports.loading import Loader, LoadResult


def outer_loop_join() -> str:
    """An inner join that keeps the left table as the outer loop."""
    return "CROSS JOIN" if vendor() == "sqlite" else "JOIN"


def materialized() -> str:
    """Computes a WITH query on its own first: else SQLite may look its rows up from the wrong end."""
    return "MATERIALIZED " if vendor() == "sqlite" else ""


def count_of(sql: str, params: list) -> int:
    return int(fetch(sql, params)[0][0])


def changed_condition(table: str, values: dict[str, str]) -> str:
    return " OR ".join(
        "{}.{} IS DISTINCT FROM {}".format(table, column, value) for column, value in values.items()
    )


def insert_missing(
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


def update_changed(
    table: str, fields: tuple[str, ...], rows: str, matches: str, params: list
) -> int:
    """Update the rows of ``table`` that ``matches`` (a condition on ``table`` and ``f``) pairs
    with ``rows`` (a subquery aliased ``f``), setting ``fields`` from ``f``, where any of them
    differs: only those are written (an upsert would lock, and so write and log, every matched
    row even when nothing changes). Returns the number updated."""
    return execute(
        "WITH f AS {materialized}({f}) UPDATE {table} SET {set} FROM f WHERE {matches}"
        " AND ({changed})".format(
            materialized=materialized(),
            f=rows.removesuffix(" f")[1:-1],
            table=table,
            set=", ".join("{c} = f.{c}".format(c=c) for c in fields),
            matches=matches,
            changed=changed_condition(table, {c: "f." + c for c in fields}),
        ),
        params,
    )


def load_result(loader: Loader, created: int, changed: int, **also: int) -> LoadResult:
    from loyal.imports.loading import LoadResult

    updated = max(changed - created, 0)
    rows = loader.stage.rows
    return LoadResult(
        loader.kind.name, rows, created, updated, max(rows - created - updated, 0), also
    )


def customers_exist(loader: Loader, column: str) -> str:
    return "EXISTS (SELECT 1 FROM customers_customer c WHERE c.source = %s AND c.external_id = s.{})".format(
        column
    )


def distinct_values(loader: Loader, column: str) -> str:
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
                    " AND c.external_id = n.customer_id".format(n=new.name, join=outer_loop_join()),
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
            s=distinct_values(loader, column), join=outer_loop_join(), c=column
        ),
        [loader.label, loader.source],
    )
