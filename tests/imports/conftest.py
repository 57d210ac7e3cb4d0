"""Fixtures for the file layer of imports: small files written by hand into tmp_path."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture(scope="session", autouse=True)
def _translations() -> None:
    """Messages go through gettext, which needs settings; the file layer needs nothing else.

    Under pytest-django the project's settings are already in place. Run alone
    (``pytest tests/imports -p no:django``), minimal settings are enough.
    """
    import django
    from django.conf import settings

    if not settings.configured and not os.environ.get("DJANGO_SETTINGS_MODULE"):
        settings.configure(USE_I18N=True, LANGUAGE_CODE="en", INSTALLED_APPS=[])
        django.setup()


@pytest.fixture
def csv_file(tmp_path: Path) -> Callable[..., Path]:
    """Write text to a CSV file: ``csv_file("orders.csv", "a,b\\n1,2\\n", encoding="gb18030")``."""

    def write(name: str, text: str, *, encoding: str = "utf-8") -> Path:
        path = tmp_path / name
        path.write_bytes(text.encode(encoding))
        return path

    return write


@pytest.fixture
def xlsx_file(tmp_path: Path) -> Callable[..., Path]:
    """Write rows (the first is the header) to the first sheet of an .xlsx workbook."""

    def write(
        name: str, rows: Sequence[Sequence[Any]], *, sheet: str = "Sheet1", extra_sheets: int = 0
    ) -> Path:
        from openpyxl import Workbook

        book = Workbook()
        worksheet = book.active
        worksheet.title = sheet
        for row in rows:
            worksheet.append(list(row))
        for index in range(extra_sheets):
            book.create_sheet(f"other{index}").append(["nothing"])
        path = tmp_path / name
        book.save(path)
        return path

    return write


def orders_csv(rows: Sequence[str], header: str | None = None) -> str:
    """An orders CSV from data lines under the usual header."""
    header = header or "order_id,customer_id,ordered_at,sku,quantity,unit_price"
    return "\n".join([header, *rows]) + "\n"
