"""The ``loyal`` command: Django's management commands with Loyal's settings.

``loyal import``, ``loyal export``, ``loyal demo``, ``loyal analyze`` and ``loyal report`` are
Loyal's own; Django's (``migrate``, ``runserver``, ``createsuperuser``...) work too. An
unexpected failure is reported in one plain line (the traceback only with ``LOYAL_DEBUG=1``).
"""

from __future__ import annotations

import os
import sys


def gettext_noop(message: str) -> str:
    """Marks ``message`` for translation (makemessages finds it by this name); Django's own
    gettext_noop needs the settings, which may be what failed."""
    return message


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyal.config.settings")
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(["loyal", *(sys.argv[1:] if argv is None else argv)])
    except KeyboardInterrupt:
        sys.stderr.write(_translated(gettext_noop("Interrupted.")) + "\n")
        sys.exit(130)
    except Exception as error:  # the last safety net: commands raise CommandError for known cases
        if os.environ.get("LOYAL_DEBUG") == "1":
            raise
        message = _translated(gettext_noop("Error: {message}")).format(
            message="{}: {}".format(type(error).__name__, error)
        )
        hint = _translated(gettext_noop("(Set LOYAL_DEBUG=1 to see the traceback.)"))
        sys.stderr.write("{}\n{}\n".format(message, hint))
        sys.exit(1)


def _translated(message: str) -> str:
    """``message`` in LOYAL_LANGUAGE, or as it is when Django could not even start."""
    try:
        from django.utils.translation import gettext

        return gettext(message)
    except Exception:
        return message


if __name__ == "__main__":
    main()
