"""Writing any table as CSV, TSV, Excel, JSON or JSON Lines, and replacing files safely.

Every file is written to a temporary name in the target folder and renamed on success, so a
failure never leaves half a file where the user expects a whole one. CSV files start with a UTF-8
byte order mark: without it Excel reads Chinese text as mojibake. Text that a spreadsheet would
run as a formula is written so that it stays text.
"""

from __future__ import annotations

import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from django.utils.translation import gettext as _

BOM = "\ufeff"
FORMATS = ("csv", "tsv", "xlsx", "json", "jsonl")
_SUFFIX_FORMATS = {
    ".csv": "csv",
    ".txt": "csv",
    ".tsv": "tsv",
    ".xlsx": "xlsx",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
EXCEL_MAX_ROWS = 1_048_576  # per sheet, header included
# Characters an .xlsx cell cannot hold (openpyxl refuses them): control codes but tab and newlines.
_ILLEGAL_EXCEL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"
# Starts of text that a spreadsheet runs as a formula (OWASP's list against CSV injection).
_FORMULA_START = r"^[=+\-@\t\r]"
_PLAIN_NUMBER = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$"


def temporary_beside(path: Path) -> Path:
    """A new empty file in ``path``'s folder, to be renamed onto ``path`` once complete."""
    temporary = path.with_name(".{}.{}.tmp".format(path.name, secrets.token_hex(4)))
    # Created by hand rather than with mkstemp so the final file gets the usual permissions.
    os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    return temporary


@contextmanager
def replacing(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces it only if the block succeeds."""
    temporary = temporary_beside(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# --- Exports -------------------------------------------------------------------------------------


def write_table(
    batches: Iterable[pa.RecordBatch | pa.Table],
    path: str | Path,
    *,
    format: str | None = None,
    timezone: str = "UTC",
    schema: pa.Schema | None = None,
) -> int:
    """Stream ``batches`` to ``path`` as CSV, TSV, Excel, JSON or JSON Lines; return the row count.

    The format follows the suffix (.csv, .tsv, .xlsx, .json, .jsonl) unless ``format`` names it.
    Times with a zone are shown in ``timezone``: in CSV and JSON as ISO 8601 with the offset
    (``2024-03-05T08:00:00+08:00``), in Excel as Excel date-times (Excel has no time zones).
    Decimals are written exactly: as text in CSV and JSON (``"12.5"``), as numbers in Excel.
    Text that a spreadsheet would run as a formula stays text: in CSV and TSV it gets a leading
    ``'`` (``=1+1`` is written ``'=1+1``; numbers such as ``-12.5`` are left alone), in Excel it
    is a text cell.
    ``schema`` gives the header when there may be no batch at all.
    """
    path = Path(path)
    chosen = (format or _SUFFIX_FORMATS.get(path.suffix.lower(), "")).lower()
    if chosen not in FORMATS:
        raise ValueError(
            _(
                "Cannot export to {path}: use a .csv, .tsv, .xlsx, .json or .jsonl file name."
            ).format(path=path)
        )
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            _('"{zone}" is not a known time zone; use a name such as Asia/Shanghai.').format(
                zone=timezone
            )
        ) from None
    tables = _tables(batches, schema)
    with replacing(path) as temporary:
        if chosen in ("csv", "tsv"):
            return _write_csv(tables, temporary, timezone, "\t" if chosen == "tsv" else ",")
        if chosen == "xlsx":
            return _write_excel(tables, temporary, timezone, path.stem)
        return _write_json(tables, temporary, timezone, lines=chosen == "jsonl")


def _tables(
    batches: Iterable[pa.RecordBatch | pa.Table], schema: pa.Schema | None
) -> Iterator[pa.Table]:
    found = False
    for batch in batches:
        table = pa.Table.from_batches([batch]) if isinstance(batch, pa.RecordBatch) else batch
        found = True
        yield table
    if not found and schema is not None:
        yield schema.empty_table()


def _decoded(array: pa.Array) -> pa.Array:
    return array.dictionary_decode() if pa.types.is_dictionary(array.type) else array


def _nested_as_json(array: pa.Array) -> pa.Array:
    return pa.array(
        [
            None if value is None else json.dumps(value, ensure_ascii=False, default=str)
            for value in array.to_pylist()
        ],
        pa.string(),
    )


def _as_text(array: pa.Array, zone: str) -> pa.Array:
    """A column in the form CSV and JSON show it: numbers and booleans stay, the rest is text."""
    array = _decoded(array)
    kind = array.type
    if pa.types.is_timestamp(kind):
        return _timestamp_text(array, zone)
    if pa.types.is_decimal(kind):
        # 12.5000 -> 12.5, 3.0000 -> 3: exact, without the storage scale's trailing zeros.
        return pc.replace_substring_regex(
            array.cast(pa.string()), pattern=r"\.0+$|(\.[0-9]*[1-9])0+$", replacement=r"\1"
        )
    if pa.types.is_null(kind):
        return array.cast(pa.string())
    if pa.types.is_nested(kind):
        return _nested_as_json(array)
    if pa.types.is_floating(kind):
        return pc.if_else(pc.is_finite(array), array, pa.scalar(None, kind))  # JSON has no NaN
    if (
        pa.types.is_integer(kind)
        or pa.types.is_boolean(kind)
        or pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
    ):
        return array
    try:
        return array.cast(pa.string())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return pa.array(
            [None if value is None else str(value) for value in array.to_pylist()], pa.string()
        )


def _timestamp_text(array: pa.Array, zone: str) -> pa.Array:
    kind = array.type
    pattern = "%Y-%m-%dT%H:%M:%S"
    if kind.tz is not None:
        array = array.cast(pa.timestamp(kind.unit, tz=zone))
        pattern += "%Ez"
    # Whole seconds are shown without a fraction (Arrow would print ".000000" for all).
    whole = pc.strftime(
        pc.cast(array, pa.timestamp("s", tz=array.type.tz), safe=False), format=pattern
    )
    fraction = pc.not_equal(array, pc.floor_temporal(array, 1, "second"))
    if not pc.any(fraction).as_py():
        return whole
    return pc.if_else(fraction, pc.strftime(array, format=pattern), whole)


def _formula_safe(array: pa.Array) -> pa.Array:
    """Text that Excel would run as a formula, prefixed with ``'`` so it shows as text.

    A customer named "=HYPERLINK(...)" or "@SUM(...)" must not become a live formula in whoever
    opens the export; numbers such as "-12.5" keep their sign.
    """
    if not (pa.types.is_string(array.type) or pa.types.is_large_string(array.type)):
        return array
    risky = pc.fill_null(pc.match_substring_regex(array, _FORMULA_START), False)
    if not pc.any(risky).as_py():
        return array
    risky = pc.and_(risky, pc.invert(pc.match_substring_regex(array, _PLAIN_NUMBER)))
    return pc.if_else(risky, pc.utf8_replace_slice(array, 0, 0, "'"), array)


def _write_csv(tables: Iterator[pa.Table], path: Path, zone: str, delimiter: str) -> int:
    rows = 0
    with path.open("wb") as stream:
        stream.write(BOM.encode())
        writer: pa_csv.CSVWriter | None = None
        schema: pa.Schema | None = None
        for table in tables:
            converted = pa.table(
                [
                    _formula_safe(_as_text(column.combine_chunks(), zone))
                    for column in table.columns
                ],
                names=table.column_names,
            )
            if writer is None:
                schema = converted.schema
                writer = pa_csv.CSVWriter(
                    stream, schema, write_options=pa_csv.WriteOptions(delimiter=delimiter)
                )
            elif converted.schema != schema:
                converted = converted.cast(schema)
            writer.write_table(converted)
            rows += table.num_rows
        if writer is not None:
            writer.close()
    return rows


def _write_json(tables: Iterator[pa.Table], path: Path, zone: str, *, lines: bool) -> int:
    rows = 0
    with path.open("w", encoding="utf-8") as stream:
        if not lines:
            stream.write("[")
        for table in tables:
            names = table.column_names
            columns = [
                _as_text(column.combine_chunks(), zone).to_pylist() for column in table.columns
            ]
            for values in zip(*columns, strict=True):
                text = json.dumps(dict(zip(names, values, strict=True)), ensure_ascii=False)
                if lines:
                    stream.write(text + "\n")
                else:
                    stream.write(("\n" if rows == 0 else ",\n") + text)
                rows += 1
        if not lines:
            stream.write("\n]\n" if rows else "]\n")
    return rows


def _excel_values(array: pa.Array, zone: str, sheet: Any) -> list[Any]:
    """A column as Python values openpyxl writes as the right cell types."""
    from openpyxl.cell import WriteOnlyCell

    array = _decoded(array)
    kind = array.type
    if pa.types.is_timestamp(kind):
        if kind.tz is not None:
            array = pc.local_timestamp(array.cast(pa.timestamp(kind.unit, tz=zone)))
        return array.to_pylist()
    if pa.types.is_nested(kind):
        array = _nested_as_json(array)
    if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
        if pc.any(pc.match_substring_regex(array, _ILLEGAL_EXCEL)).as_py():
            array = pc.replace_substring_regex(array, pattern=_ILLEGAL_EXCEL, replacement="")
        values = array.to_pylist()
        # openpyxl turns text starting with "=" into a formula: a customer named "=1+1" (or
        # worse) must stay text.
        for position in pc.indices_nonzero(
            pc.fill_null(pc.starts_with(array, "="), False)
        ).to_pylist():
            cell = WriteOnlyCell(sheet, value=values[position])
            cell.data_type = "s"
            values[position] = cell
        return values
    if pa.types.is_floating(kind):
        array = pc.if_else(pc.is_finite(array), array, pa.scalar(None, kind))
    return array.to_pylist()


def _sheet_title(stem: str, part: int) -> str:
    title = re.sub(r"[\[\]:*?/\\]", "_", stem).strip("' ") or "data"
    suffix = f" ({part})" if part > 1 else ""
    return title[: 31 - len(suffix)] + suffix


def _write_excel(tables: Iterator[pa.Table], path: Path, zone: str, stem: str) -> int:
    from openpyxl import Workbook
    from openpyxl.cell import WriteOnlyCell
    from openpyxl.styles import Font

    book = Workbook(write_only=True)
    bold = Font(bold=True)
    sheet: Any = None
    header: list[str] = []
    sheet_rows = 0
    parts = 0
    rows = 0

    def new_sheet() -> Any:
        nonlocal parts, sheet_rows
        parts += 1
        created = book.create_sheet(_sheet_title(stem, parts))
        created.freeze_panes = "A2"
        cells = []
        for name in header:
            cell = WriteOnlyCell(created, value=name)
            cell.data_type = "s"
            cell.font = bold
            cells.append(cell)
        created.append(cells)
        sheet_rows = 1
        return created

    for table in tables:
        if sheet is None:
            header = table.column_names
            sheet = new_sheet()
        columns = [_excel_values(column.combine_chunks(), zone, sheet) for column in table.columns]
        for values in zip(*columns, strict=True):
            if sheet_rows == EXCEL_MAX_ROWS:  # Excel's limit: go on in a new sheet
                sheet = new_sheet()
            sheet.append(values)
            sheet_rows += 1
            rows += 1
    if sheet is None:
        book.create_sheet(_sheet_title(stem, 1))
    book.save(path)
    return rows
