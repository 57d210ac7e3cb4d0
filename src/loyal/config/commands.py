"""The base of Loyal's management commands: errors said in the user's language."""

from __future__ import annotations

import sys

from django.core.management.base import BaseCommand, CommandError
from django.utils.translation import gettext as _


class LoyalCommand(BaseCommand):
    """A management command whose errors read "Error: ..." (translated) on the command line.

    Django prints a failed command's CommandError as "CommandError: ...", in English whatever the
    language. Called from code (``call_command``), the CommandError is raised as usual.
    """

    def execute(self, *args, **options):
        if not getattr(self, "_called_from_command_line", False):
            return super().execute(*args, **options)
        try:
            return super().execute(*args, **options)
        except CommandError as error:
            if options.get("traceback"):
                raise
            self.stderr.write(_("Error: {message}").format(message=error))
            sys.exit(error.returncode)
