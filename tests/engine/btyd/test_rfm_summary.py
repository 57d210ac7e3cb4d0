"""loyal.engine.summary: lifetimes' summary conventions, on DuckDB through Ibis."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, date, datetime

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from lifetimes.utils import calibration_and_holdout_data, summary_data_from_transaction_data

from loyal.engine.btyd import group_histories
from loyal.engine.summary import (
    _summary_of_orders,
    calibration_holdout_summary,
    customer_summary,
    period_index,
    rfm_patterns,
    summarise,
)

Run = Callable[[ir.Table], pd.DataFrame]
COLUMNS = ["frequency", "recency", "T", "monetary_value"]


@pytest.mark.parametrize("executed", ["expression", "summarise"])
@pytest.mark.parametrize("period", ["D", "W"])
def test_summary_matches_lifetimes_on_cdnow_master(
    master_orders: ir.Table, cdnow_master: pd.DataFrame, run: Run, period: str, executed: str
) -> None:
    as_of = date(1998, 6, 30)
    if executed == "expression":
        ours = run(customer_summary(master_orders, as_of, period=period))  # type: ignore[arg-type]
    else:  # aggregated in NumPy
        ours = summarise(master_orders, as_of, period=period).to_pandas()  # type: ignore[arg-type]
        ours = ours.set_index("customer_id").sort_index()
    theirs = summary_data_from_transaction_data(
        cdnow_master,
        "customer_id",
        "date",
        monetary_value_col="dollar_value",
        observation_period_end="1998-06-30",
        freq=period,
    ).sort_index()
    assert list(ours.columns) == COLUMNS
    assert ours.index.equals(theirs.index)
    for col in COLUMNS:
        np.testing.assert_allclose(ours[col], theirs[col], rtol=1e-12, atol=1e-9, err_msg=col)


def _random_orders(ids: list[object], timezone: str | None, seed: int = 7) -> pa.Table:
    """Orders of a few customers with several orders on some days, and one after as_of."""
    rng = np.random.default_rng(seed)
    n = 400
    seconds = rng.integers(0, 60 * 86400, size=n) + 1_700_000_000
    who = rng.integers(0, len(ids), size=n)
    seconds[:50], who[:50] = seconds[50:100], who[50:100]  # 50 customers' second order a day
    return pa.table(
        {
            "customer": pa.array([ids[i] for i in who]),
            "at": pa.array(seconds * 1_000_000, pa.int64()).cast(pa.timestamp("us", tz=timezone)),
            "amount": pa.array(np.round(rng.gamma(2.0, 20.0, size=n), 2)),
        }
    )


@pytest.mark.parametrize("timezone", ["UTC", None])
@pytest.mark.parametrize("period", ["D", "W"])
@pytest.mark.parametrize(
    "ids",
    [
        [3, 7, 8, 20, 21, 5000],  # database keys: their own codes
        [-3, -1, 0, 4],  # close integers: shifted
        [10**15, 5, -2],  # integers far apart: hashed
        ["张伟", "li", "Émile", "x"],  # strings: hashed
    ],
)
def test_summarise_equals_the_expression(
    duckdb: ibis.BaseBackend, ids: list[object], timezone: str | None, period: str
) -> None:
    orders = duckdb.create_table("summarise_orders", _random_orders(ids, timezone), overwrite=True)
    as_of = date(2023, 12, 31)  # a few orders fall after it
    keys = dict(customer_col="customer", time_col="at", amount_col="amount", period=period)
    expected = (
        duckdb.execute(customer_summary(orders, as_of, **keys))  # type: ignore[arg-type]
        .set_index("customer")
        .sort_index()
    )
    ours = summarise(orders, as_of, **keys).to_pandas().set_index("customer").sort_index()  # type: ignore[arg-type]
    assert 1 < len(ours) <= len(ids)
    assert ours.index.equals(expected.index)
    pd.testing.assert_frame_equal(ours, expected, check_exact=False, rtol=1e-12)


@pytest.mark.parametrize("period", ["D", "W"])
@pytest.mark.parametrize("ids", [[3, 7, 8, 20, 21, 5000], ["张伟", "li", "Émile", "x"]])
def test_summarise_does_not_depend_on_the_orders_stored_order(
    duckdb: ibis.BaseBackend, ids: list[object], period: str
) -> None:
    # Stored by customer and time, or shuffled: both as the expression.
    table = _random_orders(ids, "UTC")
    grouped = table.take(pc.sort_indices(table, [("customer", "ascending"), ("at", "ascending")]))
    shuffled = table.take(np.random.default_rng(3).permutation(table.num_rows))
    as_of = date(2023, 12, 31)
    keys = dict(customer_col="customer", time_col="at", amount_col="amount", period=period)
    results = []
    for name, orders in [("grouped", grouped), ("shuffled", shuffled)]:
        stored = duckdb.create_table(f"summarise_{name}", orders, overwrite=True)
        results.append(
            summarise(stored, as_of, **keys).to_pandas().set_index("customer").sort_index()  # type: ignore[arg-type]
        )
        expected = duckdb.execute(customer_summary(stored, as_of, **keys))  # type: ignore[arg-type]
        expected = expected.set_index("customer").sort_index()
        pd.testing.assert_frame_equal(results[-1], expected, check_exact=False, rtol=1e-12)
    pd.testing.assert_frame_equal(results[0], results[1], check_exact=False, rtol=1e-12)


@pytest.mark.parametrize("ids", [[3, 7, 8, 20, 21, 5000], ["张伟", "li", "Émile", "x"]])
def test_summary_of_orders_in_several_batches(ids: list[object]) -> None:
    # DuckDB hands its result over in batches, which are read where they are: cut anywhere
    # (an empty batch too), the summary is the one of the whole table, and it is lifetimes' own.
    rng = np.random.default_rng(11)
    who = rng.integers(0, len(ids), size=300)
    orders = pa.table(
        {
            "customer": pa.array([ids[i] for i in who]),
            "_period": pa.array(rng.integers(19_000, 19_030, size=300), pa.int32()),
            "_amount": pa.array(np.round(rng.gamma(2.0, 20.0, size=300), 2)),
        }
    )
    whole = _summary_of_orders(orders, "customer", 19_040, with_amount=True)
    cuts = [0, 1, 1, 120, 299, 300]
    (batch,) = orders.to_batches()
    batches = [batch.slice(a, b - a) for a, b in zip(cuts, cuts[1:], strict=False)]
    pieces = pa.Table.from_batches(batches, orders.schema)
    assert pieces.column("customer").num_chunks == len(batches)
    in_batches = _summary_of_orders(pieces, "customer", 19_040, with_amount=True)
    assert in_batches.column("customer").equals(whole.column("customer"))
    for name in COLUMNS:
        np.testing.assert_allclose(in_batches[name], whole[name], rtol=1e-12, err_msg=name)
    frame = orders.to_pandas()
    frame["date"] = pd.to_datetime(frame["_period"], unit="D")
    theirs = summary_data_from_transaction_data(
        frame,
        "customer",
        "date",
        monetary_value_col="_amount",
        observation_period_end=pd.Timestamp(19_040, unit="D"),
        freq="D",
    ).sort_index()
    ours = whole.to_pandas().set_index("customer").sort_index()
    assert ours.index.equals(theirs.index)
    for name in COLUMNS:
        np.testing.assert_allclose(ours[name], theirs[name], rtol=1e-12, err_msg=name)


def test_summarise_does_not_import_pandas() -> None:
    # pyarrow's NumPy conversions import pandas on first use (0.3 s, a third of a summary of 7
    # million orders); summarise reads and writes Arrow buffers instead. In a fresh process, as
    # the test session has pandas already.
    script = """
import sys
from datetime import date
from loyal.engine.execution import duckdb_backend
from loyal.engine.summary import summarise
con = duckdb_backend()
con.raw_sql(
    "CREATE TABLE orders AS SELECT * FROM (VALUES (1, TIMESTAMPTZ '1970-01-01 00:00:00+00', 1.0),"
    " (1, TIMESTAMPTZ '1970-01-11 00:00:00+00', 2.0), (2, TIMESTAMPTZ '1970-01-01 00:00:00+00',"
    " 3.0)) AS t(customer_id, ordered_at, revenue)"
)
assert summarise(con.table("orders"), date(1970, 1, 31)).num_rows == 2
print("pandas" in sys.modules)
"""
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


def test_summarise_without_amounts_or_orders(duckdb: ibis.BaseBackend) -> None:
    orders = duckdb.create_table("summarise_few", _random_orders([1, 2, 3], "UTC"), overwrite=True)
    keys = dict(customer_col="customer", time_col="at", amount_col=None)
    counts = summarise(orders, date(2023, 12, 31), **keys)  # type: ignore[arg-type]
    assert counts.column_names == ["customer", "frequency", "recency", "T"]
    assert counts.num_rows == 3
    empty = summarise(orders, date(2000, 1, 1), **keys)  # type: ignore[arg-type]
    assert empty.num_rows == 0
    assert empty.column_names == ["customer", "frequency", "recency", "T"]


def test_calibration_holdout_matches_lifetimes(
    master_orders: ir.Table, cdnow_master: pd.DataFrame, run: Run
) -> None:
    ours = run(
        calibration_holdout_summary(master_orders, date(1997, 9, 30), date(1998, 6, 30), period="W")
    )
    theirs = calibration_and_holdout_data(
        cdnow_master,
        "customer_id",
        "date",
        calibration_period_end="1997-09-30",
        observation_period_end="1998-06-30",
        freq="W",
        monetary_value_col="dollar_value",
    ).sort_index()
    assert ours.index.equals(theirs.index)
    same = [f"{c}_cal" for c in COLUMNS] + ["frequency_holdout", "duration_holdout"]
    for col in same:
        np.testing.assert_allclose(ours[col], theirs[col], rtol=1e-12, atol=1e-9, err_msg=col)
    # Holdout spend is the mean of purchase *periods* (lifetimes averages single orders).
    hold = cdnow_master[(cdnow_master["date"] > "1997-09-30")]
    per_week = hold.groupby(["customer_id", hold["date"].dt.to_period("W")])["dollar_value"].sum()
    expected = per_week.groupby(level=0).mean().reindex(ours.index, fill_value=0.0)
    np.testing.assert_allclose(ours["monetary_value_holdout"], expected, rtol=1e-12)


def test_summary_with_calibration_end_is_the_split(master_orders: ir.Table, run: Run) -> None:
    split = run(
        customer_summary(master_orders, date(1998, 6, 30), calibration_end=date(1997, 9, 30))
    )
    assert "frequency_holdout" in split.columns and "T_cal" in split.columns


@pytest.mark.parametrize("timezone", ["UTC", None])
def test_orders_on_several_days_and_the_as_of_cut(
    duckdb: ibis.BaseBackend, run: Run, timezone: str | None
) -> None:
    def at(day: int, hour: int = 12) -> datetime:
        return datetime(2024, 3, day, hour, tzinfo=UTC)

    orders = pa.table(
        {
            "customer_id": [1, 1, 1, 1, 2, 3],
            "ordered_at": pa.array(
                [at(1), at(1, 18), at(4), at(4, 20), at(2), at(5, 9)],
                pa.timestamp("us", tz="UTC"),
            ),
            "revenue": [10.0, 5.0, 7.0, 1.0, 3.0, 100.0],
        }
    )
    if timezone is None:  # naive timestamps are UTC wall times
        orders = orders.set_column(1, "ordered_at", orders["ordered_at"].cast(pa.timestamp("us")))
    table = duckdb.create_table("tiny_orders", orders, overwrite=True)
    # Two orders a day are one purchase of 15 and one of 8; customer 3 buys after as_of.
    got = run(customer_summary(table, datetime(2024, 3, 5, 8, tzinfo=UTC)))
    assert got.to_dict("index") == {
        1: {"frequency": 1.0, "recency": 3.0, "T": 4.0, "monetary_value": 8.0},
        2: {"frequency": 0.0, "recency": 0.0, "T": 3.0, "monetary_value": 0.0},
    }
    # A date as_of covers the whole day; without amounts there is no monetary_value.
    by_day = run(customer_summary(table, date(2024, 3, 5), amount_col=None))
    assert list(by_day.columns) == ["frequency", "recency", "T"]
    assert by_day.loc[3, "T"] == 0.0


@pytest.mark.parametrize("timezone", ["UTC", None])
@pytest.mark.parametrize("period", ["D", "W"])
def test_duckdb_period_index_equals_the_portable_definition(
    duckdb: ibis.BaseBackend, timezone: str | None, period: str
) -> None:
    # Instants on both sides of day and week boundaries, before and after 1970.
    moments = [
        datetime(1969, 12, 28, 23, 59, 59, 999999),
        datetime(1969, 12, 29),
        datetime(1969, 12, 31, 23, 59, 59, 999999),
        datetime(1970, 1, 1),
        datetime(2024, 2, 29, 23, 59, 59, 999999),
        datetime(2024, 3, 1),
        datetime(2024, 12, 29, 23, 59, 59, 999999),
        datetime(2024, 12, 30),
    ]
    table = pa.table({"ts": pa.array(moments, pa.timestamp("us", tz=timezone))})
    on_duckdb = duckdb.create_table("period_moments", table, overwrite=True)
    unbound = ibis.memtable(table)  # no backend: the portable epoch-seconds form
    fast = on_duckdb.select(index=period_index(on_duckdb.ts, period))  # type: ignore[arg-type]
    portable = unbound.select(index=period_index(unbound.ts, period))  # type: ignore[arg-type]
    # DuckDB reads the stored integer epoch of naive and aware columns alike.
    assert "EPOCH_US" in ibis.to_sql(fast)
    assert "EPOCH_US" not in ibis.to_sql(portable)
    days = [(m.date() - date(1970, 1, 1)).days for m in moments]
    expected = days if period == "D" else [(d + 3) // 7 for d in days]
    assert duckdb.execute(fast)["index"].tolist() == expected
    assert duckdb.execute(portable)["index"].tolist() == expected


def test_rfm_patterns_count_customers(master_orders: ir.Table, run: Run) -> None:
    summary = customer_summary(master_orders, date(1997, 9, 30), period="W")
    keys = ["frequency", "recency", "T"]
    in_sql = run(rfm_patterns(summary)).sort_values(keys).reset_index(drop=True)
    customers = run(summary)
    assert in_sql["n_customers"].sum() == len(customers)
    x, t_x, age, counts, inverse = group_histories(*(customers[c] for c in keys))
    in_numpy = pd.DataFrame({"frequency": x, "recency": t_x, "T": age, "n_customers": counts})
    pd.testing.assert_frame_equal(in_sql, in_numpy.sort_values(keys).reset_index(drop=True))
    np.testing.assert_array_equal(t_x[inverse], customers["recency"])


def test_builds_an_expression_without_data() -> None:
    # An unbound table: nothing can execute, yet the expression builds and compiles to SQL.
    orders = ibis.table(
        {"customer_id": "int64", "ordered_at": "timestamp('UTC')", "revenue": "float64"},
        name="orders",
    )
    expr = calibration_holdout_summary(orders, date(2024, 1, 31), date(2024, 3, 31))
    sql = ibis.to_sql(expr, dialect="duckdb")
    assert "GROUP BY" in sql


def test_bad_arguments_are_explained(master_orders: ir.Table) -> None:
    with pytest.raises(ValueError, match="as_of is a naive datetime"):
        customer_summary(master_orders, datetime(1998, 6, 30))
    with pytest.raises(ValueError, match="period must be 'D'"):
        customer_summary(master_orders, date(1998, 6, 30), period="M")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no column 'ordered_on'"):
        customer_summary(master_orders, date(1998, 6, 30), time_col="ordered_on")
    with pytest.raises(ValueError, match="must be after calibration_end"):
        calibration_holdout_summary(master_orders, date(1998, 1, 1), date(1997, 1, 1))
