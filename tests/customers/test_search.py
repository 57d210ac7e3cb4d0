"""Full-text search over interactions, Chinese included, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from loyal.customers.models import Customer
from loyal.customers.search import search_interactions, search_terms
from loyal.customers.services import record_interaction
from tests.conftest import at


def test_chinese_text_is_indexed_as_overlapping_pairs():
    assert search_terms("申请退款 Refund!") == ["申请", "请退", "退款", "refund"]
    assert search_terms("好") == ["好"]


@pytest.mark.django_db
def test_two_character_word_finds_every_message_containing_it():
    customer = Customer.objects.create(external_id="C1", name="李娜")
    texts = {
        "a": "客户要求退款，已处理",
        "b": "退款",
        "c": "我想申请退款。谢谢",
        "d": "物流太慢，想退货",
        "e": "Asked for a refund",
    }
    for i, text in enumerate(texts.values()):
        record_interaction(customer, kind="chat", occurred_at=at(2024, 1, i + 1), body=text)
    found = set(search_interactions("退款").values_list("body", flat=True))
    assert found == {texts["a"], texts["b"], texts["c"]}
    assert set(search_interactions("退").values_list("body", flat=True)) == {
        texts["a"],
        texts["b"],
        texts["c"],
        texts["d"],
    }
    assert set(search_interactions("REFUND").values_list("body", flat=True)) == {texts["e"]}
    assert list(search_interactions("申请退款").values_list("body", flat=True)) == [texts["c"]]
    assert not search_interactions("退款 refund").exists()


@pytest.mark.django_db
def test_sqlite_index_is_repaired_after_a_migration_rebuilt_the_table():
    from django.db import connection

    from loyal.customers.search import ensure_search_index

    if connection.vendor != "sqlite":
        pytest.skip("only SQLite rebuilds tables in migrations")
    customer = Customer.objects.create(external_id="C1")
    record_interaction(customer, kind="chat", occurred_at=at(2024, 1, 1), body="申请退款")
    with connection.cursor() as cursor:  # what a table rebuild leaves behind
        cursor.execute("DROP TRIGGER customers_interaction_fts_insert")
    record_interaction(customer, kind="chat", occurred_at=at(2024, 1, 2), body="退款到账了吗")
    ensure_search_index()
    record_interaction(customer, kind="chat", occurred_at=at(2024, 1, 3), body="还没退款")
    assert search_interactions("退款").count() == 3
