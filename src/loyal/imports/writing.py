"""Writing files: import templates, rejected rows with their reasons, and exports of any table.

Exports (:func:`write_table`) and the safe replacing of files that every writer here relies on
live in :mod:`loyal.imports.formats`: a failure never leaves half a file where the user expects a
whole one.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType
from typing import IO, Any, Protocol

import pyarrow as pa
from django.utils.translation import gettext as _

from loyal.imports.formats import (
    BOM,
    EXCEL_MAX_ROWS,
    FORMATS,
    replacing,
    temporary_beside,
    write_table,
)
from loyal.imports.headers import resolve_kind
from loyal.imports.kinds import ROW_NUMBER, Column, ColumnType, Kind
from loyal.imports.parsing import ParsedBatch

__all__ = [
    "BOM",
    "FORMATS",
    "RejectsWriter",
    "rejects_path",
    "write_table",
    "write_template",
]

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
    with replacing(path) as temporary:
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
            validation.add(f"{letter}2:{letter}{EXCEL_MAX_ROWS}")
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
                str(column.help),
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
    help_sheet.append([str(kind.help)])
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
        self._temporary = temporary_beside(self.path)
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
