"""What customers buy and do: products, orders, subscriptions and behaviour events (R3, R4)."""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

from loyal.customers.models import DEFAULT_SOURCE, Customer

MONEY = {"max_digits": 14, "decimal_places": 2}


class Category(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)

    class Meta:
        verbose_name = _("category")
        verbose_name_plural = _("categories")
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Product(models.Model):
    sku = models.CharField(_("SKU"), max_length=100, unique=True)
    name = models.CharField(_("name"), max_length=200, blank=True)
    category = models.ForeignKey(
        Category, null=True, blank=True, on_delete=models.SET_NULL, related_name="products"
    )
    price = models.DecimalField(_("price"), null=True, blank=True, **MONEY)
    unit_cost = models.DecimalField(_("unit cost"), null=True, blank=True, **MONEY)

    class Meta:
        verbose_name = _("product")
        verbose_name_plural = _("products")
        ordering = ["sku"]

    def __str__(self) -> str:
        return self.name or self.sku


# Fact references: an order's customer and a line's order and product have no foreign-key
# constraint in the database. Imports write millions of these rows and the database checks a
# constraint row by row: on PostgreSQL the deferred checks took a third of an import's time
# (SET CONSTRAINTS IMMEDIATE or NOT DEFERRABLE only move the same work). The writers keep the
# integrity instead: the loader (``loyal.imports.merging``) inserts orders and lines through
# inner joins on their customer, order and product, so it cannot write a dangling reference
# (``tests/imports/test_fact_references.py``); deletes go through the ORM, which cascades and
# protects as ``on_delete`` says.


class Order(models.Model):
    """An order; ``revenue`` and ``cost`` are the sums of its lines, kept for fast reads."""

    class Status(models.TextChoices):
        PAID = "paid", _("Paid")
        REFUNDED = "refunded", _("Refunded")
        CANCELLED = "cancelled", _("Cancelled")

    source = models.CharField(_("source"), max_length=50, default=DEFAULT_SOURCE)
    external_id = models.CharField(_("external id"), max_length=100)
    # Indexed by (customer, ordered_at); a separate index would only slow bulk loads.
    # No foreign-key constraint in the database (see "Fact references" above ``Order``).
    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="orders",
        db_index=False,
        db_constraint=False,
    )
    ordered_at = models.DateTimeField(_("ordered at"))
    status = models.CharField(
        _("status"), max_length=20, choices=Status.choices, default=Status.PAID
    )
    channel = models.CharField(_("channel"), max_length=100, blank=True)
    revenue = models.DecimalField(_("revenue"), default=0, **MONEY)
    cost = models.DecimalField(_("cost"), default=0, **MONEY)

    class Meta:
        verbose_name = _("order")
        verbose_name_plural = _("orders")
        ordering = ["-ordered_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"], name="order_unique_external_id"
            )
        ]
        indexes = [
            models.Index(fields=["customer", "ordered_at"]),
            models.Index(fields=["ordered_at"]),
        ]

    def __str__(self) -> str:
        return self.external_id

    @property
    def margin(self):
        return self.revenue - self.cost


class OrderLine(models.Model):
    """One product on an order: quantity × unit price − discount, and the cost, so margin is known."""

    # Indexed by the (order, line_no) unique constraint. No foreign-key constraints in the
    # database on order and product (see "Fact references" above ``Order``).
    order = models.ForeignKey(
        Order, on_delete=models.CASCADE, related_name="lines", db_index=False, db_constraint=False
    )
    line_no = models.PositiveIntegerField(_("line"))
    product = models.ForeignKey(
        Product, on_delete=models.PROTECT, related_name="order_lines", db_constraint=False
    )
    quantity = models.DecimalField(_("quantity"), max_digits=14, decimal_places=4, default=1)
    unit_price = models.DecimalField(_("unit price"), **MONEY)
    discount = models.DecimalField(_("discount"), default=0, **MONEY)
    unit_cost = models.DecimalField(_("unit cost"), null=True, blank=True, **MONEY)

    class Meta:
        verbose_name = _("order line")
        verbose_name_plural = _("order lines")
        ordering = ["order", "line_no"]
        constraints = [
            models.UniqueConstraint(fields=["order", "line_no"], name="order_line_unique_no")
        ]

    def __str__(self) -> str:
        return "{} #{}".format(self.order_id, self.line_no)


class Subscription(models.Model):
    """A contract that renews every period until it ends: a membership, a card, a SaaS plan."""

    class Period(models.TextChoices):
        MONTH = "month", _("Month")
        QUARTER = "quarter", _("Quarter")
        YEAR = "year", _("Year")

    source = models.CharField(_("source"), max_length=50, default=DEFAULT_SOURCE)
    external_id = models.CharField(_("external id"), max_length=100)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="subscriptions", db_index=False
    )  # indexed by (customer, started_at)
    plan = models.CharField(_("plan"), max_length=100)
    amount = models.DecimalField(_("recurring amount"), **MONEY)
    period = models.CharField(
        _("billing period"), max_length=10, choices=Period.choices, default=Period.MONTH
    )
    started_at = models.DateTimeField(_("started at"))
    ended_at = models.DateTimeField(_("ended at"), null=True, blank=True)
    cancellation_reason = models.CharField(_("cancellation reason"), max_length=200, blank=True)

    class Meta:
        verbose_name = _("subscription")
        verbose_name_plural = _("subscriptions")
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["source", "external_id"], name="subscription_unique_external_id"
            )
        ]
        indexes = [models.Index(fields=["customer", "started_at"])]

    def __str__(self) -> str:
        return "{} {}".format(self.external_id, self.plan)


class BehaviourEvent(models.Model):
    """A page view, click or other event on the business's site or app.

    These can be tens of millions: the row is narrow, written in bulk, and indexed only by what
    reads need (per customer in time order) and what idempotent imports need (the key).
    """

    source = models.CharField(_("source"), max_length=50, default=DEFAULT_SOURCE)
    # The event id in the source system, or a digest of the row when the source has none.
    key = models.CharField(_("key"), max_length=100)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="events", db_index=False
    )  # indexed by (customer, occurred_at)
    occurred_at = models.DateTimeField(_("occurred at"))
    session_id = models.CharField(_("session"), max_length=100, blank=True)
    event_type = models.CharField(_("event type"), max_length=50, default="view")
    page = models.CharField(_("page or module"), max_length=200, blank=True)
    dwell_seconds = models.FloatField(_("dwell seconds"), null=True, blank=True)

    class Meta:
        verbose_name = _("behaviour event")
        verbose_name_plural = _("behaviour events")
        constraints = [models.UniqueConstraint(fields=["source", "key"], name="event_unique_key")]
        indexes = [models.Index(fields=["customer", "occurred_at"])]

    def __str__(self) -> str:
        return "{} {} {}".format(self.customer_id, self.event_type, self.occurred_at)
