"""The execution edge: DuckDB in UTC, Arrow results with UTC timestamps."""

from __future__ import annotations

import datetime as dt

import ibis
import pyarrow as pa
import pytest

from loyal.engine.execution import to_arrow, to_pandas, to_row, to_scalar


def test_duckdb_session_runs_in_utc(duck):
    assert duck.raw_sql("SELECT current_setting('TimeZone')").fetchone()[0] == "UTC"


def test_timestamps_come_back_utc_aware(duck):
    table = duck.create_table(
        "exec_ts",
        pa.table(
            {
                "at": pa.array(
                    [dt.datetime(2024, 3, 31, 23, 30, tzinfo=dt.UTC)], pa.timestamp("us", tz="UTC")
                )
            }
        ),
        overwrite=True,
    )
    # date_trunc drops the zone on DuckDB; the month must still be March in UTC.
    result = to_arrow(table.select(month=table.at.truncate("M")))
    assert result.schema.field("month").type == pa.timestamp("us", tz="UTC")
    assert result.column("month")[0].as_py() == dt.datetime(2024, 3, 1, tzinfo=dt.UTC)


def test_scalars_rows_and_frames():
    t = ibis.memtable({"x": [1, 2, 3]})
    assert to_scalar(t.x.sum()) == 6
    assert to_row(t.aggregate(n=t.count(), top=t.x.max())) == {"n": 3, "top": 3}
    assert list(to_pandas(t).x) == [1, 2, 3]
    assert to_arrow(t.x).column_names == ["x"]


def test_to_row_refuses_several_rows():
    with pytest.raises(ValueError, match="exactly one row, got 3"):
        to_row(ibis.memtable({"x": [1, 2, 3]}))


def test_duckdb_results_have_ibis_types(duck):
    # to_arrow converts DuckDB's result as Ibis' DuckDB backend does (null-typed columns as
    # Arrow nulls), without importing Ibis' converter module (it imports pandas).
    table = duck.create_table(
        "exec_types", pa.table({"x": [1, 2], "s": ["a", "b"]}), overwrite=True
    )
    expr = table.select(table.x, table.s, nothing=ibis.null(), small=table.x.cast("int8"))
    assert to_arrow(expr).equals(expr.to_pyarrow())
    assert to_arrow(expr).schema.field("nothing").type == pa.null()


def test_unordered_results_put_the_insertion_order_setting_back(duck):
    table = duck.create_table("unordered_rows", pa.table({"x": list(range(1000))}), overwrite=True)
    got = to_arrow(table.filter(table.x % 2 == 0), ordered=False)
    assert sorted(got.column("x").to_pylist()) == list(range(0, 1000, 2))
    setting = duck.raw_sql("SELECT current_setting('preserve_insertion_order')").fetchone()[0]
    assert setting is True
