"""Turning a table of raw text into Loyal's canonical Arrow columns, naming every bad value.

The reader (``loyal.imports.reading``) hands this module tables of strings exactly as they stand in
a file; the API's bulk endpoints can do the same through :func:`parse_table`. The header is matched
to the kind's columns by ``loyal.imports.headers``, then each value is checked against its column
in ``loyal.imports.kinds`` by ``loyal.imports.values``: a row with any bad value goes to
``rejected`` (raw text, so it can be written back for the user to fix) and every problem becomes a
:class:`RowError` naming file, row, column, value and how to fix it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from django.utils.translation import gettext as _

from loyal.imports.headers import (
    ATTRIBUTE_PREFIX,
    ImportFileError,
    resolve_header,
    resolve_kind,
)
from loyal.imports.kinds import ATTRIBUTES, ROW_NUMBER, Kind
from loyal.imports.values import Converter, true_positions


@dataclass(frozen=True)
class RowError:
    """One bad value (or bad row, when ``column`` is empty) of an import."""

    file: str
    row: int  # as a spreadsheet shows it: the header is row 1
    column: str  # as the file names it
    value: str | None
    message: str  # names the value and the rule, e.g. '"2024-13-45" is not a date (...)'
    canonical: str = ""  # Loyal's name for the column, when the file calls it something else

    @property
    def reason(self) -> str:
        """The error without file and row, as the rejects file shows it."""
        if not self.column:
            return self.message
        if self.canonical and self.canonical != self.column:
            return _('column "{column}" ({canonical}): {message}').format(
                column=self.column, canonical=self.canonical, message=self.message
            )
        return _('column "{column}": {message}').format(column=self.column, message=self.message)

    def __str__(self) -> str:
        return _("{file}, row {row}, {reason}").format(
            file=self.file, row=self.row, reason=self.reason
        )


@dataclass(frozen=True)
class ParsedBatch:
    """The outcome of parsing a block of rows.

    ``valid`` holds the canonical columns found (typed as ``kinds.ARROW_TYPES``), ``attributes``
    for customers with ``attr.*`` columns, and ``row_number``. ``rejected`` holds the rows with
    any error, as raw text under the file's own column names, plus ``row_number``.
    """

    valid: pa.Table
    rejected: pa.Table
    errors: list[RowError]


def resolve_zone(name: str) -> ZoneInfo:
    """The IANA time zone ``name``, or an :class:`ImportFileError` saying what to use."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ImportFileError(
            _('"{zone}" is not a known time zone; use a name such as Asia/Shanghai or UTC.').format(
                zone=name
            )
        ) from None


# --- Tables --------------------------------------------------------------------------------------


def _as_text(column: pa.ChunkedArray | pa.Array) -> pa.Array:
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.type == pa.string():
        return array
    if array.type == pa.null():
        return pa.nulls(len(array), pa.string())
    return array.cast(pa.string())


class TableParser:
    """Parses successive tables of raw text that share one header (the batches of one file).

    ``file_columns`` are the names in the file's header row, in order; every table given to
    :meth:`parse` has exactly these columns, as text. Header problems raise
    :class:`ImportFileError` here, before any row; ``warnings`` lists the harmless ones.
    """

    def __init__(
        self,
        kind: Kind | str,
        file_columns: Sequence[str],
        *,
        file_name: str = "<table>",
        mapping: Mapping[str, str | None] | None = None,
        date_format: str | None = None,
        timezone: str = "UTC",
    ) -> None:
        self.kind = resolve_kind(kind)
        self.header = resolve_header(self.kind, file_columns, file_name=file_name, mapping=mapping)
        zone = resolve_zone(timezone)
        self._converters = [
            (self.header.targets.index(name), Converter(self.kind.column(name), date_format, zone))
            for name in self.header.columns
        ]
        self._attributes = [
            (position, target[len(ATTRIBUTE_PREFIX) :])
            for position, target in enumerate(self.header.targets)
            if target is not None and target.startswith(ATTRIBUTE_PREFIX)
        ]
        required = [
            position for position, converter in self._converters if converter.column.required
        ]
        # Blank rows are found by looking at required columns first: any value there ends the
        # search early, and every row has one unless it is blank or in error.
        self._blank_check_order = required + [
            position for position in range(len(file_columns)) if position not in required
        ]

    @property
    def file_name(self) -> str:
        return self.header.file_name

    @property
    def columns(self) -> tuple[str, ...]:
        """The canonical columns found, in the kind's order."""
        return self.header.columns

    @property
    def warnings(self) -> tuple[str, ...]:
        return self.header.warnings

    def parse(
        self,
        table: pa.Table,
        row_numbers: Sequence[int] | np.ndarray | None = None,
        *,
        first_row: int = 2,
    ) -> ParsedBatch:
        """Parse one table; rows are numbered ``row_numbers``, else from ``first_row`` on.

        Rows whose every cell is empty are skipped, as a spreadsheet user expects.
        """
        header = self.header
        if table.num_columns != len(header.file_columns):
            raise ValueError(
                f"expected {len(header.file_columns)} columns, got {table.num_columns}"
            )
        raw = [_as_text(column) for column in table.columns]
        if row_numbers is None:
            numbers = np.arange(first_row, first_row + table.num_rows, dtype=np.int64)
        else:
            numbers = np.asarray(row_numbers, dtype=np.int64)
        blank = self._blank_rows(raw)
        if blank is not None:
            keep = pc.invert(blank)
            raw = [column.filter(keep) for column in raw]
            numbers = numbers[keep.to_numpy(zero_copy_only=False)]
        length = len(numbers)

        typed: dict[str, pa.Array] = {}
        problems: dict[int, list[tuple[int, str]]] = {}
        for position, converter in self._converters:
            column = converter.column
            values, column_problems = converter.convert(raw[position])
            if column.required and values.null_count:
                for row in true_positions(pc.is_null(values)):
                    column_problems.setdefault(
                        int(row), _("a value is required, but the cell is empty")
                    )
            for row, message in column_problems.items():
                problems.setdefault(row, []).append((position, message))
            typed[column.name] = values
        if self._attributes:
            typed[ATTRIBUTES] = self._attribute_column(raw)
        typed[ROW_NUMBER] = pa.array(numbers, pa.int64())

        valid = pa.table(typed)
        rejected = pa.Table.from_arrays(
            [*raw, pa.array(numbers, pa.int64())], names=[*header.file_columns, ROW_NUMBER]
        )
        if not problems:
            return ParsedBatch(valid, rejected.slice(0, 0), [])
        bad = np.zeros(length, dtype=bool)
        bad[list(problems)] = True
        errors = [
            self._error(raw, int(numbers[row]), row, position, message)
            for row in sorted(problems)
            for position, message in sorted(problems[row], key=lambda item: item[0])
        ]
        return ParsedBatch(valid.filter(pa.array(~bad)), rejected.filter(pa.array(bad)), errors)

    def _blank_rows(self, raw: list[pa.Array]) -> pa.Array | None:
        blank: pa.Array | None = None
        for position in self._blank_check_order:
            empty = pc.fill_null(pc.equal(raw[position], ""), True)
            blank = empty if blank is None else pc.and_(blank, empty)
            if not pc.any(blank).as_py():
                return None
        return blank

    def _attribute_column(self, raw: list[pa.Array]) -> pa.Array:
        names = [name for _position, name in self._attributes]
        columns = [
            pc.utf8_trim_whitespace(raw[position]).to_pylist() for position, _ in self._attributes
        ]
        texts: list[str | None] = []
        for values in zip(*columns, strict=True):
            found = {name: value for name, value in zip(names, values, strict=True) if value}
            texts.append(json.dumps(found, ensure_ascii=False) if found else None)
        return pa.array(texts, pa.string())

    def _error(
        self, raw: list[pa.Array], row: int, position: int, column: int, message: str
    ) -> RowError:
        value = raw[column][position].as_py()
        name = self.header.file_columns[column]
        target = self.header.targets[column] or ""
        return RowError(
            self.file_name,
            row,
            name,
            value if value != "" else None,
            message,
            canonical=target if target != name else "",
        )


def parse_table(
    kind: Kind | str,
    table: pa.Table,
    *,
    file_name: str = "<table>",
    first_row: int = 2,
    mapping: Mapping[str, str | None] | None = None,
    date_format: str | None = None,
    timezone: str = "UTC",
) -> ParsedBatch:
    """Parse a table of raw text (no file needed), its rows numbered from ``first_row``.

    The columns are named as in the source (mapped through ``mapping``, else matched to canonical
    names); values that are not text are cast to text first. Raises :class:`ImportFileError` for
    header problems; use :class:`TableParser` to see the warnings or to parse several tables.
    """
    parser = TableParser(
        kind,
        table.column_names,
        file_name=file_name,
        mapping=mapping,
        date_format=date_format,
        timezone=timezone,
    )
    return parser.parse(table, first_row=first_row)
