"""Loading the demo store: staff, then the generated business through the import pipeline."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection, transaction

from loyal.accounts.models import Role, User
from loyal.demo.generator import generate, staff_usernames
from loyal.imports.services import load_tables

DEMO_ADMIN = "admin"
DEMO_PASSWORD = "loyal-demo"

# Child tables first, so a wipe never breaks a foreign key.
RECORD_TABLES = (
    "customers_customer_tags",
    "customers_tag",
    "customers_contactpoint",
    "customers_stagechange",
    "customers_consent",
    "customers_interaction",
    "commerce_behaviourevent",
    "commerce_orderline",
    "commerce_order",
    "commerce_subscription",
    "commerce_product",
    "commerce_category",
    "customers_customer",
    "accounts_auditentry",
)


@dataclass(frozen=True)
class DemoLoad:
    rows: dict[str, int]
    seconds: float


def ensure_staff() -> None:
    """The demo's admin (password DEMO_PASSWORD) and the agents named in the generated records."""
    admin, _ = User.objects.get_or_create(
        username=DEMO_ADMIN, defaults={"role": Role.ADMIN, "is_staff": True, "is_superuser": True}
    )
    admin.set_password(DEMO_PASSWORD)
    admin.save()
    for username in staff_usernames():
        User.objects.get_or_create(username=username, defaults={"role": Role.AGENT})


@transaction.atomic
def wipe_records() -> None:
    """Delete every customer record (customers, orders, events...), keeping staff users."""
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Django defers foreign-key checks; TRUNCATE refuses to run while some are pending.
            cursor.execute("SET CONSTRAINTS ALL IMMEDIATE")
            cursor.execute("TRUNCATE {} RESTART IDENTITY CASCADE".format(", ".join(RECORD_TABLES)))
        else:
            for table in RECORD_TABLES:
                cursor.execute("DELETE FROM {}".format(table))
            if connection.vendor == "sqlite":
                names = ", ".join("'{}'".format(t) for t in RECORD_TABLES)
                cursor.execute("DELETE FROM sqlite_sequence WHERE name IN ({})".format(names))


def load_demo(
    customers: int,
    *,
    seed: int,
    as_of: dt.datetime | None = None,
    on_customers: Callable[[int], None] | None = None,
) -> DemoLoad:
    """Generate the demo business and load it, a chunk of customers at a time."""
    start = dt.datetime.now()
    ensure_staff()
    rows: dict[str, int] = {}
    options = {"seed": seed} if as_of is None else {"seed": seed, "as_of": as_of}
    for kind, table in generate(customers, **options):
        load_tables(kind, [table], label="demo")
        rows[kind] = rows.get(kind, 0) + table.num_rows
        if kind == "customers" and on_customers is not None:
            on_customers(table.num_rows)
    return DemoLoad(rows=rows, seconds=(dt.datetime.now() - start).total_seconds())


def database_size() -> int | None:
    """Bytes the records take on disk (None when unknown)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_database_size(current_database())")
            return cursor.fetchone()[0]
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("PRAGMA page_count")
            pages = cursor.fetchone()[0]
            cursor.execute("PRAGMA page_size")
            return pages * cursor.fetchone()[0]
    return None
