"""Opening users' CSV and Excel files for import, and reading column mappings.

:func:`open_import` checks a file's header before any row is read, then parses its rows batch by
batch; the files themselves are read in bounded memory by ``loyal.imports.file_sources``.
"""

from __future__ import annotations

import csv
import io
import json
import queue
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import TracebackType
from typing import TypeVar

import pyarrow as pa
import pyarrow.compute as pc
from django.utils import translation
from django.utils.translation import gettext as _

from loyal.imports.file_sources import (
    CSV_SUFFIXES,
    EXCEL_SUFFIXES,
    SAMPLE_BYTES,
    BadRow,
    CsvSource,
    ExcelSource,
    Source,
    detect_encoding,
    sniff_delimiter,
)
from loyal.imports.headers import ImportFileError, resolve_kind
from loyal.imports.kinds import KINDS, ROW_NUMBER, Kind
from loyal.imports.parsing import ParsedBatch, TableParser

# --- The public side -----------------------------------------------------------------------------


class ImportFile:
    """An open import file: its header is read and checked; rows come from :meth:`batches`.

    Use as a context manager (or call :meth:`close`) so Excel workbooks are closed.
    """

    def __init__(
        self, path: Path, kind: Kind, source: Source, parser: TableParser, batch_rows: int
    ) -> None:
        self.path = path
        self.kind = kind
        self._source = source
        self._parser = parser
        self._batch_rows = batch_rows

    @property
    def file_columns(self) -> tuple[str, ...]:
        """The column names as the file's header row has them."""
        return self._source.columns

    @property
    def columns(self) -> tuple[str, ...]:
        """The canonical columns found, in the kind's order."""
        return self._parser.columns

    @property
    def attribute_names(self) -> tuple[str, ...]:
        """Names of the free attributes (customers' ``attr.*`` columns) found."""
        return self._parser.header.attribute_names

    @property
    def encoding(self) -> str | None:
        """The text encoding used (None for Excel)."""
        return getattr(self._source, "encoding", None)

    @property
    def warnings(self) -> list[str]:
        """Things ignored on the way (unknown columns...); grows while batches are read."""
        return [*self._parser.warnings, *self._source.warnings]

    def batches(self) -> Iterator[ParsedBatch]:
        """Parse the rows, ``batch_rows`` at a time; each call reads the file from the start."""
        for table, numbers, bad_rows in self._source.tables(self._batch_rows):
            batch = self._parser.parse(table, numbers)
            if bad_rows:
                batch = self._with_bad_rows(batch, bad_rows)
            yield batch

    def _with_bad_rows(self, batch: ParsedBatch, bad_rows: list[BadRow]) -> ParsedBatch:
        """Add the records Arrow could not split to ``batch``, keeping rows in file order."""
        width = len(self.file_columns)

        def table(rows: list[BadRow]) -> pa.Table:
            columns = [pa.array([row.values[i] for row in rows], pa.string()) for i in range(width)]
            return pa.Table.from_arrays(columns, names=list(self.file_columns))

        short = [row for row in bad_rows if row.error is None]
        long = [row for row in bad_rows if row.error is not None]
        valid, rejected, errors = [batch.valid], [batch.rejected], list(batch.errors)
        if short:
            parsed = self._parser.parse(table(short), [row.row for row in short])
            valid.append(parsed.valid)
            rejected.append(parsed.rejected)
            errors.extend(parsed.errors)
        if long:
            numbers = pa.array([row.row for row in long], pa.int64())
            rejected.append(table(long).append_column(ROW_NUMBER, numbers))
            errors.extend(row.error for row in long if row.error is not None)
        return ParsedBatch(
            _in_row_order(pa.concat_tables(valid)),
            _in_row_order(pa.concat_tables(rejected)),
            sorted(errors, key=lambda error: error.row),
        )

    def close(self) -> None:
        self._source.close()

    def __enter__(self) -> ImportFile:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


T = TypeVar("T")


def read_ahead(items: Iterator[T]) -> Iterator[T]:
    """The items of ``items``, the next one made in a thread while the caller uses this one.

    Parsing a batch (Arrow, which lets go of the interpreter lock) then overlaps with writing the
    previous one to the database. One item waits at most, so memory stays bounded. An error in
    the thread is raised to the caller at the item where it happened; messages are in the
    caller's language. When the caller stops early, the thread stops after its current item.
    """
    language = translation.get_language()
    handoff: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=1)
    stopped = threading.Event()

    def hand_over(message: tuple[bool, object]) -> bool:
        while not stopped.is_set():
            try:
                handoff.put(message, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        with translation.override(language):
            try:
                for item in items:
                    if not hand_over((True, item)):
                        return
            except BaseException as error:  # raised again in the caller's thread
                hand_over((False, error))
                return
            hand_over((False, None))

    thread = threading.Thread(target=produce, name="loyal-import-reader", daemon=True)
    thread.start()
    try:
        while True:
            is_item, value = handoff.get()
            if is_item:
                yield value  # type: ignore[misc]
            elif value is None:
                return
            else:
                raise value  # type: ignore[misc]
    finally:
        stopped.set()
        thread.join()


def _in_row_order(table: pa.Table) -> pa.Table:
    numbers = table.column(table.num_columns - 1)  # row_number comes last
    return table.take(pc.sort_indices(numbers))


def open_import(
    path: str | Path,
    kind: Kind | str,
    *,
    mapping: Mapping[str, str | None] | None = None,
    encoding: str | None = None,
    sheet: str | int | None = None,
    date_format: str | None = None,
    timezone: str = "UTC",
    batch_rows: int = 50_000,
) -> ImportFile:
    """Open a CSV (.csv, .txt, .tsv) or Excel (.xlsx) file of ``kind`` records for import.

    The header is read and checked now: a missing file, an unsupported format, an empty file, a
    missing required column, two columns mapped to one, or undecodable text raise
    :class:`ImportFileError`. ``mapping`` sends file column names to canonical ones; ``encoding``
    overrides the UTF-8 / GB18030 detection; ``sheet`` picks an Excel sheet (default the first);
    ``date_format`` (``strptime`` syntax) replaces the accepted date formats; naive times are in
    ``timezone``. Values are parsed batch by batch, ``batch_rows`` rows at a time.
    """
    path = Path(path)
    kind = resolve_kind(kind)
    if batch_rows < 1:
        raise ValueError("batch_rows must be at least 1")
    if not path.is_file():
        raise ImportFileError(_("Cannot import {file}: there is no such file.").format(file=path))
    suffix = path.suffix.lower()
    source: Source
    if suffix in CSV_SUFFIXES:
        source = CsvSource(path, encoding)
    elif suffix in EXCEL_SUFFIXES:
        source = ExcelSource(path, sheet)
    else:
        raise ImportFileError(
            _(
                'Cannot import {file}: "{suffix}" files are not supported. Use .csv, .tsv, .txt '
                "or .xlsx (save an old .xls workbook as .xlsx)."
            ).format(file=path.name, suffix=suffix or path.name)
        )
    try:
        parser = TableParser(
            kind,
            source.columns,
            file_name=path.name,
            mapping=mapping,
            date_format=date_format,
            timezone=timezone,
        )
    except BaseException:
        source.close()
        raise
    return ImportFile(path, kind, source, parser, batch_rows)


# Cells that name no Loyal column, in any kind: a first row like "file column,loyal column".
_ALL_COLUMNS = frozenset(name for kind in KINDS.values() for name in kind.column_names)


def load_mapping(path: str | Path) -> dict[str, str | None]:
    """Read a column mapping: a JSON object, or a two-column CSV (file column, Loyal column).

    A CSV's first row is taken as a header when its second cell is no Loyal column. An empty
    Loyal column means "ignore this file column".
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        raise ImportFileError(
            _("Cannot read the mapping file {file}: there is no such file.").format(file=path)
        ) from None
    encoding = detect_encoding(data, True, path.name, None)
    text = data.decode(encoding).removeprefix("\ufeff")
    if path.suffix.lower() == ".json":
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as error:
            raise ImportFileError(
                _("{file} is not valid JSON: {detail}.").format(file=path.name, detail=error)
            ) from None
        if not isinstance(loaded, dict) or not all(
            isinstance(key, str) and (value is None or isinstance(value, str))
            for key, value in loaded.items()
        ):
            raise ImportFileError(
                _(
                    "{file} must hold one JSON object from file columns to Loyal columns, e.g. "
                    '{{"客户编号": "external_id"}}.'
                ).format(file=path.name)
            )
        return dict(loaded)

    mapping: dict[str, str | None] = {}
    rows = csv.reader(io.StringIO(text), delimiter=sniff_delimiter(text[:SAMPLE_BYTES], ".csv"))
    for number, row in enumerate(rows, start=1):
        cells = [cell.strip() for cell in row]
        if not any(cells):
            continue
        if len(cells) < 2 and number > 1:
            raise ImportFileError(
                _(
                    "{file}, row {row}: expected two columns (file column, Loyal column), "
                    "found {cells}."
                ).format(file=path.name, row=number, cells=row)
            )
        source, target = cells[0], (cells[1] if len(cells) > 1 else "")
        if number == 1 and not (target in _ALL_COLUMNS or target.casefold().startswith("attr.")):
            continue
        if source in mapping:
            raise ImportFileError(
                _('{file}, row {row}: column "{column}" is mapped twice.').format(
                    file=path.name, row=number, column=source
                )
            )
        mapping[source] = target or None
    return mapping
