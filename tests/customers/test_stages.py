"""Stage changes are kept as history and the journey can be replayed."""

from __future__ import annotations

import pytest

from loyal.accounts.models import AuditEntry
from loyal.customers.models import Customer
from loyal.customers.selectors import stage_history, stage_on
from loyal.customers.services import RecordError, change_stage
from tests.conftest import at

pytestmark = pytest.mark.django_db


def test_journey_is_replayed_from_history(staff):
    customer = Customer.objects.create(external_id="C1")
    change_stage(customer, "prospect", at=at(2024, 1, 1), reason="first contact")
    change_stage(customer, "customer", at=at(2024, 2, 1), reason="first order", by=staff)
    change_stage(
        customer, "churned", at=at(2024, 9, 1), origin="analysis", reason="no order in 180 days"
    )
    change_stage(customer, "won_back", at=at(2025, 1, 1), reason="ordered again")
    assert [(s.from_stage, s.to_stage) for s in stage_history(customer)] == [
        ("", "prospect"),
        ("prospect", "customer"),
        ("customer", "churned"),
        ("churned", "won_back"),
    ]
    assert stage_history(customer)[1].changed_by == "li.na"
    assert stage_on(customer, at(2023, 12, 1)) is None
    assert stage_on(customer, at(2024, 5, 1)) == "customer"
    assert stage_on(customer, at(2024, 12, 31)) == "churned"
    assert stage_on(customer, at(2025, 6, 1)) == "won_back"
    assert AuditEntry.objects.filter(action="customer.change_stage").count() == 4


def test_same_stage_again_is_not_a_change():
    customer = Customer.objects.create(external_id="C1")
    change_stage(customer, "customer", at=at(2024, 1, 1))
    assert change_stage(customer, "customer", at=at(2024, 2, 1)) is None
    assert len(stage_history(customer)) == 1


def test_unknown_stage_is_refused_with_the_choices():
    customer = Customer.objects.create(external_id="C1")
    with pytest.raises(RecordError, match="won_back"):
        change_stage(customer, "gone")
