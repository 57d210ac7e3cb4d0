"""The records read back as Arrow with the engine's schemas, on SQLite and PostgreSQL."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from loyal.engine.sources import SCHEMAS
from loyal.imports.services import load_tables
from loyal.insights import sources
from loyal.insights.sources import _row_groups, snapshot_records
from tests.conftest import at, customers_table, kind_table, orders_table

# ADBC reads on its own connection, so the rows must be committed.
pytestmark = pytest.mark.django_db(transaction=True)


def test_records_are_read_with_engine_schemas(tmp_path):
    load_tables(
        "customers",
        [
            customers_table(
                [
                    {
                        "external_id": "C1",
                        "name": "王芳",
                        "stage": "customer",
                        "joined_at": at(2024, 1, 5),
                    },
                    {"external_id": "C2"},
                ]
            )
        ],
    )
    load_tables(
        "orders",
        [
            orders_table(
                [
                    {
                        "order_id": "O1",
                        "customer_id": "C1",
                        "ordered_at": at(2024, 3, 1, 10),
                        "sku": "A",
                        "category": "coffee",
                        "quantity": 2,
                        "unit_price": "50.5",
                        "discount": "1",
                        "unit_cost": "20",
                    },
                ]
            )
        ],
    )
    load_tables(
        "subscriptions",
        [
            kind_table(
                "subscriptions",
                [
                    {
                        "subscription_id": "S1",
                        "customer_id": "C1",
                        "plan": "plus",
                        "amount": "120",
                        "period": "year",
                        "started_at": at(2024, 1, 1),
                    },
                ],
            )
        ],
    )
    paths = snapshot_records(tmp_path)
    tables = {name: pq.read_table(path) for name, path in paths.items()}
    for name, schema in SCHEMAS.items():
        assert tables[name].schema.equals(schema), name
    customers = tables["customers"].sort_by("external_id").to_pylist()
    assert customers[0]["name"] == "王芳"
    assert customers[0]["joined_at"] == at(2024, 1, 5)
    assert customers[1]["name"] is None  # blank text reads as null
    order = tables["orders"].to_pylist()[0]
    assert order["revenue"] == pytest.approx(100.0)  # 2 × 50.5 − 1
    assert order["cost"] == pytest.approx(40.0)
    assert order["ordered_at"] == at(2024, 3, 1, 10)
    line = tables["order_lines"].to_pylist()[0]
    assert (line["category"], line["sku"], line["revenue"]) == ("coffee", "A", pytest.approx(100.0))
    subscription = tables["subscriptions"].to_pylist()[0]
    assert subscription["monthly_amount"] == pytest.approx(10.0)
    assert subscription["ended_at"] is None
    assert tables["events"].num_rows == 0


def test_small_batches_are_regrouped_into_row_groups_of_the_given_size():
    batches = [pa.table({"n": pa.array(range(start, start + size), pa.int64())}) for start, size in
               ((0, 3), (3, 4), (7, 0), (7, 9), (16, 1))]  # fmt: skip
    groups = list(_row_groups(batches, 5))
    assert [g.num_rows for g in groups] == [5, 5, 5, 2]
    assert [n for g in groups for n in g["n"].to_pylist()] == list(range(17))
    assert list(_row_groups([], 5)) == []


def test_snapshot_files_are_written_in_row_groups(tmp_path, monkeypatch):
    load_tables(
        "customers",
        [customers_table([{"external_id": "C{}".format(i)} for i in range(5)])],
    )
    monkeypatch.setattr(sources, "ROW_GROUP_ROWS", 2)
    paths = snapshot_records(tmp_path)
    metadata = pq.ParquetFile(paths["customers"]).metadata
    sizes = [metadata.row_group(i).num_rows for i in range(metadata.num_row_groups)]
    assert sizes == [2, 2, 1]
