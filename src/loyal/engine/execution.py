"""The one edge where engine expressions are executed, and the backends they run on.

Analyses build Ibis expressions and never execute them; callers run them here. Results come back
as Arrow with the same types whichever backend ran them: timestamps UTC-aware (Spark returns
naive ones in its session time zone, which these factories set to UTC).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

import ibis
import ibis.expr.types as ir
import pyarrow as pa
from ibis.formats.pyarrow import PyArrowData

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession


def duckdb_backend(
    database: str = ":memory:", *, threads: int | None = None, memory_limit: str | None = None
) -> ibis.BaseBackend:
    """An in-process DuckDB connection with its time zone set to UTC.

    ``threads`` and ``memory_limit`` (e.g. ``"2GB"``) are passed to DuckDB when given.
    """
    config: dict[str, Any] = {}
    if threads is not None:
        config["threads"] = threads
    if memory_limit is not None:
        config["memory_limit"] = memory_limit
    con = ibis.duckdb.connect(database, **config)
    # date_trunc and casts to date follow the session time zone; the engine's dates are UTC.
    con.raw_sql("SET TimeZone = 'UTC'")
    return con


# Spark settings for small data on one machine (tests, laptops): interpreted expressions and a
# C1-only JIT start answering in a fraction of the time that code generation and the optimising
# JIT need to warm up, and one partition avoids scheduling empty tasks. Not for big data.
SMALL_DATA_SPARK_CONF: dict[str, str] = {
    "spark.sql.shuffle.partitions": "1",
    "spark.default.parallelism": "1",
    "spark.sql.adaptive.enabled": "false",
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.driver.extraJavaOptions": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
}


def spark_session(
    *,
    app_name: str = "loyal-engine",
    master: str = "local[2]",
    shuffle_partitions: int = 2,
    warehouse_dir: str | None = None,
    extra_conf: dict[str, str] | None = None,
) -> SparkSession:
    """Start (or reuse) a Spark session configured for the engine: UTC, Arrow transfers.

    Local mode binds to 127.0.0.1 unless ``SPARK_LOCAL_IP`` is set. ``warehouse_dir`` defaults
    to a fresh temporary directory so tables never land in the working directory.
    ``extra_conf`` overrides any setting (e.g. ``SMALL_DATA_SPARK_CONF``). Java options only take
    effect when this call starts the JVM.
    """
    try:
        from pyspark.sql import SparkSession
    except ImportError as error:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the Spark backend needs pyspark: pip install 'pyspark>=3.5,<4.1' (and Java 17)"
        ) from error
    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(shuffle_partitions))
        .config("spark.default.parallelism", str(shuffle_partitions))
        .config("spark.sql.warehouse.dir", warehouse_dir or tempfile.mkdtemp(prefix="loyal-spark-"))
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
    )
    for key, value in (extra_conf or {}).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def pyspark_backend(session: SparkSession | None = None) -> ibis.BaseBackend:
    """An Ibis PySpark backend on ``session`` (a new local one from ``spark_session()`` if None).

    Ibis moves in-memory tables to Spark through pandas, which turns missing floats into NaN;
    reading float columns with NaN as null keeps SQL's null semantics identical to DuckDB.
    """
    con = ibis.pyspark.connect(session if session is not None else spark_session())
    ibis.options.pyspark.treat_nan_as_null = True
    return con


def _normalise(table: pa.Table) -> pa.Table:
    # Spark hands back naive timestamps in its (UTC) session zone and DuckDB drops the zone after
    # date_trunc: make every timestamp UTC-aware so both backends return identical tables.
    fields = []
    changed = False
    for f in table.schema:
        if pa.types.is_timestamp(f.type) and f.type.tz is None:
            fields.append(pa.field(f.name, pa.timestamp(f.type.unit, tz="UTC"), f.nullable))
            changed = True
        else:
            fields.append(f)
    return table.cast(pa.schema(fields)) if changed else table


class _DuckDBArrowData(PyArrowData):
    """Ibis' ``DuckDBPyArrowData`` (null-typed columns as Arrow nulls), redefined here.

    Importing Ibis' own imports pandas with it (for its pandas twin): 0.28 s on the first result
    of a process that has no other use for pandas, a third of a BTYD summary of 7 million orders.
    """

    @classmethod
    def convert_scalar(cls, scalar: pa.Scalar, dtype: Any) -> pa.Scalar:
        if dtype.is_null():
            return pa.scalar(None)
        return super().convert_scalar(scalar, dtype)

    @classmethod
    def convert_column(cls, column: pa.Array, dtype: Any) -> pa.Array:
        if dtype.is_null():
            return pa.nulls(len(column))
        return super().convert_column(column, dtype)


def to_arrow(expr: ir.Expr, *, ordered: bool = True) -> pa.Table:
    """Execute ``expr`` (a table, column or scalar) and return an Arrow table.

    On DuckDB the relation's result is converted to Arrow by DuckDB's threads in one call: as
    much memory as reading it as a stream of record batches, and twice as fast (0.6 s against
    1.0 s for 8 million rows of 4 columns); Ibis then gives it the expression's types as
    ``to_pyarrow`` does. ``ordered=False``: the rows of a result without an ORDER BY may come
    in any order, which spares DuckDB's threads restoring the order of the rows they read
    (0.14 s of a BTYD summary's 0.74 s on 7 million orders).
    """
    table = expr if isinstance(expr, ir.Table) else expr.as_table()
    backend = table._find_backend(use_default=True)
    if backend.name != "duckdb":
        return _normalise(table.to_pyarrow())
    with nullcontext() if ordered else _insertion_order_off(backend.con):
        result = backend._to_duckdb_relation(table).to_arrow_table()
    return _normalise(table.__pyarrow_result__(result, data_mapper=_DuckDBArrowData))


@contextmanager
def _insertion_order_off(con: Any) -> Iterator[None]:
    # DuckDB's preserve_insertion_order off for the block, then put back as it was.
    before = bool(con.execute("SELECT current_setting('preserve_insertion_order')").fetchone()[0])
    con.execute("SET preserve_insertion_order = false")
    try:
        yield
    finally:
        con.execute(f"SET preserve_insertion_order = {str(before).lower()}")


def to_pandas(expr: ir.Expr) -> pd.DataFrame:
    """Execute ``expr`` and return a pandas DataFrame (via Arrow, so types match ``to_arrow``)."""
    return to_arrow(expr).to_pandas()


def cache(expr: ir.Table) -> ir.Table:
    """Materialise ``expr`` on its backend (a temporary table on DuckDB, a persisted DataFrame on
    Spark) so several analyses can read it without recomputing it; ``release()`` it when done."""
    backend = expr._find_backend(use_default=True)
    # Ibis' PySpark cache compiles the query without first registering the in-memory tables it
    # reads (as executing does): register them here.
    register = getattr(backend, "_run_pre_execute_hooks", None)
    if register is not None:
        register(expr)
    if backend.name != "duckdb":
        return expr.cache()
    # DuckDB's threads need not keep the order of a query without an ORDER BY while filling the
    # table (its readers aggregate it or sort what they return; an ORDER BY is still kept): a
    # tenth of the time of the purchase sequence's 7 million rows.
    with _insertion_order_off(backend.con):
        return expr.cache()


def to_scalar(expr: ir.Scalar) -> Any:
    """Execute a scalar expression and return its value as a Python object (None for null)."""
    table = to_arrow(expr)
    if table.num_rows != 1 or table.num_columns != 1:
        raise ValueError(
            f"expected a scalar expression, got a result of shape {table.shape}: "
            "aggregate it to one value first"
        )
    return table.column(0)[0].as_py()


def to_row(expr: ir.Table) -> dict[str, Any]:
    """Execute a one-row table expression and return it as a dict."""
    rows = to_arrow(expr).to_pylist()
    if len(rows) != 1:
        raise ValueError(f"expected exactly one row, got {len(rows)}")
    return rows[0]
