"""Orders and lines keep their references without database constraints.

An order's customer and a line's order and product have no foreign-key constraint in the
database (see "Fact references" in ``loyal.commerce.models``): the loader must never write a
reference to a missing row, and the ORM must still cascade and protect.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.db.models import ProtectedError

from loyal.commerce.models import Order, OrderLine, Product
from loyal.customers.models import Customer
from loyal.imports.services import import_file, load_tables
from tests.conftest import at, orders_table

pytestmark = pytest.mark.django_db

_DANGLING = {
    "order.customer": "SELECT COUNT(*) FROM commerce_order o"
    " WHERE NOT EXISTS (SELECT 1 FROM customers_customer c WHERE c.id = o.customer_id)",
    "line.order": "SELECT COUNT(*) FROM commerce_orderline l"
    " WHERE NOT EXISTS (SELECT 1 FROM commerce_order o WHERE o.id = l.order_id)",
    "line.product": "SELECT COUNT(*) FROM commerce_orderline l"
    " WHERE NOT EXISTS (SELECT 1 FROM commerce_product p WHERE p.id = l.product_id)",
}


def dangling() -> dict[str, int]:
    """For each fact reference, the rows naming a row that does not exist."""
    counts = {}
    with connection.cursor() as cursor:
        for name, sql in _DANGLING.items():
            cursor.execute(sql)
            counts[name] = cursor.fetchone()[0]
    return counts


def line(order: str, customer: str, sku: str, day: int = 1) -> dict:
    return {
        "order_id": order,
        "customer_id": customer,
        "ordered_at": at(2024, 3, day),
        "sku": sku,
        "unit_price": "10",
    }


def test_loaded_orders_and_lines_reference_existing_rows_only():
    # New customers and products; one order's lines come in two tables (batches).
    load_tables(
        "orders",
        [
            orders_table([line("O1", "C1", "A"), line("O1", "C1", "B"), line("O2", "C2", "A")]),
            orders_table([line("O1", "C1", "C"), line("O3", "C1", "D", day=2)]),
        ],
    )
    # Again with fewer lines for O1, a new order of a known customer, a new customer and product.
    load_tables(
        "orders",
        [orders_table([line("O1", "C1", "A"), line("O4", "C2", "E"), line("O5", "C3", "A")])],
    )
    assert dangling() == {"order.customer": 0, "line.order": 0, "line.product": 0}
    assert Order.objects.count() == 5
    assert OrderLine.objects.count() == 7  # O1's three lines stay: a re-import never deletes


def test_skipped_rows_leave_no_line_without_its_order(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_id,ordered_at,sku,unit_price\n"
        "O1,C1,2024-03-01,A,10\n"
        "O1,C2,2024-03-01,B,10\n"  # disagrees with the order's first line: skipped
        "O2,C2,2024-13-45,A,10\n"  # a bad date: skipped, and O2 has no other line
        "O3,C2,2024-03-02,B,10\n",
        encoding="utf-8",
    )
    report = import_file(path, "orders", skip_invalid=True)
    assert report.rows_rejected == 2
    assert sorted(Order.objects.values_list("external_id", flat=True)) == ["O1", "O3"]
    assert OrderLine.objects.count() == 2
    assert dangling() == {"order.customer": 0, "line.order": 0, "line.product": 0}


def test_the_orm_still_cascades_and_protects():
    load_tables("orders", [orders_table([line("O1", "C1", "A"), line("O1", "C1", "B")])])
    with pytest.raises(ProtectedError):
        Product.objects.get(sku="A").delete()
    Customer.objects.get(external_id="C1").delete()
    assert (Order.objects.count(), OrderLine.objects.count()) == (0, 0)
    assert dangling() == {"order.customer": 0, "line.order": 0, "line.product": 0}
