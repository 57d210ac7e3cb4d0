"""`loyal import` end to end: errors named by row and column, nothing half-written, idempotent."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from loyal.commerce.models import Order, OrderLine
from loyal.customers.models import Customer

HEADER = ["order_id", "customer_id", "ordered_at", "sku", "quantity", "unit_price"]


def write_orders(path: Path, bad: bool) -> Path:
    """Twelve data rows (spreadsheet rows 2–13); when ``bad``, row 7 has a bad date and row 12 no id."""
    rows = []
    for i in range(12):
        row_number = i + 2
        rows.append(
            [
                "" if bad and row_number == 12 else "O{}".format(i // 2),
                "C{}".format((i // 2) % 4),
                "2024-13-45" if bad and row_number == 7 else "2024-03-{:02d} 10:00".format(i + 1),
                "SKU{}".format(i % 3),
                "1",
                "9.90",
            ]
        )
    # Lines of one order must agree on the time: give each order the time of its first line.
    for i in range(1, 12, 2):
        if rows[i][2] != "2024-13-45" and rows[i - 1][2] != "2024-13-45":
            rows[i][2] = rows[i - 1][2]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return path


@pytest.mark.django_db
def test_bad_rows_are_named_and_nothing_is_written(tmp_path, capsys):
    path = write_orders(tmp_path / "orders.csv", bad=True)
    with pytest.raises(CommandError, match="nothing was imported"):
        call_command("import", "orders", str(path))
    errors = capsys.readouterr().err
    assert 'orders.csv, row 7, column "ordered_at"' in errors and "2024-13-45" in errors
    assert 'orders.csv, row 12, column "order_id"' in errors
    assert Order.objects.count() == 0 and Customer.objects.count() == 0
    assert not (tmp_path / "orders.rejected.csv").exists()


@pytest.mark.django_db
def test_skip_invalid_loads_the_rest_and_writes_the_rejects(tmp_path):
    path = write_orders(tmp_path / "orders.csv", bad=True)
    call_command("import", "orders", str(path), "--skip-invalid")
    assert OrderLine.objects.count() == 10
    with (tmp_path / "orders.rejected.csv").open(encoding="utf-8-sig") as handle:
        rejected = list(csv.DictReader(handle))
    assert [row["row"] for row in rejected] == ["7", "12"]
    assert "2024-13-45" in rejected[0]["errors"] and "ordered_at" in rejected[0]["errors"]
    assert "order_id" in rejected[1]["errors"]
    assert rejected[0]["ordered_at"] == "2024-13-45"  # the values as they were, to fix in place


@pytest.mark.django_db
def test_importing_the_same_file_twice_keeps_the_counts(tmp_path, capsys):
    path = write_orders(tmp_path / "orders.csv", bad=False)
    call_command("import", "orders", str(path))
    counts = (Customer.objects.count(), Order.objects.count(), OrderLine.objects.count())
    call_command("import", "orders", str(path))
    assert (
        (Customer.objects.count(), Order.objects.count(), OrderLine.objects.count())
        == counts
        == (4, 6, 12)
    )
    assert "0 created, 0 updated, 12 unchanged" in capsys.readouterr().out


@pytest.mark.django_db
def test_template_then_mapping_with_chinese_headers(tmp_path):
    template = tmp_path / "customers.csv"
    call_command("import", "--template", "customers", str(template))
    assert template.read_text(encoding="utf-8-sig").startswith("external_id,name")
    data = tmp_path / "客户.csv"
    data.write_text("客户编号,姓名,阶段\nC1,王芳,流失\n", encoding="gb18030")
    call_command(
        "import",
        "customers",
        str(data),
        "--map",
        "客户编号=external_id",
        "--map",
        "姓名=name",
        "--map",
        "阶段=stage",
    )
    customer = Customer.objects.get(external_id="C1")
    assert (customer.name, customer.stage) == ("王芳", "churned")


def test_command_line_exits_non_zero_without_traceback(tmp_path):
    if os.environ.get("LOYAL_DATABASE_URL"):
        pytest.skip("runs once, on its own SQLite file")
    env = {**os.environ, "LOYAL_DATA_DIR": str(tmp_path / "data")}
    path = write_orders(tmp_path / "orders.csv", bad=True)
    loyal = [sys.executable, "-m", "loyal"]
    subprocess.run([*loyal, "migrate", "-v", "0"], env=env, check=True)
    result = subprocess.run(
        [*loyal, "import", "orders", str(path)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 1
    assert "row 7" in result.stderr and "row 12" in result.stderr
    assert "Traceback" not in result.stderr
