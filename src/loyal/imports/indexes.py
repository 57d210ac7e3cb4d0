"""Secondary indexes set aside while a large load writes a table, and rebuilt after it.

Keeping an index up to date row by row costs more than building it once over the loaded rows:
on PostgreSQL each new row writes one more entry, at a random place, and one more record to the
write-ahead log for every index of its table. When a load adds many rows compared with those the
table holds, its plain (non-unique) indexes are dropped before the rows go in and recreated with
their exact definitions, read from the database's catalogue, afterwards.

Unique indexes stay: they enforce the keys that upserts (``ON CONFLICT``) rely on. Everything
happens in the load's transaction: if the load fails, the rollback brings the indexes back as they
were. Dropping an index locks its table until the load commits, so readers of that table wait for
the load; the threshold keeps this to the loads that rewrite a good part of the table.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from django.db import connection

from loyal.imports.staging import execute, fetch, vendor

# Set the indexes aside when the new rows are at least this share of the rows already stored.
LARGE_LOAD_SHARE = 0.2


@dataclass(frozen=True)
class Index:
    name: str
    definition: str  # the statement that creates it, as the database reports it


def secondary_indexes(table: str) -> list[Index]:
    """The plain indexes of ``table``: not unique, not a primary key, not behind a constraint."""
    if vendor() == "postgresql":
        rows = fetch(
            "SELECT i.relname, pg_get_indexdef(x.indexrelid) FROM pg_index x"
            " JOIN pg_class i ON i.oid = x.indexrelid WHERE x.indrelid = CAST(%s AS regclass)"
            " AND NOT x.indisunique AND NOT x.indisprimary AND NOT EXISTS"
            " (SELECT 1 FROM pg_constraint c WHERE c.conindid = x.indexrelid) ORDER BY i.relname",
            [table],
        )
        return [Index(name, definition) for name, definition in rows]
    # SQLite: index_list's origin "c" is an index made by CREATE INDEX (not by a constraint).
    plain = {
        name
        for _seq, name, unique, origin, _partial in fetch("PRAGMA index_list({})".format(table))
        if not unique and origin == "c"
    }
    rows = fetch(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name = %s"
        " AND sql IS NOT NULL ORDER BY name",
        [table],
    )
    return [Index(name, definition) for name, definition in rows if name in plain]


def is_large_load(table: str, new_rows: int) -> bool:
    """Whether ``new_rows`` is a large share of ``table``'s rows (its highest id, a cheap bound)."""
    if new_rows <= 0:
        return False
    stored = fetch("SELECT MAX(id) FROM {}".format(table))[0][0] or 0
    return new_rows >= stored * LARGE_LOAD_SHARE


@contextmanager
def set_aside(table: str, new_rows: int) -> Iterator[list[Index]]:
    """Drop ``table``'s plain indexes around a load of ``new_rows`` rows if it is large.

    Yields the indexes set aside (none for a small load). They are recreated when the block ends
    without an error; on an error the caller's transaction is rolled back, which restores them.
    """
    if not is_large_load(table, new_rows):
        yield []
        return
    indexes = secondary_indexes(table)
    if not indexes:
        yield []
        return
    if vendor() == "postgresql":
        # PostgreSQL builds no index on a table whose rows have foreign key checks pending (the
        # records' keys are checked at the commit): while the indexes are set aside, each
        # statement's checks run when it ends. They pass or fail as they would at the commit.
        execute("SET CONSTRAINTS ALL IMMEDIATE")
    for index in indexes:
        execute("DROP INDEX {}".format(connection.ops.quote_name(index.name)))
    yield indexes
    for index in indexes:
        execute(index.definition)
    if vendor() == "postgresql":
        execute("SET CONSTRAINTS ALL DEFERRED")
