"""Web pages. Until the web issue, a home page that shows what is loaded."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

from loyal.commerce.models import Order, Subscription
from loyal.customers.models import Customer, Interaction


def home(request: HttpRequest) -> HttpResponse:
    counts = {
        "customers": Customer.objects.count(),
        "orders": Order.objects.count(),
        "subscriptions": Subscription.objects.count(),
        "interactions": Interaction.objects.count(),
    }
    return render(request, "web/home.html", {"counts": counts})
