"""Staging outside a caller's transaction: on SQLite, ADBC fills a side database file.

Most tests run inside a transaction (pytest-django's), where the loader stages into a temporary
table. These tests run without one, so the side database is used on SQLite, and check that it
gives exactly the records the temporary table gives, that re-importing changes nothing, and that
no side database is left attached, nor its file on disk, however the load ended.
"""

from __future__ import annotations

import datetime as dt
import glob
import os
import tempfile
from decimal import Decimal
from zoneinfo import ZoneInfo

import pyarrow as pa
import pytest
from django.db import connection, transaction

from loyal.commerce.models import BehaviourEvent, Order, OrderLine
from loyal.customers.models import Consent, Customer
from loyal.imports import staging
from loyal.imports.services import import_file
from loyal.imports.staging import StageColumn, StagingTable, fetch

pytestmark = pytest.mark.django_db(transaction=True)

FILES = {
    "customers": "external_id,name,email,joined_at,birthday,city\n"
    "C1,Li Wei,li@example.com,2024-03-01 10:00:00.250000,1990-05-06,Shanghai\n"
    "C2,王芳,,2024-03-02 11:30,,\n",
    "orders": "order_id,customer_id,ordered_at,status,sku,category,quantity,unit_price,discount,unit_cost\n"
    "O1,C1,2024-03-05 09:15:30.5,paid,A,food,2,12.5,,7.12\n"
    "O1,C1,2024-03-05 09:15:30.5,paid,B,drink,1,3,0.5,\n"
    "O2,C3,2024-03-06,refunded,A,food,1.5,12.5,,\n",
    "consents": "customer_id,channel,opted_in,recorded_at\nC1,email,yes,2024-03-07\nC3,sms,no,2024-03-08 08:00\n",
    "events": "customer_id,occurred_at,event_type,page,dwell_seconds\n"
    "C1,2024-03-09 12:00,view,/home,3.25\nC2,2024-03-09 12:01,view,/cart,\n",
}


def _records(source: str) -> dict[str, list]:
    customers = Customer.objects.filter(source=source)
    return {
        "customers": sorted(
            customers.values_list("external_id", "name", "joined_at", "birthday", "city", "stage")
        ),
        "orders": sorted(
            Order.objects.filter(source=source).values_list(
                "external_id", "customer__external_id", "ordered_at", "status", "revenue", "cost"
            )
        ),
        "lines": sorted(
            OrderLine.objects.filter(order__source=source).values_list(
                "order__external_id",
                "line_no",
                "product__sku",
                "quantity",
                "unit_price",
                "discount",
                "unit_cost",
            )
        ),
        "consents": sorted(
            Consent.objects.filter(customer__source=source).values_list(
                "customer__external_id", "channel", "opted_in", "recorded_at"
            )
        ),
        "events": sorted(
            BehaviourEvent.objects.filter(source=source).values_list(
                "customer__external_id", "occurred_at", "event_type", "page", "dwell_seconds"
            )
        ),
    }


def _import_all(tmp_path, source: str) -> None:
    for kind, text in FILES.items():
        path = tmp_path / "{}.csv".format(kind)
        path.write_text(text, encoding="utf-8")
        report = import_file(path, kind, source=source)
        assert report.written, report.errors


def _side_databases() -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA database_list" if connection.vendor == "sqlite" else "SELECT 1")
        rows = cursor.fetchall()
    return [row[1] for row in rows if connection.vendor == "sqlite" and row[1] != "main"]


def _side_files() -> list[str]:
    return glob.glob(os.path.join(tempfile.gettempdir(), "loyal-stage-*"))


def test_staging_outside_a_transaction_gives_the_records_a_temporary_table_gives(
    tmp_path, monkeypatch
):
    files_before = _side_files()
    ingested = []
    ingest = staging._SideDatabase.ingest
    monkeypatch.setattr(
        staging._SideDatabase,
        "ingest",
        lambda side, table: ingested.append(table.num_rows) or ingest(side, table),
    )
    _import_all(tmp_path, "side")
    assert sum(ingested) == (9 if connection.vendor == "sqlite" else 0)
    with transaction.atomic():  # a caller's transaction: staged in a temporary table
        _import_all(tmp_path, "temporary")
    assert sum(ingested) == (9 if connection.vendor == "sqlite" else 0)
    side = _records("side")
    assert side == _records("temporary")
    assert all(side.values())
    assert _side_databases() in ([], ["temp"])
    assert _side_files() == files_before


def test_reimporting_outside_a_transaction_changes_nothing(tmp_path):
    _import_all(tmp_path, "side")
    first = _records("side")
    path = tmp_path / "orders.csv"
    report = import_file(path, "orders", source="side")
    assert (report.result.created, report.result.updated) == (0, 0)
    assert _records("side") == first


def test_a_file_with_errors_changes_nothing_and_leaves_no_side_database(tmp_path):
    files_before = _side_files()
    path = tmp_path / "orders.csv"
    # The lines of O1 disagree on the customer: found only after staging (a merge error).
    path.write_text(
        "order_id,customer_id,ordered_at,sku,unit_price\n"
        "O1,C1,2024-03-05,A,10\nO1,C2,2024-03-05,B,10\n",
        encoding="utf-8",
    )
    report = import_file(path, "orders", source="side")
    assert not report.written
    assert report.error_count == 1
    assert Order.objects.count() == 0
    report = import_file(path, "orders", source="side", skip_invalid=True)
    assert report.written and report.rows_rejected == 1
    assert Order.objects.get().external_id == "O1"
    assert _side_databases() in ([], ["temp"])
    assert _side_files() == files_before


def test_staged_times_read_back_as_they_were():
    """Times go to PostgreSQL's COPY as UTC text with the zone written after it (fast in Arrow)."""
    times = [
        dt.datetime(2024, 3, 5, 14, 30, tzinfo=dt.UTC),
        dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
        dt.datetime(2024, 3, 5, 6, 30, 0, 250000, tzinfo=ZoneInfo("Asia/Shanghai")),
        None,
    ]
    table = pa.table(
        {
            "row_number": pa.array([1, 2, 3, 4], pa.int64()),
            "at": pa.array(times, pa.timestamp("us", tz="UTC")),
        }
    )
    columns = [StageColumn("row_number", "integer"), StageColumn("at", "datetime")]
    with transaction.atomic():
        stage = StagingTable("loyal_stage_times", columns)
        stage.append(table)
        stored = [
            value for (value,) in fetch("SELECT at FROM loyal_stage_times ORDER BY row_number")
        ]
        stage.drop()
    if connection.vendor == "postgresql":
        assert stored == times
    else:  # as Django's SQLite backend writes them
        assert stored == [
            None if value is None else connection.ops.adapt_datetimefield_value(value)
            for value in times
        ]


def test_staged_values_of_every_type_read_back_as_they_were():
    """PostgreSQL stages through COPY, as text: every type, nulls and awkward text too."""
    if connection.vendor != "postgresql":
        pytest.skip("COPY is PostgreSQL's")
    values = {
        "row_number": (pa.int64(), "integer", [1, 2, 3, 4, 5]),
        "name": (
            pa.string(),
            "text",
            ["O1", "", '王芳 "quoted", comma\nnew line', None, "x" * 300],
        ),
        "price": (
            pa.decimal128(18, 4),
            "decimal",
            [
                Decimal("12.5"),
                Decimal("-0.0001"),
                Decimal("0"),
                None,
                Decimal("99999999999999.9999"),
            ],
        ),
        "share": (pa.float64(), "number", [3.25, -1e-9, 0.0, None, 1e300]),
        "day": (
            pa.date32(),
            "date",
            [
                dt.date(2024, 3, 5),
                dt.date(1969, 12, 31),
                dt.date(2000, 1, 1),
                None,
                dt.date(1, 1, 1),
            ],
        ),
        "at": (
            pa.timestamp("us", tz="UTC"),
            "datetime",
            [
                dt.datetime(2024, 3, 5, 14, 30, 0, 123456, tzinfo=dt.UTC),
                dt.datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=dt.UTC),
                dt.datetime(2000, 1, 1, tzinfo=dt.UTC),
                None,
                dt.datetime(2099, 12, 31, 23, 59, 59, tzinfo=dt.UTC),
            ],
        ),
        "flag": (pa.bool_(), "boolean", [True, False, None, True, False]),
    }
    table = pa.table({name: pa.array(rows, kind) for name, (kind, _sql, rows) in values.items()})
    columns = [StageColumn(name, sql) for name, (_kind, sql, _rows) in values.items()]
    with transaction.atomic():
        stage = StagingTable("loyal_stage_types", columns)
        # Slices of the table, as the loader hands over batches: offsets into Arrow buffers.
        stage.append(table.slice(0, 2))
        stage.append(table.slice(2))
        stored = fetch(
            "SELECT {} FROM loyal_stage_types ORDER BY row_number".format(", ".join(values))
        )
        stage.drop()
    expected = list(zip(*(rows for _kind, _sql, rows in values.values()), strict=True))
    assert stored == expected
