"""Shared fixtures: small factory functions for records."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pytest

UTC = dt.UTC


def at(year: int, month: int, day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, tzinfo=UTC)


def customers_table(rows: list[dict]) -> pa.Table:
    """Parsed customers rows (canonical columns) from dicts; missing columns are left out."""
    from loyal.imports import kinds

    return _table(kinds.CUSTOMERS, rows)


def orders_table(rows: list[dict]) -> pa.Table:
    from loyal.imports import kinds

    return _table(kinds.ORDERS, rows)


def kind_table(kind_name: str, rows: list[dict]) -> pa.Table:
    from loyal.imports import kinds

    return _table(kinds.KINDS[kind_name], rows)


def _table(kind, rows: list[dict]) -> pa.Table:
    from loyal.imports import kinds

    names = [c.name for c in kind.columns if any(c.name in row for row in rows)]
    fields = [kinds.arrow_field(kind.column(name)) for name in names]
    columns = {}
    for field in fields:
        values = [row.get(field.name) for row in rows]
        if pa.types.is_decimal(field.type):
            values = [None if v is None else Decimal(str(v)) for v in values]
        columns[field.name] = pa.array(values, field.type)
    return pa.table(columns)


@pytest.fixture
def staff(db):
    from loyal.accounts.models import User

    return User.objects.create_user(username="li.na", password="x", role="agent")
