"""Fixtures for the engine tests: small hand-made tables and one backend of each kind.

Tables are written as lists of dicts with only the columns a test needs; ``make_sources`` fills
the rest of the schema with nulls and registers them on a backend.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import ibis
import pyarrow as pa
import pytest

from loyal.engine.execution import duckdb_backend
from loyal.engine.sources import SCHEMAS, Sources, sources_from_arrow

UTC = dt.UTC


def ts(text: str) -> dt.datetime:
    """An aware UTC datetime from 'YYYY-MM-DD' or 'YYYY-MM-DD HH:MM'."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def arrow(name: str, rows: list[dict[str, Any]]) -> pa.Table:
    """Rows of source ``name`` as Arrow, unspecified columns null; 'YYYY-MM-DD' strings in
    timestamp columns are parsed as UTC."""
    schema = SCHEMAS[name]
    unknown = {key for row in rows for key in row} - set(schema.names)
    if unknown:
        raise KeyError(f"columns {sorted(unknown)} are not in the {name} schema")
    columns = {}
    for field in schema:
        values = [row.get(field.name) for row in rows]
        if pa.types.is_timestamp(field.type):
            values = [ts(v) if isinstance(v, str) else v for v in values]
        columns[field.name] = pa.array(values, type=field.type)
    return pa.table(columns, schema=schema)


def make_sources(con: ibis.BaseBackend, **tables: list[dict[str, Any]]) -> Sources:
    """Register the given sources (others empty) on ``con``."""
    return sources_from_arrow({name: arrow(name, rows) for name, rows in tables.items()}, con)


@pytest.fixture(scope="session")
def duck() -> ibis.BaseBackend:
    """One in-process DuckDB connection for the whole test session."""
    return duckdb_backend()


@pytest.fixture(scope="session")
def spark() -> Iterator[ibis.BaseBackend]:
    """One local PySpark session for the whole test session (skipped without pyspark)."""
    pytest.importorskip("pyspark")
    from loyal.engine.execution import SMALL_DATA_SPARK_CONF, pyspark_backend, spark_session

    os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    warehouse = tempfile.mkdtemp(prefix="loyal-spark-test-")
    session = spark_session(
        app_name="loyal-engine-tests", warehouse_dir=warehouse, extra_conf=SMALL_DATA_SPARK_CONF
    )
    try:
        yield pyspark_backend(session)
    finally:
        session.stop()
        shutil.rmtree(warehouse, ignore_errors=True)


def demo_tables(seed: int = 7, customers: int = 60) -> dict[str, pa.Table]:
    """A small, varied, seeded shop: buyers, subscribers, visitors, service contacts.

    Used where a test needs every analysis to have something to chew on (run_all, backends).
    """
    import numpy as np

    rng = np.random.default_rng(seed)
    start = ts("2023-01-01")
    channels = ["web", "store", "referral", None]
    kinds = ["call", "email", "chat", "visit", "note", "complaint", "sms", "wechat"]
    rows: dict[str, list[dict[str, Any]]] = {k: [] for k in SCHEMAS if k != "order_lines"}
    order_id = subscription_id = interaction_id = 0
    for cid in range(1, customers + 1):
        joined = start + dt.timedelta(days=int(rng.integers(0, 400)), hours=int(rng.integers(24)))
        rows["customers"].append(
            dict(
                customer_id=cid,
                external_id=f"C{cid:04d}",
                name=f"客户{cid}",
                stage=["intent", None, "customer"][cid % 3],
                joined_at=joined,
                acquisition_channel=channels[cid % 4],
                city=["上海", "北京", "广州"][cid % 3],
            )
        )
        kind = cid % 5  # 0: prospect, 1-3: buyers, 4: subscriber
        if kind in (1, 2, 3):
            at = joined
            for _ in range(int(rng.integers(1, 9))):
                at = at + dt.timedelta(days=float(rng.exponential(20 * kind)))
                order_id += 1
                revenue = round(float(rng.gamma(2.0, 40.0)), 2)
                rows["orders"].append(
                    dict(
                        order_id=order_id,
                        customer_id=cid,
                        ordered_at=at,
                        status="paid" if rng.random() < 0.9 else "refunded",
                        channel="web",
                        revenue=revenue,
                        cost=round(revenue * 0.6, 2),
                    )
                )
        if kind == 4:
            began = joined
            for _ in range(int(rng.integers(1, 3))):
                subscription_id += 1
                length = float(rng.exponential(200))
                ended = began + dt.timedelta(days=length)
                monthly = float(rng.choice([9.0, 19.0, 49.0]))
                rows["subscriptions"].append(
                    dict(
                        subscription_id=subscription_id,
                        customer_id=cid,
                        plan=f"plan{int(monthly)}",
                        amount=monthly,
                        period="month",
                        monthly_amount=monthly,
                        started_at=began,
                        ended_at=ended if ended < ts("2024-06-01") else None,
                    )
                )
                began = ended + dt.timedelta(days=float(rng.integers(0, 60)))
        for _ in range(int(rng.integers(0, 12))):
            at = joined + dt.timedelta(days=float(rng.uniform(0, 500)))
            rows["events"].append(
                dict(
                    customer_id=cid,
                    occurred_at=at,
                    session_id=f"s{cid}-{int(rng.integers(0, 4))}",
                    event_type=["view", "view", "click"][int(rng.integers(0, 3))],
                    page="/home",
                    dwell_seconds=None if rng.random() < 0.2 else float(rng.integers(1, 300)),
                )
            )
        for _ in range(int(rng.integers(0, 3))):
            interaction_id += 1
            rows["interactions"].append(
                dict(
                    interaction_id=interaction_id,
                    customer_id=cid,
                    occurred_at=joined + dt.timedelta(days=float(rng.uniform(0, 450))),
                    kind=kinds[int(rng.integers(0, len(kinds)))],
                    direction="outbound",
                    outcome="compensated" if rng.random() < 0.2 else "resolved",
                )
            )
    return {name: arrow(name, table_rows) for name, table_rows in rows.items()}


DEMO_AS_OF = dt.datetime(2024, 6, 1, tzinfo=UTC)
