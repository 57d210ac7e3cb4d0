"""The loader: staged rows merged into the records, idempotently, with cross-row checks."""

from __future__ import annotations

from decimal import Decimal

import pytest

from loyal.commerce.models import Order, OrderLine, Product
from loyal.customers.models import ContactPoint, Customer, StageChange
from loyal.imports.services import ImportRefused, load_tables
from tests.conftest import at, customers_table, kind_table, orders_table

pytestmark = pytest.mark.django_db


def test_customers_load_once_and_reimport_changes_nothing(staff):
    table = customers_table(
        [
            {
                "external_id": "C1",
                "name": "王芳",
                "email": "wf@example.cn",
                "stage": "customer",
                "owner": "li.na",
                "tags": "vip;newsletter",
                "joined_at": at(2024, 1, 5),
            },
            {"external_id": "C2", "name": "Emma Smith", "stage": "prospect"},
        ]
    )
    first = load_tables("customers", [table])
    assert (first.created, first.updated, first.unchanged) == (2, 0, 0)
    second = load_tables("customers", [table])
    assert (second.created, second.updated, second.unchanged) == (0, 0, 2)
    wang = Customer.objects.get(external_id="C1")
    assert wang.name == "王芳"
    assert wang.owner == staff
    assert sorted(wang.tags.values_list("name", flat=True)) == ["newsletter", "vip"]
    assert ContactPoint.objects.get(customer=wang, kind="email").value == "wf@example.cn"
    assert Customer.objects.count() == 2
    assert StageChange.objects.count() == 2  # the first step of each journey, once


def test_stage_change_on_reimport_is_kept_in_history():
    load_tables(
        "customers",
        [
            customers_table(
                [{"external_id": "C1", "stage": "prospect", "joined_at": at(2024, 1, 1)}]
            )
        ],
    )
    result = load_tables(
        "customers", [customers_table([{"external_id": "C1", "stage": "customer"}])]
    )
    assert result.updated == 1
    steps = list(
        StageChange.objects.filter(customer__external_id="C1").values_list(
            "from_stage", "to_stage", "origin"
        )
    )
    assert steps == [("", "prospect", "import"), ("prospect", "customer", "import")]
    assert Customer.objects.get(external_id="C1").stage == "customer"


def test_unknown_owner_is_refused_with_its_row():
    with pytest.raises(ImportRefused, match="row 2.*nobody"):
        load_tables("customers", [customers_table([{"external_id": "C1", "owner": "nobody"}])])
    assert Customer.objects.count() == 0


def test_orders_create_customers_products_and_sums():
    rows = [
        {
            "order_id": "O1",
            "customer_id": "C9",
            "ordered_at": at(2024, 3, 1),
            "sku": "BEAN-1",
            "product_name": "咖啡豆",
            "category": "coffee",
            "quantity": 2,
            "unit_price": "50.00",
            "discount": "5",
            "unit_cost": "20",
        },
        {
            "order_id": "O1",
            "customer_id": "C9",
            "ordered_at": at(2024, 3, 1),
            "sku": "FILTER",
            "category": "coffee",
            "unit_price": "10",
        },
    ]
    result = load_tables("orders", [orders_table(rows)])
    assert (result.created, result.also_created["customers"], result.also_created["products"]) == (
        2,
        1,
        2,
    )
    order = Order.objects.get(external_id="O1")
    assert order.revenue == Decimal("105.00")  # 2 × 50 − 5 + 1 × 10
    assert order.cost == Decimal("40.00")  # 2 × 20 (the filter's cost is unknown)
    assert list(OrderLine.objects.filter(order=order).values_list("line_no", flat=True)) == [1, 2]
    assert Customer.objects.get(external_id="C9").stage == "customer"
    assert Product.objects.get(sku="BEAN-1").category.name == "coffee"
    again = load_tables("orders", [orders_table(rows)])
    assert (again.created, again.updated, again.unchanged) == (0, 0, 2)


def test_order_lines_that_disagree_on_the_customer_are_refused():
    rows = [
        {
            "order_id": "O1",
            "customer_id": "C1",
            "ordered_at": at(2024, 3, 1),
            "sku": "A",
            "unit_price": "1",
        },
        {
            "order_id": "O1",
            "customer_id": "C2",
            "ordered_at": at(2024, 3, 1),
            "sku": "B",
            "unit_price": "1",
        },
    ]
    with pytest.raises(ImportRefused, match="row 3"):
        load_tables("orders", [orders_table(rows)])
    assert Order.objects.count() == 0


def test_events_without_ids_are_identified_by_content():
    event = {
        "customer_id": "C1",
        "occurred_at": at(2024, 5, 1, 9),
        "event_type": "view",
        "page": "home",
    }
    result = load_tables(
        "events", [kind_table("events", [event, event, {**event, "page": "cart"}])]
    )
    assert result.created == 2
    assert load_tables("events", [kind_table("events", [event])]).created == 0


def test_subscription_ending_before_it_starts_is_refused():
    row = {
        "subscription_id": "S1",
        "customer_id": "C1",
        "plan": "plus",
        "amount": "30",
        "started_at": at(2024, 5, 1),
        "ended_at": at(2024, 4, 1),
    }
    with pytest.raises(ImportRefused, match="ends before it starts"):
        load_tables("subscriptions", [kind_table("subscriptions", [row])])


def test_orders_give_a_first_stage_step_only_to_the_customers_they_create():
    Customer.objects.create(external_id="C1", stage="customer")  # known, without any history
    row = {"ordered_at": at(2024, 3, 1), "sku": "A", "unit_price": "1"}
    result = load_tables(
        "orders",
        [
            orders_table(
                [
                    {**row, "order_id": "O1", "customer_id": "C1"},
                    {**row, "order_id": "O2", "customer_id": "C2"},
                    {**row, "order_id": "O3", "customer_id": "C2"},
                ]
            )
        ],
    )
    assert result.also_created["customers"] == 1
    steps = list(StageChange.objects.values_list("customer__external_id", "to_stage", "changed_at"))
    assert steps == [("C2", "customer", at(2024, 3, 1))]  # joined with its first order


def test_orders_summaries_span_batches():
    row = {"ordered_at": at(2024, 3, 1), "customer_id": "C1", "unit_price": "1"}
    first = orders_table([{**row, "order_id": "O1", "sku": "A", "product_name": "Alpha"}])
    second = orders_table(
        [
            {**row, "order_id": "O2", "sku": "A", "category": "tea", "unit_cost": "0.5"},
            {**row, "order_id": "O3", "sku": "B", "ordered_at": at(2024, 2, 1)},
        ]
    )
    result = load_tables("orders", [first, second])
    assert (result.also_created["products"], result.also_created["categories"]) == (2, 1)
    alpha = Product.objects.get(sku="A")
    assert (alpha.name, alpha.category.name, alpha.unit_cost) == ("Alpha", "tea", Decimal("0.5"))
    assert Customer.objects.get(external_id="C1").joined_at == at(2024, 2, 1)


def test_skipped_lines_create_no_customer_or_product(tmp_path):
    from loyal.imports.services import import_file

    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_id,ordered_at,sku,category,unit_price\n"
        "O1,C1,2024-03-01,A,tea,10\n"
        "O1,C9,2024-03-01,Z,cups,10\n",  # disagrees with the order's first line: skipped
        encoding="utf-8",
    )
    report = import_file(path, "orders", skip_invalid=True)
    assert report.rows_rejected == 1
    assert list(Customer.objects.values_list("external_id", flat=True)) == ["C1"]
    assert list(Product.objects.values_list("sku", flat=True)) == ["A"]
    assert report.result.also_created == {
        "categories": 1,
        "products": 1,
        "customers": 1,
        "orders": 1,
    }


def test_reimported_orders_write_only_what_changed_and_keep_their_sums():
    row = {"customer_id": "C1", "ordered_at": at(2024, 3, 1), "sku": "A", "unit_price": "10"}
    load_tables(
        "orders",
        [orders_table([{**row, "order_id": "O1"}, {**row, "order_id": "O1"}])],
    )
    changed = [
        {**row, "order_id": "O1", "unit_price": "12"},  # line 1 costs more now
        {**row, "order_id": "O1"},  # line 2 as before
        {**row, "order_id": "O2"},  # a new order
    ]
    result = load_tables("orders", [orders_table(changed)])
    assert (result.created, result.updated, result.unchanged) == (1, 1, 1)
    assert result.also_created["orders"] == 1
    assert Order.objects.get(external_id="O1").revenue == Decimal("22.00")
    only_first = load_tables(
        "orders", [orders_table([{**row, "order_id": "O1", "unit_price": "11"}])]
    )
    assert (only_first.created, only_first.updated) == (0, 1)
    # The order's sums come from all its lines, not only from those in the file.
    assert Order.objects.get(external_id="O1").revenue == Decimal("21.00")


def test_lines_without_numbers_are_numbered_across_batches():
    row = {"customer_id": "C1", "ordered_at": at(2024, 3, 1), "unit_price": "1"}
    first = orders_table(
        [{**row, "order_id": "O1", "sku": "A"}, {**row, "order_id": "O2", "sku": "B"}]
    )
    second = orders_table(
        [{**row, "order_id": "O2", "sku": "C"}, {**row, "order_id": "O1", "sku": "D"}]
    )
    load_tables("orders", [first, second])
    numbered = OrderLine.objects.order_by("order__external_id", "line_no").values_list(
        "order__external_id", "line_no", "product__sku"
    )
    assert list(numbered) == [("O1", 1, "A"), ("O1", 2, "D"), ("O2", 1, "B"), ("O2", 2, "C")]


def test_lines_after_a_skipped_line_are_numbered_without_it(tmp_path):
    from loyal.imports.services import import_file

    path = tmp_path / "orders.csv"
    path.write_text(
        "order_id,customer_id,ordered_at,sku,unit_price\n"
        "O1,C1,2024-03-01,A,10\n"
        "O1,C9,2024-03-01,B,10\n"  # disagrees with the order's first line: skipped
        "O1,C1,2024-03-01,C,10\n",
        encoding="utf-8",
    )
    import_file(path, "orders", skip_invalid=True)
    numbered = OrderLine.objects.order_by("line_no").values_list("line_no", "product__sku")
    assert list(numbered) == [(1, "A"), (2, "C")]


def test_order_cost_takes_the_products_cost_for_lines_without_one():
    row = {"ordered_at": at(2024, 3, 1), "customer_id": "C1", "unit_price": "1"}
    rows = [
        {**row, "order_id": "O1", "sku": "A", "quantity": 2},  # costs what product A costs
        {**row, "order_id": "O1", "sku": "B", "unit_cost": "3"},
        {**row, "order_id": "O2", "sku": "A", "unit_cost": "0.5"},  # product A costs 0.5
    ]
    load_tables("orders", [orders_table(rows)])
    costs = dict(Order.objects.values_list("external_id", "cost"))
    assert costs == {"O1": Decimal("4.00"), "O2": Decimal("0.50")}
    again = load_tables("orders", [orders_table(rows)])
    assert (again.created, again.updated, again.unchanged) == (0, 0, 3)
