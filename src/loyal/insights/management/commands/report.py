"""``loyal report``: the headline KPIs in the terminal and a self-contained HTML report."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.management.base import CommandError
from django.utils import translation
from django.utils.translation import gettext as _

from loyal.config.checks import ensure_migrated
from loyal.config.commands import LoyalCommand
from loyal.insights.report import headline, models_summary, render
from loyal.insights.selectors import latest_run


class Command(LoyalCommand):
    @property
    def help(self) -> str:  # translated when the parser is built
        return _(
            "Print the headline KPIs of the latest analysis and write an HTML report with its "
            "charts."
        )

    def add_arguments(self, parser):
        parser.add_argument(
            "--output",
            type=Path,
            help=_("Where to write the HTML (default: DATA_DIR/report.html)."),
        )
        parser.add_argument(
            "--language",
            choices=[code for code, _name in settings.LANGUAGES],
            default=settings.LANGUAGE_CODE,
            help=_("Language of the report: en, zh-hans or zh-hant (default: LOYAL_LANGUAGE)."),
        )

    def handle(self, *args, **options):
        ensure_migrated()
        with translation.override(options["language"]):
            run = latest_run()
            if run is None:
                raise CommandError(_("There is no analysis yet: run `loyal analyze` first."))
            path = options["output"] or Path(settings.DATA_DIR) / "report.html"
            self.stdout.write(_("Loyal as of {date}").format(date=run.as_of.date().isoformat()))
            rows = headline(run)
            width = max(len(name) for name, _value in rows)
            for name, value in rows:
                self.stdout.write("  {}  {}".format(name.ljust(width), value))
            for name, value in models_summary(run):
                self.stdout.write("  {}: {}".format(name, value))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(render(run, options["language"]), encoding="utf-8")
            self.stdout.write(_("Report with charts: {path}").format(path=path))
