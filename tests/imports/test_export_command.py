"""`loyal export`: records in importable columns, so an export imports again unchanged."""

from __future__ import annotations

import csv
import json

import pytest
from django.core.management import CommandError, call_command

from loyal.imports.services import load_tables
from tests.conftest import at, customers_table, orders_table

pytestmark = pytest.mark.django_db


@pytest.fixture
def records(staff):
    load_tables(
        "customers",
        [
            customers_table(
                [
                    {
                        "external_id": "C1",
                        "name": "王芳",
                        "email": "wf@example.cn",
                        "stage": "customer",
                        "owner": "li.na",
                        "tags": "vip;newsletter",
                        "joined_at": at(2024, 1, 5),
                        "city": "上海",
                    },
                    {"external_id": "C2", "name": "Emma Smith", "stage": "prospect"},
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
                        "category": "咖啡",
                        "quantity": 2,
                        "unit_price": "50.5",
                        "discount": "1",
                        "unit_cost": "20",
                    },
                ]
            )
        ],
    )


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
def test_exported_records_import_again_unchanged(records, tmp_path, capsys, suffix):
    for kind in ("customers", "orders"):
        path = tmp_path / (kind + suffix)
        call_command("export", kind, str(path))
        capsys.readouterr()
        call_command("import", kind, str(path))
        assert "0 created, 0 updated" in capsys.readouterr().out, kind


def test_exported_customers_carry_contacts_tags_and_chinese_text(records, tmp_path):
    path = tmp_path / "customers.csv"
    call_command("export", "customers", str(path))
    with path.open(encoding="utf-8-sig") as handle:
        rows = {row["external_id"]: row for row in csv.DictReader(handle)}
    assert rows["C1"]["name"] == "王芳"
    assert rows["C1"]["email"] == "wf@example.cn"
    assert rows["C1"]["tags"] == "newsletter;vip"
    assert rows["C1"]["owner"] == "li.na"
    assert rows["C2"]["stage"] == "prospect"


def test_export_to_json_and_empty_export_keeps_the_columns(records, tmp_path):
    path = tmp_path / "orders.json"
    call_command("export", "orders", str(path))
    orders = json.loads(path.read_text(encoding="utf-8"))
    assert orders[0]["order_id"] == "O1" and orders[0]["category"] == "咖啡"
    empty = tmp_path / "events.csv"
    call_command("export", "events", str(empty))
    assert empty.read_text(encoding="utf-8-sig").startswith('"event_id","customer_id"')


def test_export_refuses_an_unknown_format(tmp_path):
    with pytest.raises(CommandError, match=".csv, .xlsx"):
        call_command("export", "customers", str(tmp_path / "customers.pdf"))
