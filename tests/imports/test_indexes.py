"""Plain indexes set aside during large loads: rebuilt as they were, restored by a rollback."""

from __future__ import annotations

import pytest
from django.db import transaction

from loyal.commerce.models import Order, OrderLine
from loyal.imports import indexes
from loyal.imports.services import import_file, load_tables
from tests.conftest import at, orders_table

pytestmark = pytest.mark.django_db


def line(order: str, customer: str, sku: str) -> dict:
    return {
        "order_id": order,
        "customer_id": customer,
        "ordered_at": at(2024, 3, 1),
        "sku": sku,
        "unit_price": "10",
    }


def test_the_plain_indexes_of_orders_and_lines_are_found():
    names = [index.name for index in indexes.secondary_indexes("commerce_order")]
    assert len(names) == 2  # (customer, ordered_at) and (ordered_at); the unique key stays
    lines = indexes.secondary_indexes("commerce_orderline")
    assert len(lines) == 1 and "product_id" in lines[0].definition


def test_a_large_load_leaves_the_same_indexes():
    before = {t: indexes.secondary_indexes(t) for t in ("commerce_order", "commerce_orderline")}
    assert indexes.is_large_load("commerce_order", 2)  # nothing stored yet
    load_tables("orders", [orders_table([line("O1", "C1", "A"), line("O2", "C1", "B")])])
    after = {t: indexes.secondary_indexes(t) for t in before}
    assert after == before
    assert Order.objects.filter(customer__external_id="C1").count() == 2


def test_a_small_load_keeps_the_indexes_in_place():
    load_tables("orders", [orders_table([line("O{}".format(i), "C1", "A") for i in range(10)])])
    assert not indexes.is_large_load("commerce_order", 1)
    with indexes.set_aside("commerce_order", 1) as set_aside:
        assert set_aside == []
        assert len(indexes.secondary_indexes("commerce_order")) == 2


def test_indexes_are_rebuilt_by_a_rollback_when_the_load_fails():
    before = indexes.secondary_indexes("commerce_order")
    with (
        pytest.raises(RuntimeError),
        transaction.atomic(),
        indexes.set_aside("commerce_order", 1000) as set_aside,
    ):
        assert set_aside == before
        assert indexes.secondary_indexes("commerce_order") == []
        raise RuntimeError("the load failed")
    assert indexes.secondary_indexes("commerce_order") == before


def test_a_failed_import_leaves_records_and_indexes_as_they_were(tmp_path, monkeypatch):
    before = indexes.secondary_indexes("commerce_orderline")
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_id,ordered_at,sku,unit_price\nO1,C1,2024-03-01,A,10\n", encoding="utf-8"
    )

    def fail(*args, **kwargs):
        raise RuntimeError("the merge failed after the lines went in")

    monkeypatch.setattr("loyal.imports.services.AuditEntry.objects.create", fail)
    with pytest.raises(RuntimeError):
        import_file(path, "orders")
    assert (Order.objects.count(), OrderLine.objects.count()) == (0, 0)
    assert indexes.secondary_indexes("commerce_orderline") == before
