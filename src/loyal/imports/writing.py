"""Writing files: import templates, rejected rows with their reasons, and exports of any table.

Every file is written to a temporary name in the target folder and renamed on success, so a
failure never leaves half a file where the user expects a whole one. CSV files start with a UTF-8
byte order mark: without it Excel reads Chinese text as mojibake.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
from django.utils.translation import gettext as _

from loyal.imports.kinds import ROW_NUMBER, Column, ColumnType, Kind
from loyal.imports.parsing import ParsedBatch, resolve_kind

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
_EXCEL_MAX_ROWS = 1_048_576  # per sheet, header included
# Characters an .xlsx cell cannot hold (openpyxl refuses them): control codes but tab and newlines.
_ILLEGAL_EXCEL = r"[\x00-\x08\x0b\x0c\x0e-\x1f]"


def _temporary_beside(path: Path) -> Path:
    """A new empty file in ``path``'s folder, to be renamed onto ``path`` once complete."""
    temporary = path.with_name(".{}.{}.tmp".format(path.name, secrets.token_hex(4)))
    # Created by hand rather than with mkstemp so the final file gets the usual permissions.
    os.close(os.open(temporary, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o666))
    return temporary


@contextmanager
def _replacing(path: Path) -> Iterator[Path]:
    """A temporary path next to ``path`` that replaces it only if the block succeeds."""
    temporary = _temporary_beside(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


# --- Templates -----------------------------------------------------------------------------------


def write_template(kind: Kind | str, path: str | Path) -> Path:
    """Write an empty import file for ``kind``: its canonical column names and nothing else.

    ``.csv`` gives the header row alone; ``.xlsx`` gives a bold header row, a drop-down list on
    each choice column and a second sheet, "help", describing every column.
    """
    kind = resolve_kind(kind)
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".xlsx"):
        raise ValueError(
            _("Cannot write a template to {path}: use a .csv or .xlsx file name.").format(path=path)
        )
    with _replacing(path) as temporary:
        if suffix == ".csv":
            with temporary.open("w", encoding="utf-8-sig", newline="") as stream:
                csv.writer(stream).writerow(kind.column_names)
        else:
            _excel_template(kind, temporary)
    return path


def _excel_template(kind: Kind, path: Path) -> None:
    from openpyxl import Workbook
    from openpyxl.styles import Alignment, Font
    from openpyxl.utils import get_column_letter
    from openpyxl.worksheet.datavalidation import DataValidation

    book = Workbook()
    sheet = book.active
    sheet.title = kind.name
    sheet.append(list(kind.column_names))
    for index, column in enumerate(kind.columns, start=1):
        letter = get_column_letter(index)
        sheet[f"{letter}1"].font = Font(bold=True)
        sheet.column_dimensions[letter].width = max(12, len(column.name) + 4)
        if column.choices:
            # A drop-down in Excel's own data validation: fewer typos, fewer rejected rows.
            validation = DataValidation(
                type="list", formula1='"{}"'.format(",".join(column.choices)), allow_blank=True
            )
            validation.add(f"{letter}2:{letter}{_EXCEL_MAX_ROWS}")
            sheet.add_data_validation(validation)
    sheet.freeze_panes = "A2"

    help_sheet = book.create_sheet("help")
    titles = [_("column"), _("type"), _("required"), _("allowed values"), _("help")]
    help_sheet.append(titles)
    for cell in help_sheet[1]:
        cell.font = Font(bold=True)
    for column in kind.columns:
        help_sheet.append(
            [
                column.name,
                column.type.value,
                _("yes") if column.required else _("no"),
                _allowed_values(column),
                column.help,
            ]
        )
    if kind.allows_attributes:
        help_sheet.append(
            [
                "attr.<name>",
                ColumnType.TEXT.value,
                _("no"),
                "",
                _("Any other column named attr.<name> is kept as a free attribute <name>."),
            ]
        )
    help_sheet.append([])
    help_sheet.append([kind.help])
    for letter, width in zip("ABCDE", (22, 10, 10, 48, 60), strict=True):
        help_sheet.column_dimensions[letter].width = width
    for row in help_sheet.iter_rows(min_row=2):
        for cell in row:
            cell.alignment = Alignment(wrap_text=True, vertical="top")
    book.save(path)


def _allowed_values(column: Column) -> str:
    kind = column.type
    if kind is ColumnType.CHOICE:
        allowed = ", ".join(column.choices)
        if column.choice_aliases:
            aliases = ", ".join(f"{alias} = {code}" for alias, code in column.choice_aliases)
            allowed += " ({})".format(_("also: {aliases}").format(aliases=aliases))
        return allowed
    if kind is ColumnType.BOOLEAN:
        return "true/false, yes/no, y/n, 1/0, 是/否"
    if kind is ColumnType.DATE:
        return _("a date, e.g. 2024-03-05, 2024/3/5 or 2024年3月5日")
    if kind is ColumnType.DATETIME:
        return _(
            "a date and time, e.g. 2024-03-05 14:30 (in the import's time zone) or "
            "2024-03-05T14:30:00+08:00; a date alone means midnight"
        )
    parts = []
    if kind is ColumnType.INTEGER:
        parts.append(_("a whole number"))
    elif kind is ColumnType.DECIMAL:
        parts.append(_("a number with at most 4 decimals, e.g. 12.50 or ¥1,234.50"))
    elif kind is ColumnType.NUMBER:
        parts.append(_("a number, e.g. 3.5"))
    if column.minimum is not None:
        parts.append(_("at least {minimum}").format(minimum=f"{column.minimum:g}"))
    if column.max_length is not None:
        parts.append(_("up to {count} characters").format(count=column.max_length))
    return "; ".join(parts)


# --- Rejected rows -------------------------------------------------------------------------------


def rejects_path(input_path: str | Path) -> Path:
    """Where the rejected rows of ``input_path`` go: ``<stem>.rejected.csv`` beside it."""
    input_path = Path(input_path)
    return input_path.with_name(f"{input_path.stem}.rejected.csv")


class _ErrorLike(Protocol):
    row: int
    column: str
    value: str | None
    message: str


def _reason(error: _ErrorLike) -> str:
    reason = getattr(error, "reason", None)  # RowError's, which also names the canonical column
    if isinstance(reason, str):
        return reason
    if not error.column:
        return error.message
    return _('column "{column}": {message}').format(column=error.column, message=error.message)


class RejectsWriter:
    """Writes rejected rows to a CSV file: the file's own columns, then ``row`` and ``errors``.

    Each row keeps the values as they were in the file, so the user can fix them in place and
    import the rejects file itself (``row`` and ``errors`` are then ignored as unknown columns).
    The file appears when the writer closes, and only if it holds rows; an error inside the
    ``with`` block leaves any earlier file untouched.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.rows = 0
        self._columns: list[str] | None = None
        self._temporary: Path | None = None
        self._stream: IO[str] | None = None
        self._writer: Any = None

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if error is None:
            self.close()
        else:
            self._abandon()

    def write(
        self, rejected: pa.Table | ParsedBatch, errors: Iterable[_ErrorLike] | None = None
    ) -> None:
        """Write the rows of ``rejected`` (raw text plus ``row_number``) with their ``errors``.

        A :class:`ParsedBatch` brings its own errors. Errors whose row is not in the table are
        written as rows of their own, with empty values.
        """
        if isinstance(rejected, ParsedBatch):
            rejected, errors = rejected.rejected, rejected.errors if errors is None else errors
        reasons = _reasons_by_row(errors or ())
        names = rejected.column_names
        number_index = names.index(ROW_NUMBER)
        original = [name for index, name in enumerate(names) if index != number_index]
        self._start(original)
        assert self._columns is not None
        if original == self._columns:
            placement: list[int | None] = list(range(len(original)))
        else:  # a later table with other columns: place its values by name
            placement = [
                self._columns.index(name) if name in self._columns else None for name in original
            ]
        rows: list[tuple[int, list[str]]] = []
        columns = [rejected.column(index).to_pylist() for index in range(len(names))]
        for record in zip(*columns, strict=True):
            number = record[number_index]
            values = [""] * len(self._columns)
            cells = [value for index, value in enumerate(record) if index != number_index]
            for target, value in zip(placement, cells, strict=True):
                if target is not None and value is not None:
                    values[target] = value
            rows.append((number, values))
            reasons.setdefault(number, [])
        known = {number for number, _values in rows}
        rows.extend(
            (number, [""] * len(self._columns)) for number in reasons if number not in known
        )
        for number, values in sorted(rows, key=lambda item: item[0]):
            self._writer.writerow([*values, number, "; ".join(reasons[number])])
            self.rows += 1

    def write_errors(self, errors: Iterable[_ErrorLike]) -> None:
        """Write errors whose original values are not at hand (e.g. found after loading)."""
        self.write(pa.table({ROW_NUMBER: pa.array([], pa.int64())}), errors)

    def close(self) -> None:
        """Finish the file: it replaces ``path`` if it holds rows, else nothing is written."""
        if self._stream is None:
            return
        self._stream.close()
        self._stream = None
        if self.rows:
            assert self._temporary is not None
            os.replace(self._temporary, self.path)
            self._temporary = None
        else:
            self._abandon()

    def _start(self, columns: list[str]) -> None:
        if self._stream is not None:
            return
        self._columns = columns
        self._temporary = _temporary_beside(self.path)
        self._stream = self._temporary.open("w", encoding="utf-8-sig", newline="")
        self._writer = csv.writer(self._stream)
        self._writer.writerow([*columns, _("row"), _("errors")])

    def _abandon(self) -> None:
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self._temporary is not None:
            self._temporary.unlink(missing_ok=True)
            self._temporary = None


def _reasons_by_row(errors: Iterable[_ErrorLike]) -> dict[int, list[str]]:
    reasons: dict[int, list[str]] = {}
    for error in errors:
        reasons.setdefault(error.row, []).append(_reason(error))
    return reasons


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
    with _replacing(path) as temporary:
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


def _write_csv(tables: Iterator[pa.Table], path: Path, zone: str, delimiter: str) -> int:
    rows = 0
    with path.open("wb") as stream:
        stream.write(BOM.encode())
        writer: pa_csv.CSVWriter | None = None
        schema: pa.Schema | None = None
        for table in tables:
            converted = pa.table(
                [_as_text(column.combine_chunks(), zone) for column in table.columns],
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
            if sheet_rows == _EXCEL_MAX_ROWS:  # Excel's limit: go on in a new sheet
                sheet = new_sheet()
            sheet.append(values)
            sheet_rows += 1
            rows += 1
    if sheet is None:
        book.create_sheet(_sheet_title(stem, 1))
    book.save(path)
    return rows
