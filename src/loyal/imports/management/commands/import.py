"""``loyal import KIND FILE``: load customers, orders, subscriptions, events, interactions or consents."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError
from django.utils.translation import gettext as _
from tqdm import tqdm

from loyal.config.checks import ensure_migrated
from loyal.config.commands import LoyalCommand
from loyal.customers.models import DEFAULT_SOURCE
from loyal.imports import kinds
from loyal.imports.files import ImportFileError, load_mapping
from loyal.imports.services import MAX_ERRORS_SHOWN, ImportRefused, import_file
from loyal.imports.writing import write_template


class Command(LoyalCommand):
    @property
    def help(self) -> str:  # translated when the parser is built
        return _(
            "Import records from a CSV or Excel (.xlsx) file. Re-importing the same file "
            "changes nothing."
        )

    def add_arguments(self, parser):
        parser.add_argument(
            "kind",
            nargs="?",
            help=_("What the file holds: {kinds}.").format(kinds=", ".join(kinds.KINDS)),
        )
        parser.add_argument("file", nargs="?", type=Path, help=_("The .csv or .xlsx file."))
        parser.add_argument(
            "--template",
            metavar="KIND",
            choices=list(kinds.KINDS),
            help=_(
                "Write an empty template for KIND (to FILE, default KIND-template.xlsx) and stop."
            ),
        )
        parser.add_argument(
            "--map",
            action="append",
            default=[],
            metavar="COLUMN=FIELD",
            help=_(
                "Read the file's COLUMN as FIELD, e.g. --map 客户编号=external_id (repeatable)."
            ),
        )
        parser.add_argument(
            "--mapping-file", type=Path, help=_("A CSV (column,field) or JSON file of mappings.")
        )
        parser.add_argument(
            "--source",
            default=DEFAULT_SOURCE,
            help=_("The system the ids come from (default: %(default)s)."),
        )
        parser.add_argument("--encoding", help=_("Text encoding (default: UTF-8, else GB18030)."))
        parser.add_argument("--sheet", help=_("Excel sheet to read (default: the first)."))
        parser.add_argument(
            "--date-format",
            help=_("strptime format of dates, e.g. %%d/%%m/%%Y (default: common formats)."),
        )
        parser.add_argument(
            "--timezone",
            default=None,
            help=_("Time zone of times without one (default: LOYAL_TIME_ZONE)."),
        )
        parser.add_argument(
            "--skip-invalid",
            action="store_true",
            help=_(
                "Load the valid rows and write the rejected ones with reasons next to the file."
            ),
        )

    def handle(self, *args, **options):
        ensure_migrated()
        if options["template"]:
            # `loyal import --template KIND [FILE]`: the one positional given is the file.
            given = options["file"] or (Path(options["kind"]) if options["kind"] else None)
            path = given or Path("{}-template.xlsx".format(options["template"]))
            write_template(kinds.KINDS[options["template"]], path)
            self.stdout.write(
                _("Wrote the {kind} template to {path}.").format(
                    kind=options["template"], path=path
                )
            )
            return
        if not options["kind"] or not options["file"]:
            raise CommandError(
                _("Name what to import and the file, e.g. loyal import customers customers.xlsx")
            )
        if options["kind"] not in kinds.KINDS:
            raise CommandError(
                _("Cannot import {kind!r}: use one of {choices}.").format(
                    kind=options["kind"], choices=", ".join(kinds.KINDS)
                )
            )
        if not options["file"].exists():
            raise CommandError(_("{path}: no such file.").format(path=options["file"]))
        mapping = self._mapping(options)
        progress = tqdm(unit=" rows", desc=options["file"].name, disable=None, leave=False)
        try:
            report = import_file(
                options["file"],
                options["kind"],
                source=options["source"],
                mapping=mapping,
                encoding=options["encoding"],
                sheet=options["sheet"],
                date_format=options["date_format"],
                timezone=options["timezone"] or settings.TIME_ZONE,
                skip_invalid=options["skip_invalid"],
                on_rows=progress.update,
            )
        except ImportRefused as error:
            raise CommandError(str(error)) from None
        finally:
            progress.close()
        for warning in report.warnings:
            self.stderr.write(_("Warning: {}").format(warning))
        for error in report.errors:
            self.stderr.write(error)
        if report.error_count > len(report.errors):
            self.stderr.write(
                _("... and {n} more errors.").format(
                    n=report.error_count - min(len(report.errors), MAX_ERRORS_SHOWN)
                )
            )
        if not report.written:
            raise CommandError(
                _(
                    "{file}: {n} errors in {rows} rows; nothing was imported. Fix them, or use --skip-invalid "
                    "to load the valid rows."
                ).format(file=report.file, n=report.error_count, rows=report.rows_read)
            )
        result = report.result
        self.stdout.write(
            _(
                "{file}: {rows} rows read, {created} created, {updated} updated, {unchanged} unchanged, "
                "{rejected} rejected."
            ).format(
                file=report.file,
                rows=report.rows_read,
                created=result.created,
                updated=result.updated,
                unchanged=result.unchanged,
                rejected=report.rows_rejected,
            )
        )
        also = ", ".join("{} {}".format(n, name) for name, n in result.also_created.items() if n)
        if also:
            self.stdout.write(_("Also created: {}.").format(also))
        if report.rejects_file is not None:
            self.stdout.write(_("Rejected rows and their reasons: {}").format(report.rejects_file))

    def _mapping(self, options) -> dict[str, str]:
        mapping: dict[str, str] = {}
        try:
            if options["mapping_file"]:
                mapping.update(load_mapping(options["mapping_file"]))
        except ImportFileError as error:
            raise CommandError(str(error)) from None
        for item in options["map"]:
            column, sep, field = item.partition("=")
            if not sep or not column.strip() or not field.strip():
                raise CommandError(
                    _(
                        "--map takes COLUMN=FIELD, e.g. --map 客户编号=external_id; got {!r}."
                    ).format(item)
                )
            mapping[column.strip()] = field.strip()
        return mapping
