"""``loyal export WHAT FILE``: records or stored results to .csv, .xlsx, .json or .jsonl."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from loyal.config.checks import ensure_migrated
from loyal.config.commands import LoyalCommand
from loyal.customers.models import DEFAULT_SOURCE
from loyal.imports import kinds
from loyal.imports.exporting import export_batches
from loyal.imports.writing import write_table
from loyal.insights.exporting import EXPORTS, chart_table, export_results
from loyal.insights.models import Segment

CHOICES = [*kinds.KINDS, *EXPORTS, "chart"]


class Command(LoyalCommand):
    @property
    def help(self) -> str:  # translated when the parser is built
        return _(
            "Export records (in the columns `loyal import` reads), the stored per-customer scores "
            "and predictions, the KPIs and segment counts of every analysis run, the stage "
            "history, or a chart's table of the latest analysis, to CSV, Excel (.xlsx) or JSON."
        )

    def add_arguments(self, parser):
        parser.add_argument(
            "what", choices=CHOICES, help=_("One of: {choices}.").format(choices=", ".join(CHOICES))
        )
        parser.add_argument(
            "file", type=Path, help=_("Where to write; the format follows the suffix.")
        )
        parser.add_argument(
            "--source", default=DEFAULT_SOURCE, help=_("Records of this source only.")
        )
        parser.add_argument(
            "--segment",
            metavar="NAME",
            help=_("With `scores`: only the members of this segment at the latest analysis."),
        )
        parser.add_argument(
            "--chart",
            metavar="NAME",
            help=_("With `chart`: which table of the latest analysis, e.g. cohort_matrix."),
        )

    def handle(self, *args, **options):
        ensure_migrated()
        path: Path = options["file"]
        if path.suffix.lower() not in (".csv", ".xlsx", ".json", ".jsonl"):
            raise CommandError(
                _("Cannot write {path}: use a .csv, .xlsx, .json or .jsonl file name.").format(
                    path=path
                )
            )
        what = options["what"]
        if what in kinds.KINDS:
            batches = export_batches(kinds.KINDS[what], source=options["source"])
        elif what == "chart":
            try:
                batches = [chart_table(options["chart"])]
            except LookupError as error:
                raise CommandError(str(error)) from None
            what = options["chart"]
        elif options["segment"]:
            if what != "scores":
                raise CommandError(_("--segment goes with `scores` only."))
            segment = Segment.objects.filter(name=options["segment"]).first()
            if segment is None:
                raise CommandError(
                    _("There is no segment named {name}.").format(name=options["segment"])
                )
            batches = export_results(what, segment_id=segment.pk)
        else:
            batches = export_results(what)
        rows = write_table(batches, path)
        self.stdout.write(
            _("Wrote {rows} {what} rows to {path}.").format(rows=rows, what=what, path=path)
        )
