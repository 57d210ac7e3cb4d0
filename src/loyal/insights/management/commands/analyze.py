"""``loyal analyze [--as-of DATE]``: run every analysis and store the results."""

from __future__ import annotations

import datetime as dt
import zoneinfo

from django.conf import settings
from django.core.management.base import CommandError
from django.utils.translation import gettext as _
from tqdm import tqdm

from loyal.config.checks import ensure_migrated
from loyal.config.commands import LoyalCommand
from loyal.insights.services import run_analysis


def parse_as_of(text: str | None) -> dt.datetime | None:
    """``YYYY-MM-DD`` → the start of that day in the business's time zone."""
    if not text:
        return None
    try:
        day = dt.date.fromisoformat(text)
    except ValueError:
        raise CommandError(
            _("--as-of takes a date like 2026-11-01, not {value!r}.").format(value=text)
        ) from None
    return dt.datetime.combine(day, dt.time(), tzinfo=zoneinfo.ZoneInfo(settings.TIME_ZONE))


class Command(LoyalCommand):
    @property
    def help(self) -> str:  # translated when the parser is built
        return _(
            "Analyse the records (churn, stickiness, cohorts, value, RFM, lifecycle, predictions) "
            "and store the results."
        )

    def add_arguments(self, parser):
        parser.add_argument(
            "--as-of", help=_("Analyse as of the start of this date (default: now).")
        )

    def handle(self, *args, **options):
        ensure_migrated()
        as_of = parse_as_of(options["as_of"])
        with tqdm(total=1, desc=_("Analysing"), unit=" steps", disable=None) as bar:

            def progress(step: str, i: int, n: int) -> None:
                bar.total = n
                bar.n = i
                bar.set_postfix_str(step)
                bar.refresh()

            run = run_analysis(as_of, progress=progress)
        kpis = {k.kpi: k.value for k in run.kpis.all()}
        self.stdout.write(
            _("Analysed {customers} customers as of {as_of} in {seconds:.1f} s.").format(
                customers=run.customers, as_of=run.as_of.date(), seconds=run.seconds
            )
        )
        if not run.customers:
            self.stdout.write(
                _(
                    "There are no customers to analyse yet: import your records with "
                    "`loyal import`, or load a demo business with `loyal demo`."
                )
            )
            return
        self.stdout.write(
            _(
                "Churn rate {absolute:.1%} (relative {relative:.1%}), repeat-purchase rate {repeat:.1%}."
            ).format(
                absolute=kpis.get("churn_rate_absolute") or 0,
                relative=kpis.get("churn_rate_relative") or 0,
                repeat=kpis.get("repeat_purchase_rate") or 0,
            )
        )
        self.stdout.write(_("See the figures with `loyal report`."))
