"""The ``loyal`` command: Django's management commands with Loyal's settings.

``loyal import``, ``loyal export``, ``loyal demo``, ``loyal analyze`` and ``loyal report`` are
Loyal's own; Django's (``migrate``, ``runserver``, ``createsuperuser``...) work too. An
unexpected failure is reported in one plain line (the traceback only with ``LOYAL_DEBUG=1``).
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyal.config.settings")
    from django.core.management import execute_from_command_line

    try:
        execute_from_command_line(["loyal", *(sys.argv[1:] if argv is None else argv)])
    except KeyboardInterrupt:
        sys.stderr.write("Interrupted.\n")
        sys.exit(130)
    except Exception as error:  # the last safety net: commands raise CommandError for known cases
        if os.environ.get("LOYAL_DEBUG") == "1":
            raise
        sys.stderr.write(
            "Error: {}: {}\n(Set LOYAL_DEBUG=1 to see the traceback.)\n".format(
                type(error).__name__, error
            )
        )
        sys.exit(1)


if __name__ == "__main__":
    main()
