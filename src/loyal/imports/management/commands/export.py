"""``loyal export KIND FILE``: records to .csv, .xlsx, .json or .jsonl, in importable columns."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _

from loyal.config.checks import ensure_migrated
from loyal.customers.models import DEFAULT_SOURCE
from loyal.imports import kinds
from loyal.imports.exporting import export_batches
from loyal.imports.writing import write_table


class Command(BaseCommand):
    help = "Export records to CSV, Excel (.xlsx) or JSON, in the columns `loyal import` reads."

    def add_arguments(self, parser):
        parser.add_argument("kind", choices=list(kinds.KINDS))
        parser.add_argument(
            "file", type=Path, help="Where to write; the format follows the suffix."
        )
        parser.add_argument("--source", default=DEFAULT_SOURCE)

    def handle(self, *args, **options):
        ensure_migrated()
        path: Path = options["file"]
        if path.suffix.lower() not in (".csv", ".xlsx", ".json", ".jsonl"):
            raise CommandError(
                _("Cannot write {path}: use a .csv, .xlsx, .json or .jsonl file name.").format(
                    path=path
                )
            )
        rows = 0

        def counted(batches):
            nonlocal rows
            for batch in batches:
                rows += batch.num_rows
                yield batch

        write_table(
            counted(export_batches(kinds.KINDS[options["kind"]], source=options["source"])), path
        )
        self.stdout.write(
            _("Wrote {rows} {kind} rows to {path}.").format(
                rows=rows, kind=options["kind"], path=path
            )
        )
