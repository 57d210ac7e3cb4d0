"""``loyal segment``: keep rule segments (R14); ``loyal analyze`` counts their members each run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from django.core.management.base import CommandError
from django.utils.translation import gettext as _

from loyal.config.checks import ensure_migrated
from loyal.config.commands import LoyalCommand
from loyal.insights.models import Segment, SegmentCount
from loyal.insights.segments import (
    SegmentError,
    delete_segment,
    parse_rule,
    save_segment,
    segment_schema,
)

EXAMPLE = '{"all": [{"field": "rfm_segment", "op": "in", "value": ["at_risk", "cant_lose"]}]}'


class Command(LoyalCommand):
    @property
    def help(self) -> str:  # translated when the parser is built
        return _(
            "Keep rule segments: groups of customers defined by rules over attributes, scores and "
            "predictions. Each `loyal analyze` stores how many customers every segment holds."
        )

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        actions.add_parser("list", help=_("List the segments with their latest member count."))
        save = actions.add_parser("save", help=_("Create a segment, or replace its rule."))
        save.add_argument("name", help=_("The segment's name."))
        save.add_argument(
            "rule",
            help=_("The rule as JSON, e.g. {example}, or @FILE to read it from a file.").format(
                example=EXAMPLE
            ),
        )
        save.add_argument("--description", default="", help=_("What the segment is for."))
        save.add_argument(
            "--expected-service",
            default="",
            help=_("What these customers should get, e.g. a weekly report by email."),
        )
        show = actions.add_parser(
            "show", help=_("A segment's rule and its member counts over time.")
        )
        show.add_argument("name", help=_("The segment's name."))
        delete = actions.add_parser("delete", help=_("Delete a segment and its counts."))
        delete.add_argument("name", help=_("The segment's name."))
        delete.add_argument("--yes", action="store_true", help=_("Do not ask for confirmation."))
        actions.add_parser("fields", help=_("The fields a rule can use, with their types."))

    def handle(self, *args, **options):
        ensure_migrated()
        try:
            getattr(self, "_" + options["action"])(options)
        except SegmentError as error:
            raise CommandError(str(error)) from None

    def _list(self, options) -> None:
        segments = list(Segment.objects.all())
        if not segments:
            self.stdout.write(
                _("No segments yet. Add one: loyal segment save NAME '{example}'").format(
                    example=EXAMPLE
                )
            )
            return
        for segment in segments:
            latest = segment.counts.order_by("-as_of", "-run_id").first()
            counted = (
                _("{members} customers on {date}").format(
                    members=latest.members, date=latest.as_of.date().isoformat()
                )
                if latest
                else _("not counted yet: run loyal analyze")
            )
            self.stdout.write("{}  ({})".format(segment.name, counted))

    def _save(self, options) -> None:
        text = options["rule"]
        if text.startswith("@"):
            path = Path(text[1:])
            try:
                text = path.read_text(encoding="utf-8")
            except OSError as error:
                raise CommandError(
                    _("Cannot read the rule file {path}: {reason}").format(
                        path=path, reason=error.strerror
                    )
                ) from None
        segment = save_segment(
            options["name"],
            parse_rule(text),
            description=options["description"],
            expected_service=options["expected_service"],
        )
        self.stdout.write(
            _("Saved segment {name}; `loyal analyze` will count its members.").format(
                name=segment.name
            )
        )

    def _show(self, options) -> None:
        segment = Segment.objects.filter(name=options["name"]).first()
        if segment is None:
            raise CommandError(_("There is no segment named {name}.").format(name=options["name"]))
        self.stdout.write(segment.name)
        if segment.description:
            self.stdout.write(segment.description)
        self.stdout.write(json.dumps(segment.rules, ensure_ascii=False, indent=2))
        counts = SegmentCount.objects.filter(segment=segment).order_by("as_of", "run_id")
        if not counts:
            self.stdout.write(_("Not counted yet: run loyal analyze."))
        for count in counts:
            self.stdout.write("  {}  {}".format(count.as_of.date().isoformat(), count.members))

    def _delete(self, options) -> None:
        name = options["name"]
        if not Segment.objects.filter(name=name).exists():
            raise CommandError(_("There is no segment named {name}.").format(name=name))
        if not options["yes"]:
            if not sys.stdin.isatty():
                raise CommandError(
                    _("Deleting segment {name} needs confirmation: add --yes.").format(name=name)
                )
            answer = input(
                _("Delete segment {name} and its counts? Type 'yes' to confirm: ").format(name=name)
            )
            if answer.strip().lower() != "yes":
                self.stdout.write(_("Nothing was deleted."))
                return
        delete_segment(name)
        self.stdout.write(_("Deleted segment {name}.").format(name=name))

    def _fields(self, options) -> None:
        for name, dtype in segment_schema().items():
            self.stdout.write("{}  {}".format(name, dtype))
