"""Fixtures for the BTYD tests: lifetimes' CDNOW data sets and a DuckDB edge helper."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import ibis
import ibis.expr.types as ir
import lifetimes
import pandas as pd
import pyarrow as pa
import pytest
from lifetimes.datasets import load_cdnow_summary, load_cdnow_summary_data_with_monetary_value

DATASETS = Path(lifetimes.__file__).parent / "datasets"


@pytest.fixture(scope="session")
def cdnow() -> pd.DataFrame:
    """The 2,357-customer CDNOW cohort: x, t_x, T in weeks over a 39-week calibration."""
    return load_cdnow_summary(index_col=[0])


@pytest.fixture(scope="session")
def cdnow_spend() -> pd.DataFrame:
    """The same cohort with mean spend; rows with frequency > 0 are FHL's 946 repeat buyers."""
    return load_cdnow_summary_data_with_monetary_value()


@pytest.fixture(scope="session")
def cdnow_master() -> pd.DataFrame:
    """CDNOW_master.txt: 69,659 orders of 23,570 customers, 1997-01-01 to 1998-06-30."""
    frame = pd.read_csv(
        DATASETS / "CDNOW_master.txt",
        sep=r"\s+",
        header=None,
        skiprows=1,
        names=["customer_id", "date", "cds", "dollar_value"],
        dtype={"date": str},
    )
    frame["date"] = pd.to_datetime(frame["date"], format="%Y%m%d")
    return frame


@pytest.fixture(scope="session")
def cdnow_sample() -> pd.DataFrame:
    """CDNOW_sample.txt: all orders of FHL's 2,357 customers up to 1998-06-30."""
    frame = pd.read_csv(
        DATASETS / "CDNOW_sample.txt",
        sep=r"\s+",
        header=None,
        names=["master_id", "customer_id", "date", "cds", "revenue"],
        dtype={"date": str},
    )
    frame["date"] = pd.to_datetime(frame["date"], format="%Y%m%d")
    return frame


@pytest.fixture(scope="session")
def duckdb() -> ibis.BaseBackend:
    """An in-process DuckDB in UTC (periods are computed in the session time zone)."""
    con = ibis.duckdb.connect()
    con.raw_sql("SET TimeZone = 'UTC'")
    return con


@pytest.fixture(scope="session")
def master_orders(duckdb: ibis.BaseBackend, cdnow_master: pd.DataFrame) -> ir.Table:
    """CDNOW_master as an orders table (customer_id, ordered_at in UTC, revenue)."""
    table = pa.table(
        {
            "customer_id": pa.array(cdnow_master["customer_id"].to_numpy(), pa.int64()),
            "ordered_at": pa.array(
                cdnow_master["date"].dt.tz_localize("UTC"), pa.timestamp("us", tz="UTC")
            ),
            "revenue": pa.array(cdnow_master["dollar_value"].to_numpy(), pa.float64()),
        }
    )
    return duckdb.create_table("cdnow_orders", table, overwrite=True)


@pytest.fixture(scope="session")
def run(duckdb: ibis.BaseBackend) -> Callable[[ir.Table], pd.DataFrame]:
    """The one place the tests execute an engine expression: to pandas, by customer_id."""

    def execute(expr: ir.Table) -> pd.DataFrame:
        frame = duckdb.execute(expr)
        if "customer_id" in frame.columns:
            return frame.set_index("customer_id").sort_index()
        return frame

    return execute
