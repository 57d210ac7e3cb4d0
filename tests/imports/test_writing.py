"""Writing templates, rejects files and exports, and reading them back."""

from __future__ import annotations

import csv
import datetime as dt
import json
from decimal import Decimal

import pyarrow as pa
import pytest

from loyal.imports import kinds
from loyal.imports.files import RowError, open_import, parse_table
from loyal.imports.writing import RejectsWriter, rejects_path, write_table, write_template
from tests.imports.conftest import orders_csv

UTC = dt.UTC
SHANGHAI = dt.timezone(dt.timedelta(hours=8))


def parsed_orders() -> pa.Table:
    """A few orders parsed from text: every column type of the orders kind."""
    table = pa.table(
        {
            "order_id": ["O1", "O1", "O2"],
            "customer_id": ["C1", "C1", "王芳"],
            "ordered_at": ["2024-03-05 14:30", "2024-03-05 14:30", "2024-03-06T08:00:00.250Z"],
            "status": ["paid", "paid", "refunded"],
            "line_no": ["1", "2", "1"],
            "sku": ["S1", "S2", "=HYPERLINK(1)"],
            "product_name": ["咖啡豆, 250g", 'say "hi"', "two\nlines"],
            "quantity": ["2", "1", ""],
            "unit_price": ["12.50", "1234.5678", "3"],
        }
    )
    batch = parse_table("orders", table)
    assert batch.errors == []
    return batch.valid.drop_columns([kinds.ROW_NUMBER])


def exported_orders(suffix: str) -> pa.Table:
    """What ``parsed_orders`` reads back as from an export: CSV and TSV keep "=..." as text."""
    table = parsed_orders()
    if suffix in (".csv", ".tsv"):
        sku = pa.array(["S1", "S2", "'=HYPERLINK(1)"])
        table = table.set_column(table.column_names.index("sku"), "sku", sku)
    return table


def read_back(path, **options) -> pa.Table:
    with open_import(path, "orders", **options) as file:
        batches = list(file.batches())
    assert all(batch.errors == [] for batch in batches)
    return pa.concat_tables([batch.valid for batch in batches]).drop_columns([kinds.ROW_NUMBER])


# --- Templates --------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".xlsx"])
@pytest.mark.parametrize("kind", list(kinds.KINDS))
def test_template_reads_back_with_zero_rows_and_no_error(tmp_path, kind, suffix):
    path = write_template(kind, tmp_path / f"{kind}{suffix}")
    with open_import(path, kind) as file:
        assert file.columns == kinds.KINDS[kind].column_names
        assert file.warnings == []
        rows = sum(batch.valid.num_rows + batch.rejected.num_rows for batch in file.batches())
    assert rows == 0


def test_csv_template_starts_with_a_bom_for_excel(tmp_path):
    path = write_template(kinds.ORDERS, tmp_path / "orders.csv")
    assert path.read_bytes() == ("\ufeff" + ",".join(kinds.ORDERS.column_names) + "\r\n").encode()


def test_xlsx_template_has_a_bold_header_and_a_help_sheet(tmp_path):
    from openpyxl import load_workbook

    path = write_template("customers", tmp_path / "customers.xlsx")
    book = load_workbook(path)
    assert book.sheetnames == ["customers", "help"]
    header = book["customers"][1]
    assert [cell.value for cell in header] == list(kinds.CUSTOMERS.column_names)
    assert all(cell.font.bold for cell in header)
    rows = {row[0]: row for row in book["help"].iter_rows(min_row=2, values_only=True) if row[0]}
    assert rows["external_id"][1:3] == ("text", "yes")
    assert rows["stage"][3].startswith("prospect, potential_intent, intent")
    assert "流失 = churned" in rows["stage"][3]
    assert rows["joined_at"][4] == kinds.CUSTOMERS.column("joined_at").help
    assert "attr.<name>" in rows


def test_template_refuses_other_suffixes(tmp_path):
    with pytest.raises(ValueError, match="use a .csv or .xlsx"):
        write_template("orders", tmp_path / "orders.json")


# --- Rejects ----------------------------------------------------------------------------------


def test_rejects_path_sits_beside_the_input(tmp_path):
    assert rejects_path(tmp_path / "订单.xlsx") == tmp_path / "订单.rejected.csv"


def test_rejects_file_holds_raw_values_row_and_every_reason(csv_file, tmp_path):
    path = csv_file(
        "orders.csv",
        orders_csv(
            [
                "O1,C1,2024-03-05,S1,1,9.90",
                "O2,C2,2024-13-45,S2,-1,9.90",
                "O3,C3,2024-03-05,S3,1,9.90,surplus",
                "O4,,2024-03-05,S4,1,九块",
            ]
        ),
    )
    target = rejects_path(path)
    with open_import(path, "orders") as file, RejectsWriter(target) as rejects:
        for batch in file.batches():
            rejects.write(batch.rejected, batch.errors)
    assert rejects.rows == 3
    raw = target.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf")
    with target.open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows[0] == [*file.file_columns, "row", "errors"]
    assert rows[1] == [
        "O2",
        "C2",
        "2024-13-45",
        "S2",
        "-1",
        "9.90",
        "3",
        'column "ordered_at": "2024-13-45" is not a date (expected e.g. 2024-03-05 or '
        '2024-03-05 14:30); column "quantity": "-1" is less than 0, the smallest value allowed',
    ]
    assert rows[2][:7] == ["O3", "C3", "2024-03-05", "S3", "1", "9.90,surplus", "4"]
    assert rows[2][7].startswith("the row has 7 values but the header has 6 columns")
    assert rows[3][:7] == ["O4", "", "2024-03-05", "S4", "1", "九块", "5"]
    assert rows[3][7] == (
        'column "customer_id": a value is required, but the cell is empty; '
        'column "unit_price": "九块" is not a number (expected e.g. 12.50, 1,234.50 or ¥12.50)'
    )


def test_rejects_writer_takes_a_parsed_batch_and_errors_without_rows(tmp_path):
    batch = parse_table(
        "customers", pa.table({"external_id": ["C1", "C2"], "stage": ["x", "intent"]})
    )
    later = RowError("c.csv", 3, "external_id", "C2", "appears twice")
    target = tmp_path / "c.rejected.csv"
    with RejectsWriter(target) as rejects:
        rejects.write(batch)
        rejects.write_errors([later])
    with target.open(encoding="utf-8-sig", newline="") as stream:
        rows = list(csv.reader(stream))
    assert rows == [
        ["external_id", "stage", "row", "errors"],
        [
            "C1",
            "x",
            "2",
            'column "stage": "x" is not one of the allowed values: ' + ", ".join(kinds.STAGES),
        ],
        ["", "", "3", 'column "external_id": appears twice'],
    ]


def test_rejects_writer_without_rows_writes_nothing(tmp_path):
    target = tmp_path / "clean.rejected.csv"
    batch = parse_table("customers", pa.table({"external_id": ["C1"]}))
    with RejectsWriter(target) as rejects:
        rejects.write(batch)
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []


def test_rejects_writer_failure_leaves_the_earlier_file(tmp_path):
    target = tmp_path / "c.rejected.csv"
    target.write_text("earlier")
    batch = parse_table("customers", pa.table({"external_id": [""]}))
    with pytest.raises(RuntimeError), RejectsWriter(target) as rejects:
        rejects.write(batch)
        raise RuntimeError("stop")
    assert target.read_text() == "earlier"
    assert list(tmp_path.iterdir()) == [target]


# --- Exports ----------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".xlsx", ".tsv"])
def test_write_table_round_trips_through_the_reader(tmp_path, suffix):
    table = parsed_orders()
    path = tmp_path / f"orders{suffix}"
    assert write_table(table.to_batches(max_chunksize=2), path) == 3
    assert read_back(path).equals(exported_orders(suffix))


def test_csv_export_is_utf8_with_bom_and_iso_times_in_the_display_zone(tmp_path):
    path = tmp_path / "orders.csv"
    write_table([parsed_orders()], path, timezone="Asia/Shanghai")
    text = path.read_bytes().decode("utf-8")
    assert text.startswith("\ufeff")
    assert '"2024-03-05T22:30:00+08:00"' in text
    assert '"2024-03-06T16:00:00.250000+08:00"' in text
    assert '"1234.5678"' in text and '"12.5"' in text
    assert read_back(path).equals(exported_orders(".csv"))


@pytest.mark.parametrize(("suffix", "delimiter"), [(".csv", ","), (".tsv", "\t")])
def test_csv_export_keeps_formulas_as_text_but_not_numbers(tmp_path, suffix, delimiter):
    texts = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tx", "\rx", "-", "-12.5", "+3", "-.5e3"]
    others = ["a=b", " =x", "", None, "12", "'=quoted"]
    table = pa.table(
        {
            "name": texts + others,
            "amount": pa.array([Decimal("-12.5")] * 16, pa.decimal128(18, 4)),
            "count": pa.array([-3] * 16, pa.int64()),
        }
    )
    path = tmp_path / f"people{suffix}"
    assert write_table([table], path) == 16
    with path.open(encoding="utf-8-sig", newline="") as stream:
        header, *rows = list(csv.reader(stream, delimiter=delimiter))
    assert header == ["name", "amount", "count"]
    assert [row[0] for row in rows] == [
        "'=1+1",
        "'+SUM(A1)",
        "'-2+3",
        "'@cmd",
        "'\tx",
        "'\rx",
        "'-",
        "-12.5",
        "+3",
        "-.5e3",
        "a=b",
        " =x",
        "",
        "",
        "12",
        "'=quoted",
    ]
    assert {(row[1], row[2]) for row in rows} == {("-12.5", "-3")}


@pytest.mark.parametrize("suffix", [".json", ".jsonl"])
def test_json_export_has_iso_times_and_decimals_as_strings(tmp_path, suffix):
    path = tmp_path / f"orders{suffix}"
    write_table(parsed_orders().to_batches(max_chunksize=1), path, timezone="Asia/Shanghai")
    text = path.read_text(encoding="utf-8")
    if suffix == ".json":
        rows = json.loads(text)
    else:
        rows = [json.loads(line) for line in text.splitlines()]
    assert len(rows) == 3
    assert rows[0] == {
        "order_id": "O1",
        "customer_id": "C1",
        "ordered_at": "2024-03-05T22:30:00+08:00",
        "status": "paid",
        "line_no": 1,
        "sku": "S1",
        "product_name": "咖啡豆, 250g",
        "quantity": "2",
        "unit_price": "12.5",
    }
    assert rows[2]["quantity"] is None
    assert dt.datetime.fromisoformat(rows[2]["ordered_at"]) == dt.datetime(
        2024, 3, 6, 8, 0, 0, 250000, tzinfo=UTC
    )


def test_empty_json_export_is_an_empty_array(tmp_path):
    path = tmp_path / "none.json"
    assert write_table([], path) == 0
    assert json.loads(path.read_text()) == []


def test_xlsx_export_has_naive_datetimes_in_the_display_zone_and_text_stays_text(tmp_path):
    from openpyxl import load_workbook

    path = tmp_path / "orders.xlsx"
    write_table([parsed_orders()], path, timezone="Asia/Shanghai")
    sheet = load_workbook(path).active
    header, first, _second, third = sheet.iter_rows()
    assert header[0].font.bold
    assert first[2].value == dt.datetime(2024, 3, 5, 22, 30)
    assert first[2].is_date
    assert first[8].value == 12.5
    assert third[5].value == "=HYPERLINK(1)" and third[5].data_type == "s"
    # Read back in the same zone, the times are the same instants.
    assert (
        read_back(path, timezone="Asia/Shanghai")
        .column("ordered_at")
        .equals(parsed_orders().column("ordered_at"))
    )


def test_a_failed_export_leaves_nothing_behind(tmp_path):
    path = tmp_path / "orders.csv"
    path.write_text("previous export")

    def batches():
        yield parsed_orders()
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError):
        write_table(batches(), path)
    assert path.read_text() == "previous export"
    assert list(tmp_path.iterdir()) == [path]


def test_write_table_format_option_and_unknown_suffix(tmp_path):
    path = tmp_path / "orders.data"
    with pytest.raises(ValueError, match="use a .csv"):
        write_table([parsed_orders()], path)
    write_table([parsed_orders()], path, format="jsonl")
    assert len(path.read_text().splitlines()) == 3


def test_export_of_other_types_and_header_without_rows(tmp_path):
    table = pa.table(
        {
            "day": pa.array([dt.date(2024, 3, 5)]),
            "naive": pa.array([dt.datetime(2024, 3, 5, 1, 2, 3)]),
            "tags": pa.array([["a", "b"]]),
            "label": pa.array(["x"]).dictionary_encode(),
            "share": pa.array([float("nan")]),
        }
    )
    path = tmp_path / "other.json"
    write_table([table], path)
    assert json.loads(path.read_text()) == [
        {
            "day": "2024-03-05",
            "naive": "2024-03-05T01:02:03",
            "tags": '["a", "b"]',
            "label": "x",
            "share": None,
        }
    ]
    empty = tmp_path / "empty.csv"
    write_table([], empty, schema=table.schema)
    assert empty.read_text(encoding="utf-8-sig") == '"day","naive","tags","label","share"\n'
    assert Decimal  # decimals are covered by the orders round trips
