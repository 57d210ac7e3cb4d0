"""``loyal demo``: load a realistic demo business, then serve it."""

from __future__ import annotations

import sys

from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from tqdm import tqdm

from loyal.config.commands import LoyalCommand
from loyal.customers.models import Customer
from loyal.demo.services import (
    DEMO_ADMIN,
    DEMO_PASSWORD,
    database_size,
    ensure_staff,
    load_demo,
    wipe_records,
)

KIND_LABELS = {
    "customers": gettext_lazy("customers"),
    "orders": gettext_lazy("order lines"),
    "subscriptions": gettext_lazy("subscriptions"),
    "events": gettext_lazy("behaviour events"),
    "interactions": gettext_lazy("interactions"),
    "consents": gettext_lazy("consents"),
}


class Command(LoyalCommand):
    @property
    def help(self) -> str:  # translated when the parser is built
        return _(
            "Load a seeded, reproducible demo business (customers, orders, memberships, "
            "events...) and serve it."
        )

    def add_arguments(self, parser):
        parser.add_argument(
            "--customers",
            type=int,
            default=5000,
            help=_("How many customers (default %(default)s)."),
        )
        parser.add_argument(
            "--seed", type=int, default=7, help=_("Random seed (default %(default)s).")
        )
        parser.add_argument(
            "--reset", action="store_true", help=_("Delete all customer records first, then load.")
        )
        parser.add_argument(
            "--yes", action="store_true", help=_("Do not ask before --reset deletes records.")
        )
        parser.add_argument(
            "--no-serve", action="store_true", help=_("Load only; do not start the web server.")
        )
        parser.add_argument(
            "--addr", default="127.0.0.1:8000", help=_("Address to serve on (default %(default)s).")
        )

    def handle(self, *args, **options):
        if options["customers"] < 1:
            raise CommandError(
                _("--customers must be at least 1, not {n}.").format(n=options["customers"])
            )
        call_command("migrate", verbosity=0, interactive=False)
        existing = Customer.objects.count()
        if existing and options["reset"]:
            if not options["yes"] and not self._confirm(existing):
                raise CommandError(_("Nothing was deleted."))
            wipe_records()
            existing = 0
        if existing:
            self.stdout.write(
                _(
                    "The records already hold {n} customers: serving them. Use --reset to load the demo again."
                ).format(n=existing)
            )
            ensure_staff()
        else:
            with tqdm(
                total=options["customers"],
                unit=" customers",
                desc=_("Loading the demo"),
                disable=None,
            ) as bar:
                loaded = load_demo(
                    options["customers"], seed=options["seed"], on_customers=bar.update
                )
            counts = _("; ").join(
                "{}: {:,}".format(KIND_LABELS.get(kind, kind), n) for kind, n in loaded.rows.items()
            )
            self.stdout.write(
                _("Loaded in {s:.1f} s: {counts}.").format(s=loaded.seconds, counts=counts)
            )
            size = database_size()
            if size is not None:
                self.stdout.write(_("Database size: {mb:.1f} MB.").format(mb=size / 1e6))
        login = _("log in as {user} with password {password}").format(
            user=DEMO_ADMIN, password=DEMO_PASSWORD
        )
        if options["no_serve"]:
            self.stdout.write(_("Serve it with `loyal demo`, then {login}.").format(login=login))
            return
        self.stdout.write(
            _("Open http://{addr}/ and {login}.").format(addr=options["addr"], login=login)
        )
        call_command("runserver", options["addr"], use_reloader=False, insecure_serving=True)

    def _confirm(self, existing: int) -> bool:
        if not sys.stdin.isatty():
            raise CommandError(_("--reset deletes every customer record: add --yes to confirm."))
        answer = input(
            _("Delete all {n} customers and their records? Type 'yes': ").format(n=existing)
        )
        return answer.strip().lower() == "yes"
