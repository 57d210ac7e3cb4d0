"""Reading users' CSV and Excel files in bounded memory, batch by batch, as tables of raw text.

CSV goes through Arrow's streaming reader with every column read as text (parsing is ours, so that
"007" stays "007" and errors name the cell); .xlsx goes through openpyxl's read-only mode. Either
way the file is never held whole in memory: rows come out in batches of ``batch_rows``.
"""

from __future__ import annotations

import codecs
import csv
import io
import sys
import zipfile
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
from django.utils.translation import gettext as _

from loyal.imports.headers import ImportFileError
from loyal.imports.parsing import RowError

CSV_SUFFIXES = (".csv", ".txt", ".tsv")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
DELIMITERS = (",", "\t", ";")
SAMPLE_BYTES = 1 << 20  # encoding and delimiter are judged on the first MiB
_BLOCK_BYTES = 1 << 20  # Arrow's read unit: bigger blocks are no faster and hold more memory


# --- Encodings and delimiters --------------------------------------------------------------------


def _arrow_encoding(encoding: str) -> str:
    # Arrow reads UTF-8 natively only when told exactly "utf8"; any other name is transcoded
    # through Python, which is several times slower. It skips a UTF-8 BOM itself.
    name = codecs.lookup(encoding).name
    return "utf8" if name in ("utf-8", "utf-8-sig") else name


def detect_encoding(head: bytes, complete: bool, file_name: str, encoding: str | None) -> str:
    """The encoding of a file whose first bytes are ``head`` (all of it when ``complete``)."""
    if encoding:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise ImportFileError(
                _(
                    '{file}: "{encoding}" is not a known text encoding (try utf-8 or gb18030).'
                ).format(file=file_name, encoding=encoding)
            ) from None
        candidates = [encoding]
    elif head.startswith(codecs.BOM_UTF8):
        candidates = ["utf-8"]
    elif head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        candidates = ["utf-16"]  # Excel's "Unicode text" export
    else:
        candidates = ["utf-8", "gb18030"]
    for candidate in candidates:
        decoder = codecs.getincrementaldecoder(candidate)()
        try:
            # Not final unless the file ended: the sample may stop inside a character.
            decoder.decode(head, final=complete)
        except UnicodeDecodeError:
            continue
        return candidate
    if encoding:
        raise ImportFileError(
            _("{file} cannot be read as {encoding}; check the --encoding option.").format(
                file=file_name, encoding=encoding
            )
        )
    raise ImportFileError(
        _(
            "{file} is neither UTF-8 nor GB18030 text. Save it as UTF-8 (in Excel: CSV UTF-8), "
            "or name its encoding with --encoding."
        ).format(file=file_name)
    )


def _decode_sample(head: bytes, encoding: str) -> str:
    text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(head)
    return text.removeprefix("\ufeff")


def sniff_delimiter(sample: str, suffix: str) -> str:
    """The delimiter that splits the first lines into the most, and most regular, fields."""
    best, best_score = ("\t" if suffix == ".tsv" else ","), (0, 0)
    for delimiter in DELIMITERS:
        records = []
        for record in csv.reader(io.StringIO(sample), delimiter=delimiter):
            records.append(len(record))
            if len(records) == 20:
                break
        if not records or records[0] < 2:
            continue
        score = (sum(count == records[0] for count in records), records[0])
        if score > best_score:
            best, best_score = delimiter, score
    return best


# --- Sources: something that yields tables of raw text with their row numbers -----------------


class Source(Protocol):
    columns: tuple[str, ...]
    warnings: list[str]

    def tables(self, batch_rows: int) -> Iterator[tuple[pa.Table, np.ndarray, list[BadRow]]]: ...

    def close(self) -> None: ...


class CsvSource:
    def __init__(self, path: Path, encoding: str | None) -> None:
        self.path = path
        self.warnings: list[str] = []
        with path.open("rb") as stream:
            head = stream.read(SAMPLE_BYTES + 1)
        complete = len(head) <= SAMPLE_BYTES
        head = head[:SAMPLE_BYTES]
        self.encoding = detect_encoding(head, complete, path.name, encoding)
        sample = _decode_sample(head, self.encoding)
        if not sample.strip():
            raise _empty(path.name)
        self.delimiter = sniff_delimiter(sample, path.suffix.lower())
        header = next(csv.reader(io.StringIO(sample), delimiter=self.delimiter), [])
        if not any(name.strip() for name in header):
            raise _empty(path.name)
        self.columns = tuple(header)

    def close(self) -> None:
        pass

    def tables(self, batch_rows: int) -> Iterator[tuple[pa.Table, np.ndarray, list[BadRow]]]:
        bad_rows: deque[BadRow] = deque()
        skipped: deque[int] = deque()  # row numbers Arrow dropped, so numbering stays true

        def on_invalid_row(row: Any) -> str:
            skipped.append(row.number)
            if row.text.strip():
                bad_rows.append(self._bad_row(row))
            return "skip"

        reader = self._open(on_invalid_row)
        next_row = 2
        pending: list[pa.RecordBatch] = []
        pending_numbers: list[np.ndarray] = []
        pending_rows = 0
        try:
            for record_batch in reader:
                numbers, next_row = _number_rows(record_batch.num_rows, next_row, skipped)
                pending.append(record_batch)
                pending_numbers.append(numbers)
                pending_rows += record_batch.num_rows
                # Flushing on many bad rows too keeps memory bounded when no row fits the header.
                while pending_rows >= batch_rows or len(bad_rows) >= batch_rows:
                    size = min(pending_rows, batch_rows)
                    table = pa.Table.from_batches(pending, schema=reader.schema)
                    all_numbers = np.concatenate(pending_numbers)
                    if size:
                        bad = _upto(bad_rows, int(all_numbers[size - 1]), batch_rows)
                    else:
                        bad = _upto(bad_rows, sys.maxsize, batch_rows)
                    yield table.slice(0, size), all_numbers[:size], bad
                    rest = table.slice(size)
                    pending, pending_numbers = rest.to_batches(), [all_numbers[size:]]
                    pending_rows = rest.num_rows
        except (pa.ArrowInvalid, UnicodeDecodeError) as error:
            raise self._unreadable(error, next_row) from None
        finally:
            reader.close()
        if pending_rows or bad_rows:
            table = pa.Table.from_batches(pending, schema=reader.schema)
            numbers = np.concatenate(pending_numbers) if pending_numbers else np.zeros(0, np.int64)
            yield table, numbers, list(bad_rows)

    def _open(self, on_invalid_row: Any) -> pa_csv.CSVStreamingReader:
        try:
            reader = pa_csv.open_csv(
                self.path,
                read_options=pa_csv.ReadOptions(
                    use_threads=False,
                    block_size=_BLOCK_BYTES,
                    encoding=_arrow_encoding(self.encoding),
                ),
                parse_options=pa_csv.ParseOptions(
                    delimiter=self.delimiter,
                    newlines_in_values=True,
                    # Blank lines are kept (and later skipped as blank rows) so that row numbers
                    # match what a spreadsheet shows.
                    ignore_empty_lines=False,
                    invalid_row_handler=on_invalid_row,
                ),
                convert_options=pa_csv.ConvertOptions(
                    column_types={name: pa.string() for name in self.columns},
                    strings_can_be_null=False,
                ),
            )
        except (pa.ArrowInvalid, UnicodeDecodeError) as error:
            raise self._unreadable(error, 2) from None
        if reader.schema.names != list(self.columns) or any(
            field.type != pa.string() for field in reader.schema
        ):
            reader.close()
            raise ImportFileError(
                _("{file}: the header row could not be read; check its quotes.").format(
                    file=self.path.name
                )
            )
        return reader

    def _bad_row(self, row: Any) -> BadRow:
        values = next(csv.reader(io.StringIO(row.text), delimiter=self.delimiter), [])
        width = len(self.columns)
        if len(values) <= width:
            # Trailing empty cells are often left out by hand; a spreadsheet shows them empty too.
            return BadRow(row.number, values + [""] * (width - len(values)), None)
        # Keep every value, so the rejects file still shows the whole row to fix.
        values[width - 1 :] = [self.delimiter.join(values[width - 1 :])]
        error = RowError(
            self.path.name,
            row.number,
            "",
            row.text,
            _(
                "the row has {actual} values but the header has {expected} columns; a value "
                "holding the delimiter ({delimiter}) must be in double quotes"
            ).format(
                actual=row.actual_columns,
                expected=row.expected_columns,
                delimiter={"\t": _("tab")}.get(self.delimiter, self.delimiter),
            ),
        )
        return BadRow(row.number, values, error)

    def _unreadable(self, error: Exception, row: int) -> ImportFileError:
        detail = str(error)
        if "UTF8" in detail or isinstance(error, UnicodeDecodeError):
            return ImportFileError(
                _(
                    "{file}: text after row {row} is not valid {encoding}; save the file as "
                    "UTF-8, or name its encoding with --encoding."
                ).format(file=self.path.name, row=row, encoding=self.encoding)
            )
        return ImportFileError(
            _(
                "{file} could not be read past row {row}; a double quote that is never closed is "
                "the usual cause. ({detail})"
            ).format(file=self.path.name, row=row, detail=detail)
        )


def _number_rows(count: int, next_row: int, skipped: deque[int]) -> tuple[np.ndarray, int]:
    """Row numbers for the next ``count`` records, stepping over rows Arrow skipped."""
    parts = []
    while count:
        while skipped and skipped[0] < next_row:
            skipped.popleft()
        run = count if not skipped else min(count, skipped[0] - next_row)
        if run:
            parts.append(np.arange(next_row, next_row + run, dtype=np.int64))
            next_row += run
            count -= run
        if count:
            skipped.popleft()
            next_row += 1
    return (np.concatenate(parts) if parts else np.zeros(0, np.int64)), next_row


@dataclass(frozen=True)
class BadRow:
    """A CSV record with more or fewer values than the header has columns."""

    row: int
    values: list[str]  # padded or folded to the header's width
    error: RowError | None  # None when only trailing values were missing: the row is parsed


def _upto(errors: deque[BadRow], last_row: int, limit: int) -> list[BadRow]:
    """Up to ``limit`` bad rows from the front of ``errors``, up to row ``last_row``."""
    taken: list[BadRow] = []
    while errors and errors[0].row <= last_row and len(taken) < limit:
        taken.append(errors.popleft())
    return taken


def _empty(file_name: str) -> ImportFileError:
    return ImportFileError(
        _("{file} is empty: its first row must hold the column names.").format(file=file_name)
    )


class ExcelSource:
    def __init__(self, path: Path, sheet: str | int | None) -> None:
        import openpyxl

        self.path = path
        self.warnings: list[str] = []
        self.encoding = None
        self.delimiter = None
        try:
            self._book = openpyxl.load_workbook(path, read_only=True, data_only=True)
        except (zipfile.BadZipFile, KeyError, OSError, ValueError) as error:
            raise ImportFileError(
                _(
                    "{file} is not a readable .xlsx workbook ({detail}); save it again from Excel."
                ).format(file=path.name, detail=error)
            ) from None
        try:
            self._sheet = self._pick_sheet(sheet)
            # Some writers record wrong sheet dimensions; read what is really there.
            self._sheet.reset_dimensions()
            for number, row in enumerate(self._sheet.iter_rows(values_only=True), start=1):
                names = [_cell_text(value) or "" for value in row]
                if any(name.strip() for name in names):
                    while not names[-1].strip():
                        names.pop()
                    self.columns = tuple(names)
                    self._header_row = number
                    break
            else:
                raise _empty(path.name)
        except BaseException:
            self._book.close()
            raise

    def _pick_sheet(self, sheet: str | int | None) -> Any:
        names = self._book.sheetnames
        if sheet is None:
            return self._book.worksheets[0]
        if isinstance(sheet, int) and 0 <= sheet < len(names):
            return self._book.worksheets[sheet]
        if sheet in names:
            return self._book[sheet]
        raise ImportFileError(
            _('{file} has no sheet "{sheet}"; its sheets are: {sheets}.').format(
                file=self.path.name, sheet=sheet, sheets=", ".join(names)
            )
        )

    def close(self) -> None:
        self._book.close()

    def tables(self, batch_rows: int) -> Iterator[tuple[pa.Table, np.ndarray, list[BadRow]]]:
        width = len(self.columns)
        rows: list[list[str | None]] = []
        numbers: list[int] = []
        overflow = 0
        start = self._header_row + 1
        for number, values in enumerate(
            self._sheet.iter_rows(min_row=start, values_only=True), start=start
        ):
            cells = [_cell_text(value) for value in values[:width]]
            if len(values) > width and any(value is not None for value in values[width:]):
                overflow += 1
            if not any(cells):
                continue
            cells.extend([None] * (width - len(cells)))
            rows.append(cells)
            numbers.append(number)
            if len(rows) >= batch_rows:
                yield self._table(rows), np.array(numbers, np.int64), []
                rows, numbers = [], []
        if rows:
            yield self._table(rows), np.array(numbers, np.int64), []
        warning = _(
            "{file}: {count} row(s) have values right of the last named column; they were ignored."
        ).format(file=self.path.name, count=overflow)
        if overflow and warning not in self.warnings:
            self.warnings.append(warning)

    def _table(self, rows: list[list[str | None]]) -> pa.Table:
        columns = [pa.array(column, pa.string()) for column in zip(*rows, strict=True)]
        names = [str(index) for index in range(len(self.columns))]
        return pa.Table.from_arrays(columns, names=names)


def _cell_text(value: Any) -> str | None:
    """The text of a cell, in forms the parser reads back exactly (ISO dates, plain numbers)."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))
        # Excel keeps 15 significant digits; more would show binary noise such as 36.900000000000006.
        return format(Decimal(format(value, ".15g")), "f")
    if isinstance(value, datetime):
        if value.time() == time(0):
            return value.date().isoformat()
        return value.isoformat(" ")
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return str(value)
    return str(value)
