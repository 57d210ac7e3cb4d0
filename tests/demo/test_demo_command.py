"""`loyal demo` loads the generated business through the import pipeline."""

from __future__ import annotations

import pytest
from django.core.management import call_command

from loyal.accounts.models import User
from loyal.commerce.models import Order, Subscription
from loyal.customers.models import Customer, StageChange
from loyal.customers.search import search_interactions


@pytest.mark.django_db
def test_demo_loads_a_business_once(capsys):
    call_command("demo", "--customers", "300", "--no-serve")
    assert Customer.objects.count() == 300
    assert Order.objects.exists() and Subscription.objects.exists()
    assert User.objects.get(username="admin").check_password("loyal-demo")
    assert StageChange.objects.count() >= 300  # every customer's journey has its first step
    assert search_interactions("退款").exists()
    assert "admin" in capsys.readouterr().out
    call_command("demo", "--customers", "300", "--no-serve")
    assert Customer.objects.count() == 300
    assert "already hold 300 customers" in capsys.readouterr().out
    call_command("demo", "--customers", "200", "--no-serve", "--reset", "--yes")
    assert Customer.objects.count() == 200
