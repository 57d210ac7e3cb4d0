"""Importing records: one way in for files, the demo store and (later) the API's bulk endpoints."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import closing
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa
from django.db import transaction
from django.utils.translation import gettext as _

from loyal.accounts.models import AuditEntry
from loyal.customers.models import DEFAULT_SOURCE
from loyal.imports import kinds
from loyal.imports.files import ImportFileError, RowError, open_import
from loyal.imports.loading import Loader, LoadResult, MergeError
from loyal.imports.reading import read_ahead
from loyal.imports.staging import detach_stale
from loyal.imports.writing import RejectsWriter, rejects_path

# Errors a report keeps to show; the rest are counted (all are in the rejects file).
MAX_ERRORS_SHOWN = 200


class ImportRefused(Exception):
    """An import that could not start: the message says what is wrong and where."""


@dataclass(frozen=True)
class ImportReport:
    file: str
    kind: str
    rows_read: int
    rows_rejected: int
    errors: list[str]  # the first MAX_ERRORS_SHOWN, each naming file, row, column and rule
    error_count: int
    warnings: list[str] = field(default_factory=list)
    result: LoadResult | None = None  # None when nothing was written
    rejects_file: Path | None = None

    @property
    def written(self) -> bool:
        return self.result is not None


class _Rollback(Exception):
    pass


def import_file(
    path: Path,
    kind_name: str,
    *,
    source: str = DEFAULT_SOURCE,
    mapping: dict[str, str] | None = None,
    encoding: str | None = None,
    sheet: str | None = None,
    date_format: str | None = None,
    timezone: str = "UTC",
    skip_invalid: bool = False,
    on_rows: Callable[[int], None] | None = None,
) -> ImportReport:
    """Validate ``path`` and load it as ``kind_name`` records in one transaction.

    Without ``skip_invalid``, a file with any error changes nothing. With it, the valid rows are
    loaded and the rejected ones are written next to the input with their reasons.
    """
    kind = _kind(kind_name)
    path = Path(path)
    errors: list[RowError | MergeError] = []
    error_count = 0
    rows_read = 0
    rejected_rows: set[int] = set()
    rejects_file = rejects_path(path) if skip_invalid else None
    report: ImportReport | None = None
    try:
        with (
            transaction.atomic(),
            open_import(
                path,
                kind,
                mapping=mapping,
                encoding=encoding,
                sheet=sheet,
                date_format=date_format,
                timezone=timezone,
            ) as import_file_,
            # The next batch is parsed while this one is staged; the reader thread ends (here, on
            # an error too) before the file is closed.
            closing(read_ahead(import_file_.batches())) as batches,
            _rejects(rejects_file) as rejects,
        ):
            loader = Loader(kind, source=source, label=path.name)
            for batch in batches:
                rows_read += batch.valid.num_rows + batch.rejected.num_rows
                error_count += len(batch.errors)
                errors.extend(batch.errors[: max(MAX_ERRORS_SHOWN - len(errors), 0)])
                if batch.rejected.num_rows:
                    rejected_rows.update(batch.rejected.column(kinds.ROW_NUMBER).to_pylist())
                    if rejects is not None:
                        rejects.write(batch.rejected, batch.errors)
                loader.add(batch.valid)
                if on_rows is not None:
                    on_rows(batch.valid.num_rows + batch.rejected.num_rows)
            merge_errors = loader.check()
            if merge_errors:
                error_count += len(merge_errors)
                errors.extend(merge_errors[: max(MAX_ERRORS_SHOWN - len(errors), 0)])
                rows = {error.row for error in merge_errors}
                rejected_rows.update(rows)
                if skip_invalid:
                    if rejects is not None:
                        rejects.write_errors(merge_errors)
                    loader.discard(rows)
            report = ImportReport(
                file=path.name,
                kind=kind.name,
                rows_read=rows_read,
                rows_rejected=len(rejected_rows),
                errors=[_describe(path, error) for error in errors],
                error_count=error_count,
                warnings=list(import_file_.warnings),
                rejects_file=rejects_file if rejected_rows else None,
            )
            if error_count and not skip_invalid:
                raise _Rollback
            result = loader.merge()
            AuditEntry.objects.create(
                origin="import",
                action="import.{}".format(kind.name),
                object_type="file",
                object_id=path.name[:100],
                details={
                    "rows": rows_read,
                    "rejected": len(rejected_rows),
                    "created": result.created,
                    "updated": result.updated,
                    "also_created": result.also_created,
                },
            )
            report = replace(report, result=result)
    except _Rollback:
        pass
    except ImportFileError as error:
        raise ImportRefused(str(error)) from error
    finally:
        detach_stale()
    if rejects_file is not None and not rejected_rows and rejects_file.exists():
        rejects_file.unlink()
    assert report is not None
    return report


def load_tables(
    kind_name: str, tables: Iterable[pa.Table], *, source: str = DEFAULT_SOURCE, label: str = "load"
) -> LoadResult:
    """Load already-parsed tables (canonical columns, Arrow types of ``kinds``) in one transaction.

    Used by the demo store and bulk API calls; rows that break a cross-row rule raise ImportRefused.
    """
    kind = _kind(kind_name)
    try:
        return _load_tables(kind, tables, source, label)
    finally:
        detach_stale()


def _load_tables(
    kind: kinds.Kind, tables: Iterable[pa.Table], source: str, label: str
) -> LoadResult:
    with transaction.atomic():
        loader = Loader(kind, source=source, label=label)
        next_row = 2
        for table in tables:
            if kinds.ROW_NUMBER not in table.column_names:
                numbers = pa.array(range(next_row, next_row + table.num_rows), pa.int64())
                table = table.append_column(kinds.ROW_NUMBER, numbers)
            next_row += table.num_rows
            loader.add(table)
        errors = loader.check()
        if errors:
            raise ImportRefused(
                "; ".join("row {}: {} ({})".format(e.row, e.message, e.column) for e in errors[:20])
            )
        return loader.merge()


def _kind(kind_name: str) -> kinds.Kind:
    try:
        return kinds.KINDS[kind_name]
    except KeyError:
        raise ImportRefused(
            _("Unknown kind {kind!r}: use one of {choices}.").format(
                kind=kind_name, choices=", ".join(kinds.KINDS)
            )
        ) from None


def _describe(path: Path, error: RowError | MergeError) -> str:
    if isinstance(error, RowError):
        return str(error)
    value = "" if error.value is None else ' "{}"'.format(error.value)
    return _('{file}, row {row}, column "{column}"{value}: {message}').format(
        file=path.name, row=error.row, column=error.column, value=value, message=error.message
    )


class _NoRejects:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


def _rejects(path: Path | None) -> RejectsWriter | _NoRejects:
    return _NoRejects() if path is None else RejectsWriter(path)
