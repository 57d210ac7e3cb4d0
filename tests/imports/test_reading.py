"""Reading users' CSV and Excel files: encodings, headers, every type, every error, streaming."""

from __future__ import annotations

import datetime as dt
import json
import threading
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest

from loyal.imports import kinds
from loyal.imports.files import (
    ImportFileError,
    RowError,
    TableParser,
    load_mapping,
    open_import,
    parse_table,
)
from loyal.imports.reading import read_ahead
from tests.imports.conftest import orders_csv

UTC = dt.UTC


def read_all(path: Path, kind: str, **options):
    """Every batch of a file joined: (valid table, rejected table, errors, warnings)."""
    with open_import(path, kind, **options) as file:
        batches = list(file.batches())
        warnings = file.warnings
    if not batches:
        return None, None, [], warnings
    valid = pa.concat_tables([batch.valid for batch in batches])
    rejected = pa.concat_tables([batch.rejected for batch in batches])
    errors = [error for batch in batches for error in batch.errors]
    return valid, rejected, errors, warnings


def one_value(kind: str, column: str, text: str, **options):
    """Parse one cell of ``column`` in a minimal valid row; returns (value, errors)."""
    base = {
        "orders": {
            "order_id": "O1",
            "customer_id": "C1",
            "ordered_at": "2024-03-05",
            "sku": "S1",
            "unit_price": "1",
        },
        "customers": {"external_id": "C1"},
        "events": {"customer_id": "C1", "occurred_at": "2024-03-05"},
        "consents": {
            "customer_id": "C1",
            "channel": "sms",
            "opted_in": "yes",
            "recorded_at": "2024-03-05",
        },
    }[kind]
    row = {**base, column: text}
    table = pa.table({name: pa.array([value], pa.string()) for name, value in row.items()})
    batch = parse_table(kind, table, file_name="t.csv", **options)
    if batch.errors:
        return None, batch.errors
    return batch.valid.column(column)[0].as_py(), []


# --- Encodings, delimiters, formats ---------------------------------------------------------


def test_utf8_csv_with_bom_reads_typed_columns_and_spreadsheet_row_numbers(csv_file):
    path = csv_file(
        "orders.csv",
        "\ufeff"
        + orders_csv(
            [
                "O1,C1,2024-03-05 14:30:00,SKU-1,2,12.50",
                "O2,C2,2024-03-06,SKU-2,1,3",
            ]
        ),
    )
    valid, rejected, errors, warnings = read_all(path, "orders")
    assert errors == [] and warnings == [] and rejected.num_rows == 0
    assert valid.column_names == [
        "order_id",
        "customer_id",
        "ordered_at",
        "sku",
        "quantity",
        "unit_price",
        kinds.ROW_NUMBER,
    ]
    assert valid.schema.field("ordered_at").type == pa.timestamp("us", tz="UTC")
    assert valid.schema.field("unit_price").type == pa.decimal128(18, 4)
    assert valid.column("order_id").to_pylist() == ["O1", "O2"]
    assert valid.column("ordered_at").to_pylist() == [
        dt.datetime(2024, 3, 5, 14, 30, tzinfo=UTC),
        dt.datetime(2024, 3, 6, tzinfo=UTC),
    ]
    assert valid.column("unit_price").to_pylist() == [Decimal("12.5"), Decimal("3")]
    assert valid.column(kinds.ROW_NUMBER).to_pylist() == [2, 3]


def test_gb18030_file_with_chinese_names_is_detected(csv_file):
    path = csv_file(
        "客户.csv",
        "external_id,name,city\nC1,王芳,北京\nC2,欧阳娜娜,上海\n",
        encoding="gb18030",
    )
    with open_import(path, "customers") as file:
        assert file.encoding == "gb18030"
        (batch,) = file.batches()
    assert batch.valid.column("name").to_pylist() == ["王芳", "欧阳娜娜"]
    assert batch.valid.column("city").to_pylist() == ["北京", "上海"]


def test_explicit_encoding_overrides_detection(csv_file):
    text = "external_id,name\nC1,Zoë\n"
    path = csv_file("customers.csv", text, encoding="latin-1")
    valid, _, errors, _ = read_all(path, "customers", encoding="latin-1")
    assert errors == [] and valid.column("name").to_pylist() == ["Zoë"]


def test_text_that_is_neither_utf8_nor_gb18030_is_refused(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_bytes(b"external_id,name\nC1,\xff\xfe\xff\n")
    with pytest.raises(ImportFileError, match=r"customers\.csv.*neither UTF-8 nor GB18030"):
        open_import(path, "customers")


def test_excel_unicode_text_export_is_read(tmp_path):
    # Excel's "Unicode Text" is UTF-16 with a byte order mark, tab-separated.
    path = tmp_path / "customers.txt"
    path.write_bytes("external_id\tname\nC1\t王芳\n".encode("utf-16"))
    valid, _, errors, _ = read_all(path, "customers")
    assert errors == [] and valid.column("name").to_pylist() == ["王芳"]


def test_bad_bytes_past_the_sniffed_start_stop_the_file_naming_it(tmp_path):
    path = tmp_path / "customers.csv"
    lines = "".join(f"C{index},name\n" for index in range(120_000))
    path.write_bytes(("external_id,name\n" + lines).encode() + "C9,王芳\n".encode("gb18030"))
    with pytest.raises(
        ImportFileError, match=r"customers\.csv: text after row \d+ is not valid utf-8"
    ):
        read_all(path, "customers")


@pytest.mark.parametrize("delimiter", [",", "\t", ";"])
def test_delimiter_is_sniffed(csv_file, delimiter):
    text = delimiter.join(["external_id", "name", "city"]) + "\n"
    text += delimiter.join(["C1", '"Li, Na"', "Hangzhou"]) + "\n"
    valid, _, errors, _ = read_all(csv_file("customers.txt", text), "customers")
    assert errors == []
    assert valid.column("name").to_pylist() == ["Li, Na"]


def test_xlsx_first_sheet_with_native_dates_and_numbers(xlsx_file):
    path = xlsx_file(
        "orders.xlsx",
        [
            ["order_id", "customer_id", "ordered_at", "sku", "quantity", "unit_price"],
            ["O1", 1001, dt.datetime(2024, 3, 5, 14, 30), "S1", 2, 12.5],
            ["O2", "C2", dt.date(2024, 3, 6), "S2", 1.0, 36.900000000000006],
            [None, None, None, None, None, None],
            ["O3", "C3", "2024/3/7", "S3", None, "¥5"],
        ],
        extra_sheets=1,
    )
    valid, _, errors, _ = read_all(path, "orders", timezone="Asia/Shanghai")
    assert errors == []
    assert valid.column("customer_id").to_pylist() == ["1001", "C2", "C3"]
    assert valid.column("ordered_at").to_pylist() == [
        dt.datetime(2024, 3, 5, 6, 30, tzinfo=UTC),
        dt.datetime(2024, 3, 5, 16, 0, tzinfo=UTC),
        dt.datetime(2024, 3, 6, 16, 0, tzinfo=UTC),
    ]
    assert valid.column("quantity").to_pylist() == [Decimal(2), Decimal(1), None]
    assert valid.column("unit_price").to_pylist() == [Decimal("12.5"), Decimal("36.9"), Decimal(5)]
    assert valid.column(kinds.ROW_NUMBER).to_pylist() == [2, 3, 5]  # the blank row 4 is skipped


def test_xlsx_named_sheet_and_errors_with_sheet_rows(xlsx_file, tmp_path):
    from openpyxl import Workbook

    book = Workbook()
    book.active.append(["not", "this"])
    sheet = book.create_sheet("客户")
    sheet.append(["客户编号", "阶段"])
    sheet.append(["C1", "流失"])
    sheet.append(["C2", "unknown"])
    path = tmp_path / "customers.xlsx"
    book.save(path)
    valid, _, errors, _ = read_all(
        path, "customers", sheet="客户", mapping={"客户编号": "external_id", "阶段": "stage"}
    )
    assert valid.column("stage").to_pylist() == ["churned"]
    assert [(error.row, error.column, error.canonical) for error in errors] == [
        (3, "阶段", "stage")
    ]
    with pytest.raises(ImportFileError, match='no sheet "nope".*客户'):
        open_import(path, "customers", sheet="nope")


# --- Headers and mappings -------------------------------------------------------------------


def test_mapping_with_chinese_headers(csv_file):
    path = csv_file(
        "订单.csv",
        "订单号,客户编号,下单时间,商品编码,单价\nA1,C1,2024年3月5日 14:30,S1,¥1,234.50\n".replace(
            "¥1,234.50", '"¥1,234.50"'
        ),
    )
    mapping = {
        "订单号": "order_id",
        "客户编号": "customer_id",
        "下单时间": "ordered_at",
        "商品编码": "sku",
        "单价": "unit_price",
    }
    with open_import(path, "orders", mapping=mapping) as file:
        assert file.columns == ("order_id", "customer_id", "ordered_at", "sku", "unit_price")
        (batch,) = file.batches()
    assert batch.errors == []
    assert batch.valid.column("unit_price").to_pylist() == [Decimal("1234.5")]
    assert batch.valid.column("ordered_at").to_pylist() == [
        dt.datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
    ]


def test_canonical_names_match_ignoring_case_and_spaces(csv_file):
    path = csv_file("c.csv", " External_ID ,NAME,Acquisition Source\nC1,Li,ads\n")
    with open_import(path, "customers") as file:
        assert file.columns == ("external_id", "name", "acquisition_source")
        assert file.warnings == []


def test_mapping_files_csv_with_header_and_json(tmp_path):
    csv_mapping = tmp_path / "map.csv"
    csv_mapping.write_text(
        "文件列,字段\n客户编号,external_id\n姓名,name\n备注,\n", encoding="utf-8-sig"
    )
    assert load_mapping(csv_mapping) == {"客户编号": "external_id", "姓名": "name", "备注": None}
    json_mapping = tmp_path / "map.json"
    json_mapping.write_text(json.dumps({"客户编号": "external_id"}, ensure_ascii=False))
    assert load_mapping(json_mapping) == {"客户编号": "external_id"}
    json_mapping.write_text("[1, 2]")
    with pytest.raises(ImportFileError, match="one JSON object"):
        load_mapping(json_mapping)


def test_unknown_columns_are_ignored_with_a_warning_saying_how_to_map_them(csv_file):
    path = csv_file("c.csv", "external_id,会员等级,colour\nC1,gold,red\n")
    valid, _, errors, warnings = read_all(path, "customers")
    assert errors == [] and valid.column_names == ["external_id", kinds.ROW_NUMBER]
    (warning,) = warnings
    assert '"会员等级", "colour"' in warning
    assert '--map "会员等级=attr.会员等级"' in warning


def test_missing_required_column_raises_naming_it_and_the_columns_found(csv_file):
    path = csv_file("orders.csv", "订单号,customer_id,ordered_at,sku\nA1,C1,2024-03-05,S1\n")
    with pytest.raises(ImportFileError) as caught:
        open_import(path, "orders")
    message = str(caught.value)
    assert "orders.csv" in message
    assert '"order_id", "unit_price"' in message
    assert '"订单号", "customer_id", "ordered_at", "sku"' in message
    assert '--map "订单号=order_id"' in message


def test_two_columns_mapped_to_one_column_raise(csv_file):
    path = csv_file("c.csv", "id,external_id\n1,C1\n")
    with pytest.raises(ImportFileError, match='"id", "external_id" all give "external_id"'):
        open_import(path, "customers", mapping={"id": "external_id"})


def test_mapping_to_a_column_that_does_not_exist_raises(csv_file):
    path = csv_file("c.csv", "external_id,x\nC1,1\n")
    with pytest.raises(ImportFileError, match='"x" to "nonsense"'):
        open_import(path, "customers", mapping={"x": "nonsense"})


@pytest.mark.parametrize(
    ("name", "content", "match"),
    [
        ("missing.csv", None, "no such file"),
        ("orders.xls", b"x", '".xls" files are not supported'),
        ("empty.csv", b"", "is empty"),
        ("bom-only.csv", b"\xef\xbb\xbf\n\n", "is empty"),
    ],
)
def test_files_that_cannot_be_imported_raise(tmp_path, name, content, match):
    path = tmp_path / name
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(ImportFileError, match=match):
        open_import(path, "orders")


# --- Values -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-05", dt.datetime(2024, 3, 5)),
        ("2024-03-05 14:30", dt.datetime(2024, 3, 5, 14, 30)),
        ("2024-03-05 14:30:15", dt.datetime(2024, 3, 5, 14, 30, 15)),
        ("2024-03-05T14:30:15", dt.datetime(2024, 3, 5, 14, 30, 15)),
        ("2024-03-05T14:30:15.250", dt.datetime(2024, 3, 5, 14, 30, 15, 250000)),
        ("2024-03-05T14:30:15Z", dt.datetime(2024, 3, 5, 14, 30, 15)),
        ("2024-03-05T14:30:15+08:00", dt.datetime(2024, 3, 5, 6, 30, 15)),
        ("2024-03-05 14:30:15.5-05:00", dt.datetime(2024, 3, 5, 19, 30, 15, 500000)),
        ("2024/03/05", dt.datetime(2024, 3, 5)),
        ("2024/3/5 9:05", dt.datetime(2024, 3, 5, 9, 5)),
        ("2024.03.05", dt.datetime(2024, 3, 5)),
        ("2024.03.05 14:30:00", dt.datetime(2024, 3, 5, 14, 30)),
        ("2024年3月5日", dt.datetime(2024, 3, 5)),
        ("2024年3月5日 14:30", dt.datetime(2024, 3, 5, 14, 30)),
        ("２０２４年３月５日", dt.datetime(2024, 3, 5)),
        ("20240305", dt.datetime(2024, 3, 5)),
        ("  2024-03-05  ", dt.datetime(2024, 3, 5)),
    ],
)
def test_each_date_format_is_read(text, expected):
    value, errors = one_value("orders", "ordered_at", text)
    assert errors == []
    assert value == expected.replace(tzinfo=UTC)


def test_naive_times_are_in_the_import_time_zone():
    value, _ = one_value("orders", "ordered_at", "2024-03-05 08:00", timezone="Asia/Shanghai")
    assert value == dt.datetime(2024, 3, 5, 0, 0, tzinfo=UTC)
    value, _ = one_value("orders", "ordered_at", "2024/3/5 08:00", timezone="Asia/Shanghai")
    assert value == dt.datetime(2024, 3, 5, 0, 0, tzinfo=UTC)
    # An explicit offset wins over the import's zone.
    value, _ = one_value("orders", "ordered_at", "2024-03-05T08:00Z", timezone="Asia/Shanghai")
    assert value == dt.datetime(2024, 3, 5, 8, 0, tzinfo=UTC)


def test_unknown_time_zone_is_refused():
    with pytest.raises(ImportFileError, match='"Mars/Base" is not a known time zone'):
        one_value("orders", "ordered_at", "2024-03-05", timezone="Mars/Base")


def test_date_format_overrides_the_accepted_formats():
    value, errors = one_value(
        "orders", "ordered_at", "05/03/2024 14:30", date_format="%d/%m/%Y %H:%M"
    )
    assert errors == [] and value == dt.datetime(2024, 3, 5, 14, 30, tzinfo=UTC)
    _, errors = one_value("orders", "ordered_at", "2024/03/05", date_format="%d/%m/%Y")
    assert errors[0].message == '"2024/03/05" does not match the date format "%d/%m/%Y"'


def test_date_columns_become_dates():
    value, errors = one_value("customers", "birthday", "1990年5月4日")
    assert errors == [] and value == dt.date(1990, 5, 4)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", Decimal(12)),
        ("12.5", Decimal("12.5")),
        ("1,234.50", Decimal("1234.5")),
        ("¥1,234.50", Decimal("1234.5")),
        ("$3", Decimal(3)),
        ("￥８.５", Decimal("8.5")),
        ("5元", Decimal(5)),
        (" 7 ", Decimal(7)),
        ("", None),
    ],
)
def test_decimal_forms_people_type(text, expected):
    value, errors = one_value("orders", "discount", text)
    assert errors == [] and value == expected


@pytest.mark.parametrize(
    ("kind", "column", "text", "message"),
    [
        ("orders", "ordered_at", "2024-13-45", '"2024-13-45" is not a date (expected e.g. 2024-03-05 or 2024-03-05 14:30)'),
        ("orders", "ordered_at", "2024-02-30", '"2024-02-30" is not a date (expected e.g. 2024-03-05 or 2024-03-05 14:30)'),
        ("customers", "birthday", "May 4th", '"May 4th" is not a date (expected e.g. 2024-03-05)'),
        ("orders", "line_no", "1.5", '"1.5" is not a whole number (expected e.g. 3)'),
        ("orders", "line_no", "0", '"0" is less than 1, the smallest value allowed'),
        ("orders", "unit_price", "abc", '"abc" is not a number (expected e.g. 12.50, 1,234.50 or ¥12.50)'),
        ("orders", "unit_price", "1,23", '"1,23" is not a number (expected e.g. 12.50, 1,234.50 or ¥12.50)'),
        ("orders", "unit_price", "1.23456", '"1.23456" has more than 4 decimal places; round it to 4'),
        ("orders", "unit_price", "123456789012345", '"123456789012345" is too large'),
        ("orders", "unit_price", "-2", '"-2" is less than 0, the smallest value allowed'),
        ("events", "dwell_seconds", "nan", '"nan" is not a number (expected e.g. 12.50, 1,234.50 or ¥12.50)'),
        ("events", "dwell_seconds", "-1.5", '"-1.5" is less than 0, the smallest value allowed'),
        ("consents", "opted_in", "maybe", '"maybe" is not yes or no (use true/false, yes/no, y/n, 1/0 or 是/否)'),
        ("consents", "channel", "fax", '"fax" is not one of the allowed values: email, sms, wechat, phone'),
        ("customers", "email", "x" * 255, '"{}…" is 255 characters long; at most 254 are allowed'.format("x" * 79)),
        ("orders", "sku", "  ", "a value is required, but the cell is empty"),
    ],
)  # fmt: skip
def test_bad_values_name_row_column_and_value(kind, column, text, message):
    _, errors = one_value(kind, column, text)
    (error,) = errors
    assert (error.file, error.row, error.column, error.message) == ("t.csv", 2, column, message)
    assert error.value == text
    assert str(error) == 't.csv, row 2, column "{}": {}'.format(column, message)


@pytest.mark.parametrize(
    ("kind", "column", "text", "expected"),
    [
        ("customers", "stage", "流失", "churned"),
        ("customers", "stage", "Won_Back", "won_back"),
        ("orders", "status", "已付款", "paid"),
        ("orders", "status", "Canceled", "cancelled"),
        ("consents", "opted_in", "是", True),
        ("consents", "opted_in", "No", False),
        ("consents", "opted_in", "1", True),
        ("consents", "opted_in", "off", False),
        ("consents", "channel", "微信", "wechat"),
    ],
)
def test_choices_and_booleans_accept_codes_and_aliases(kind, column, text, expected):
    value, errors = one_value(kind, column, text)
    assert errors == [] and value == expected


def test_bad_date_in_row_7_and_missing_id_in_row_12_are_reported_there(csv_file):
    lines = [
        "O{0},C{0},2024-03-{0:02d} 10:00,S{0},1,9.90".format(number) for number in range(2, 15)
    ]
    lines[7 - 2] = "O7,C7,2024-13-45,S7,1,9.90"
    lines[12 - 2] = ",C12,2024-03-12 10:00,S12,1,9.90"
    valid, rejected, errors, _ = read_all(csv_file("orders.csv", orders_csv(lines)), "orders")
    assert [str(error) for error in errors] == [
        'orders.csv, row 7, column "ordered_at": "2024-13-45" is not a date '
        "(expected e.g. 2024-03-05 or 2024-03-05 14:30)",
        'orders.csv, row 12, column "order_id": a value is required, but the cell is empty',
    ]
    assert rejected.column(kinds.ROW_NUMBER).to_pylist() == [7, 12]
    assert rejected.column("ordered_at").to_pylist() == ["2024-13-45", "2024-03-12 10:00"]
    assert valid.num_rows == 11 and 7 not in valid.column(kinds.ROW_NUMBER).to_pylist()


def test_error_names_the_file_column_and_the_canonical_one(csv_file):
    path = csv_file(
        "订单.csv",
        orders_csv(["O1,C1,bad,S1,1,2"], header="order_id,客户,下单时间,sku,quantity,unit_price"),
    )
    _, _, errors, _ = read_all(
        path, "orders", mapping={"客户": "customer_id", "下单时间": "ordered_at"}
    )
    (error,) = errors
    assert (error.column, error.canonical) == ("下单时间", "ordered_at")
    assert str(error).startswith(
        '订单.csv, row 2, column "下单时间" (ordered_at): "bad" is not a date'
    )


def test_rejected_rows_keep_the_raw_text_of_every_column(csv_file):
    path = csv_file("c.csv", "external_id,stage,note\n C1 ,bogus,keep me\nC2,customer,\n")
    valid, rejected, errors, _ = read_all(path, "customers")
    assert rejected.to_pylist() == [
        {"external_id": " C1 ", "stage": "bogus", "note": "keep me", kinds.ROW_NUMBER: 2}
    ]
    assert valid.to_pylist() == [{"external_id": "C2", "stage": "customer", kinds.ROW_NUMBER: 3}]


def test_attr_columns_become_one_json_attributes_column(csv_file):
    path = csv_file(
        "c.csv",
        "external_id,attr.tier,attr.颜色,会员卡\nC1,gold,红, 8888 \nC2,,,\nC3,silver,,\n",
    )
    with open_import(path, "customers", mapping={"会员卡": "attr.card"}) as file:
        assert file.attribute_names == ("tier", "颜色", "card")
        (batch,) = file.batches()
    attributes = batch.valid.column(kinds.ATTRIBUTES).to_pylist()
    assert [None if text is None else json.loads(text) for text in attributes] == [
        {"tier": "gold", "颜色": "红", "card": "8888"},
        None,
        {"tier": "silver"},
    ]


def test_attr_columns_are_not_kept_for_other_kinds(csv_file):
    path = csv_file(
        "o.csv",
        orders_csv(
            ["O1,C1,2024-03-05,S1,1,2"],
            header="order_id,customer_id,ordered_at,sku,attr.x,unit_price",
        ),
    )
    valid, _, _, warnings = read_all(path, "orders")
    assert kinds.ATTRIBUTES not in valid.column_names
    assert '"attr.x"' in warnings[0]


# --- CSV records ---------------------------------------------------------------------------


def test_multiline_quoted_values_and_blank_lines_keep_row_numbers_true(csv_file):
    text = 'external_id,name\nC1,"two\nlines"\n\nC3,\nC4,x,extra\nC5\n'
    valid, rejected, errors, _ = read_all(csv_file("c.csv", text), "customers")
    assert valid.column(kinds.ROW_NUMBER).to_pylist() == [2, 4, 6]
    assert valid.column("name").to_pylist() == ["two\nlines", None, None]
    (error,) = errors
    assert error.row == 5 and error.column == "" and error.value == "C4,x,extra"
    assert str(error).startswith("c.csv, row 5, the row has 3 values but the header has 2 columns")
    assert rejected.to_pylist() == [{"external_id": "C4", "name": "x,extra", kinds.ROW_NUMBER: 5}]


def test_rows_that_never_fit_the_header_still_come_in_bounded_batches(csv_file):
    text = "external_id,name\n" + "".join(f"C{index},a,b\n" for index in range(25)) + "C99,ok\n"
    with open_import(csv_file("c.csv", text), "customers", batch_rows=10) as file:
        batches = list(file.batches())
    assert all(len(batch.errors) <= 10 for batch in batches)
    assert [error.row for batch in batches for error in batch.errors] == list(range(2, 27))
    assert sum(batch.rejected.num_rows for batch in batches) == 25
    assert [
        row for batch in batches for row in batch.valid.column(kinds.ROW_NUMBER).to_pylist()
    ] == [27]


def test_a_generated_200k_row_file_streams_in_bounded_batches(tmp_path):
    path = tmp_path / "orders.csv"
    with path.open("w", encoding="utf-8") as stream:
        stream.write("order_id,customer_id,ordered_at,status,line_no,sku,quantity,unit_price\n")
        for index in range(200_000):
            bad_date = index % 40_000 == 39_999
            stream.write(
                "O{},C{},{},paid,1,S{},1,{}.50\n".format(
                    index,
                    index % 977,
                    "2024-02-30" if bad_date else "2024-03-05 10:00",
                    index % 50,
                    index % 90,
                )
            )
    seen = 0
    errors = []
    with open_import(path, "orders", batch_rows=30_000) as file:
        for batch in file.batches():
            rows = batch.valid.num_rows + batch.rejected.num_rows
            assert rows <= 30_000
            numbers = sorted(
                batch.valid.column(kinds.ROW_NUMBER).to_pylist()
                + batch.rejected.column(kinds.ROW_NUMBER).to_pylist()
            )
            assert numbers == list(range(seen + 2, seen + 2 + rows))
            seen += rows
            errors += batch.errors
    assert seen == 200_000
    assert [error.row for error in errors] == [40_001, 80_001, 120_001, 160_001, 200_001]


# --- Without a file ---------------------------------------------------------------------------


def test_parse_table_numbers_rows_from_first_row_and_casts_non_text():
    table = pa.table(
        {
            "external_id": ["C1", "C2"],
            "joined_at": ["2024-03-05", "never"],
            "birthday": pa.array([dt.date(1990, 1, 2), None]),
        }
    )
    batch = parse_table("customers", table, file_name="api", first_row=100)
    assert batch.valid.column(kinds.ROW_NUMBER).to_pylist() == [100]
    assert batch.valid.column("birthday").to_pylist() == [dt.date(1990, 1, 2)]
    assert [(error.row, error.column) for error in batch.errors] == [(101, "joined_at")]


def test_table_parser_reports_warnings_once_for_many_tables():
    parser = TableParser(kinds.CUSTOMERS, ["external_id", "extra"], file_name="api")
    assert len(parser.warnings) == 1
    for start in (2, 4):
        table = pa.table({"external_id": ["a", "b"], "extra": ["x", "y"]})
        assert parser.parse(table, first_row=start).valid.num_rows == 2


def test_row_error_is_a_frozen_value():
    error = RowError("f.csv", 3, "sku", None, "a value is required, but the cell is empty")
    with pytest.raises(AttributeError):
        error.row = 4  # type: ignore[misc]
    assert str(error) == 'f.csv, row 3, column "sku": a value is required, but the cell is empty'


# --- The public names --------------------------------------------------------------------------


def test_files_gathers_the_public_names_of_the_file_layer():
    from loyal.imports import files, headers, parsing, reading

    assert sorted(files.__all__) == [
        "ImportFile",
        "ImportFileError",
        "ParsedBatch",
        "RowError",
        "TableParser",
        "load_mapping",
        "open_import",
        "parse_table",
        "resolve_header",
    ]
    assert files.resolve_header is headers.resolve_header
    assert files.ImportFileError is headers.ImportFileError is parsing.ImportFileError
    assert files.TableParser is parsing.TableParser and files.open_import is reading.open_import


def test_read_ahead_gives_every_item_in_order():
    assert list(read_ahead(iter(range(5)))) == [0, 1, 2, 3, 4]


def test_read_ahead_raises_the_readers_error_where_it_happened():
    def items():
        yield 1
        raise ImportFileError("bad file")

    seen = []
    with pytest.raises(ImportFileError, match="bad file"):
        for item in read_ahead(items()):
            seen.append(item)
    assert seen == [1]


def test_read_ahead_reads_in_the_callers_language():
    from django.utils import translation

    def languages():
        yield translation.get_language()

    with translation.override("zh-hans"):
        assert list(read_ahead(languages())) == ["zh-hans"]


def test_read_ahead_stops_reading_when_the_caller_stops():
    made = []

    def items():
        for number in range(100):
            made.append(number)
            yield number

    for item in read_ahead(items()):
        if item == 2:
            break
    assert len(made) <= 5  # the one in hand, the one waiting, the one being made
    assert not any(thread.name == "loyal-import-reader" for thread in threading.enumerate())
