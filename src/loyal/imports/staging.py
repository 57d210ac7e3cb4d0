"""Staging tables: parsed rows land in a temporary table before they are merged.

Loading in two steps (stage every row, then merge with set-based SQL) keeps memory flat whatever
the file size, lets cross-row rules (an order's lines must agree on its customer) be checked in
SQL with the rows they concern, and makes the merge one transaction: a file with errors changes
nothing. On PostgreSQL rows are streamed with COPY; on SQLite with executemany, or, for the large
staging table of a load, by ADBC into a database file of its own that is attached once it is full
(see :class:`StagingTable`).
"""

from __future__ import annotations

import io
import itertools
import os
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from django.db import OperationalError, connection

_SQL_TYPES = {
    "postgresql": {
        "text": "text",
        "integer": "bigint",
        "decimal": "numeric",
        "number": "double precision",
        "date": "date",
        "datetime": "timestamptz",
        "boolean": "boolean",
    },
    "sqlite": {
        "text": "text",
        "integer": "integer",
        "decimal": "numeric",
        "number": "real",
        "date": "text",
        "datetime": "text",
        "boolean": "integer",
    },
}


_SLICE_ROWS = 20_000


@dataclass(frozen=True)
class StageColumn:
    name: str
    sql_type: str  # one of the keys of _SQL_TYPES[vendor]


def vendor() -> str:
    if connection.vendor not in _SQL_TYPES:
        raise RuntimeError(
            "Loyal supports SQLite and PostgreSQL, not {}.".format(connection.vendor)
        )
    return connection.vendor


def tune_for_bulk_load() -> None:
    """Settings that suit one large load, for the current transaction only (PostgreSQL).

    Sorts and hashes over a million staged rows stay in memory; the commit does not wait for the
    write-ahead log to reach the disk (a crash may lose the last import, never corrupt the
    records); JIT compilation of the merge statements costs more than it saves.
    """
    if vendor() != "postgresql":
        return
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL work_mem = '256MB'")
        cursor.execute("SET LOCAL maintenance_work_mem = '512MB'")
        cursor.execute("SET LOCAL synchronous_commit = off")
        cursor.execute("SET LOCAL jit = off")


@contextmanager
def without_hash_aggregation() -> Iterator[None]:
    """PostgreSQL groups by sorting (or along an index) within the block, not by hashing."""
    if vendor() != "postgresql":
        yield
        return
    before = fetch("SELECT current_setting('enable_hashagg')")[0][0]
    execute("SET LOCAL enable_hashagg = off")
    try:
        yield
    finally:
        execute("SET LOCAL enable_hashagg = {}".format("on" if before == "on" else "off"))


class StagingTable:
    """A temporary table on Django's connection, filled from Arrow tables.

    ``bulk`` suits a table that takes the rows of a whole file through :meth:`append`. On SQLite
    it then lives in a database file of its own, filled by ADBC (which binds Arrow columns in C,
    about three times faster than Python's executemany), indexed, and attached to Django's
    connection when sealed; ``name`` is then qualified by the attached schema. The file is not
    part of the load's transaction: it holds nothing but staged rows, and is detached and deleted
    once the load's transaction is over (see :func:`detach_stale`).
    SQLite detaches a database only outside any transaction, and a transaction begun before the
    file was attached locks it for writing (``BEGIN IMMEDIATE``): so a load inside a caller's
    transaction (more than its own ``atomic`` block open) stages into a temporary table instead.
    """

    def __init__(
        self,
        name: str,
        columns: Sequence[StageColumn],
        indexes: Sequence[Sequence[str]] = (),
        *,
        bulk: bool = False,
    ):
        self.name = name
        self.columns = tuple(columns)
        self.indexes = tuple(tuple(index) for index in indexes)
        self.rows = 0
        self.sealed = False
        self._side: _SideDatabase | None = None
        types = _SQL_TYPES[vendor()]
        definition = ", ".join("{} {}".format(c.name, types[c.sql_type]) for c in self.columns)
        if bulk and vendor() == "sqlite" and len(connection.atomic_blocks) <= 1:
            self._side = _SideDatabase(name, definition)
            return
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS {}".format(name))
            cursor.execute("CREATE TEMPORARY TABLE {} ({})".format(name, definition))

    def append(self, table: pa.Table) -> None:
        """Add rows; ``table`` has every staging column (nulls where the file had none)."""
        if table.num_rows == 0:
            return
        if self.sealed:
            raise RuntimeError("rows were added to {} after it was sealed".format(self.name))
        table = table.select([c.name for c in self.columns])
        if self._side is not None:
            self._side.ingest(_sqlite_table(table.select(_given(table)), self.columns))
        elif vendor() == "postgresql":
            self._copy(table)
        else:
            self._insert(table)
        self.rows += table.num_rows

    def _copy(self, table: pa.Table) -> None:
        # Columns the file does not have stay out of the COPY (they default to NULL).
        table = table.select(_given(table))
        table = pa.table({name: _postgres_array(table.column(name)) for name in table.column_names})
        names = ", ".join(table.column_names)
        with connection.cursor() as cursor:
            raw = cursor.cursor  # psycopg's own cursor, for COPY
            with raw.copy("COPY {} ({}) FROM STDIN (FORMAT csv)".format(self.name, names)) as copy:
                for start in range(0, table.num_rows, _SLICE_ROWS):
                    buffer = io.BytesIO()
                    options = pa_csv.WriteOptions(include_header=False)
                    pa_csv.write_csv(table.slice(start, _SLICE_ROWS), buffer, options)
                    copy.write(buffer.getvalue())

    def _insert(self, table: pa.Table) -> None:
        # Columns the file does not have stay out of the INSERT (they default to NULL): binding
        # and converting values is most of the cost here.
        given = set(_given(table))
        columns = [c for c in self.columns if c.name in given]
        sql = "INSERT INTO {} ({}) VALUES ({})".format(
            self.name, ", ".join(c.name for c in columns), ", ".join("?" for _ in columns)
        )
        raw = connection.connection
        # Python objects take ~10x the memory of Arrow: convert a slice at a time.
        for start in range(0, table.num_rows, _SLICE_ROWS):
            piece = table.slice(start, _SLICE_ROWS)
            values = [_sqlite_values(piece.column(c.name), c.sql_type) for c in columns]
            raw.executemany(sql, zip(*values, strict=True))

    def seal(self) -> None:
        """Index the staged rows and give the planner their statistics, once all are in.

        Building an index over loaded rows is much faster than keeping it up to date row by
        row; PostgreSQL never analyses temporary tables by itself and guesses badly without.
        """
        if self.sealed:
            return
        if self._side is not None:
            self.name = self._side.seal(self.indexes)
            self.sealed = True
            return
        with connection.cursor() as cursor:
            for i, index_columns in enumerate(self.indexes):
                cursor.execute(
                    "CREATE INDEX {}_i{} ON {} ({})".format(
                        self.name, i, self.name, ", ".join(index_columns)
                    )
                )
            if vendor() == "postgresql":
                cursor.execute("ANALYZE {}".format(self.name))
        self.sealed = True

    def add_index(self, columns: Sequence[str]) -> None:
        """Index sealed rows for a lookup that only some loads make (built once)."""
        schema, _dot, table = self.name.rpartition(".")
        name = "{}_by_{}".format(table, "_".join(columns))
        if schema:  # an attached side database: the index goes into the table's schema
            name = "{}.{}".format(schema, name)
        execute("CREATE INDEX IF NOT EXISTS {} ON {} ({})".format(name, table, ", ".join(columns)))

    def drop(self) -> None:
        if self._side is not None:
            return  # the file goes when the load's transaction is over: see detach_stale
        with connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS {}".format(self.name))


_SIDE_SCHEMA = "loyal_side_"  # the prefix of the schemas side databases are attached under
_SCHEMA_NUMBERS = itertools.count(1)
_SIDES = threading.local()  # this thread's side databases (Django's connection is per thread)


def _scratch_directory() -> str | None:
    """Beside the database file, where the user keeps room for data (over 100 MB for a million
    order lines); the system's temporary directory (often in memory) for an in-memory database.
    """
    path = Path(str(connection.settings_dict["NAME"]))
    if str(path) == ":memory:" or str(path).startswith("file:") or not path.parent.is_dir():
        return None
    return str(path.parent)


class _SideDatabase:
    """A staging table in a SQLite file of its own, written by ADBC, read through ATTACH.

    The file has no journal and is never synced: it is scratch space, deleted by
    :func:`detach_stale` once the load's transaction is over, however the load ended.
    """

    def __init__(self, name: str, definition: str) -> None:
        import adbc_driver_sqlite.dbapi as adbc

        detach_stale()
        self.name = name
        handle, self.path = tempfile.mkstemp(
            prefix="loyal-stage-", suffix=".sqlite3", dir=_scratch_directory()
        )
        os.close(handle)
        self.schema: str | None = None
        self._writer = adbc.connect(self.path, autocommit=True)
        if not hasattr(_SIDES, "open"):
            _SIDES.open = []
        _SIDES.open.append(self)
        with self._writer.cursor() as cursor:
            cursor.execute("PRAGMA journal_mode = OFF")
            cursor.execute("PRAGMA synchronous = OFF")
            cursor.execute("CREATE TABLE {} ({})".format(name, definition))

    def ingest(self, table: pa.Table) -> None:
        with self._writer.cursor() as cursor:
            cursor.adbc_ingest(self.name, table, mode="append")

    def seal(self, indexes: Sequence[Sequence[str]]) -> str:
        """Index the rows, close the writer and attach the file; returns the qualified name."""
        with self._writer.cursor() as cursor:
            for i, index_columns in enumerate(indexes):
                cursor.execute(
                    "CREATE INDEX {}_i{} ON {} ({})".format(
                        self.name, i, self.name, ", ".join(index_columns)
                    )
                )
        self._writer.close()
        self.schema = "{}{}".format(_SIDE_SCHEMA, next(_SCHEMA_NUMBERS))
        with connection.cursor() as cursor:
            cursor.execute("ATTACH DATABASE %s AS {}".format(self.schema), [self.path])
            # As much page cache as the main database has: the merge reads every staged row.
            cursor.execute("PRAGMA {}.cache_size = -200000".format(self.schema))
        return "{}.{}".format(self.schema, self.name)

    def release(self) -> bool:
        """Detach and delete the file; False while a transaction still holds it (SQLite)."""
        self._writer.close()
        if self.schema is not None:
            try:
                execute("DETACH DATABASE {}".format(self.schema))
            except OperationalError as error:
                if "locked" in str(error):
                    return False
                if "no such database" not in str(error):  # the connection was closed since
                    raise
            self.schema = None
        if os.path.exists(self.path):
            os.unlink(self.path)
        return True


def detach_stale() -> None:
    """Release the side databases of this thread's loads that are over (SQLite).

    SQLite refuses to detach a database while a transaction is open: one still in use stays
    until a later call, when that transaction is over. Called after each load's transaction.
    """
    sides = getattr(_SIDES, "open", [])
    _SIDES.open = [side for side in sides if not side.release()]


def _given(table: pa.Table) -> list[str]:
    """The columns holding at least one value (the first one always, so no row is empty)."""
    names = table.column_names
    return [names[0]] + [n for n in names[1:] if table.column(n).null_count < table.num_rows]


def _postgres_array(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """``column`` as COPY is sent it: times with a zone as UTC text, the rest as they are.

    Arrow formats a time with a zone about 30 times slower than the same time without one (2 s
    for a million order lines, most of the cost of staging them): UTC wall time is formatted and
    the zone written after it.
    """
    if not (pa.types.is_timestamp(column.type) and column.type.tz is not None):
        return column
    utc = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.timestamp("us"))
    return pc.binary_join_element_wise(pc.cast(utc, pa.string()), "+00", "")


def _sqlite_table(table: pa.Table, columns: Sequence[StageColumn]) -> pa.Table:
    """``table`` with the values SQLite stores, as :func:`_sqlite_values` makes them (in Arrow)."""
    types = {c.name: c.sql_type for c in columns}
    return pa.table(
        {name: _sqlite_array(table.column(name), types[name]) for name in table.column_names}
    )


def _sqlite_array(column: pa.ChunkedArray, sql_type: str) -> pa.ChunkedArray | pa.Array:
    if sql_type == "datetime":
        # UTC wall time without the zone: Arrow's cast to text is several times faster than
        # strftime, and writes "YYYY-MM-DD HH:MM:SS.ffffff" as Django does. Django writes
        # microseconds only when there are some; matched so re-imports compare equal.
        utc = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.timestamp("us"))
        return pc.replace_substring_regex(pc.cast(utc, pa.string()), r"\.000000$", "")
    if sql_type in ("date", "decimal"):
        return pc.cast(column, pa.string())  # YYYY-MM-DD; decimals exactly
    if sql_type == "boolean":
        return pc.cast(column, pa.int64())
    return column


def _sqlite_values(column: pa.ChunkedArray, sql_type: str) -> list:
    """Python values as Django's SQLite backend stores them (UTC text for datetimes)."""
    return _sqlite_array(column, sql_type).to_pylist()


def execute(sql: str, params: Sequence | None = None) -> int:
    """Run one statement on Django's connection; returns the number of rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        if cursor.rowcount == -1 and vendor() == "sqlite":
            # Python's sqlite3 counts no rows for a statement that starts with WITH.
            cursor.execute("SELECT changes()")
            return cursor.fetchone()[0]
        return cursor.rowcount


def fetch(sql: str, params: Sequence | None = None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def count(table: str) -> int:
    return fetch("SELECT COUNT(*) FROM {}".format(table))[0][0]


def json_value(expression: str) -> str:
    """SQL turning JSON text into the JSON column's type."""
    return "CAST({} AS jsonb)".format(expression) if vendor() == "postgresql" else expression


def true() -> str:
    return "true" if vendor() == "postgresql" else "1"


def false() -> str:
    return "false" if vendor() == "postgresql" else "0"
