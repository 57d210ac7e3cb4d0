"""The ``loyal`` command: Django's management commands with Loyal's settings.

``loyal import``, ``loyal export``, ``loyal demo``, ``loyal analyze`` and ``loyal report`` are
Loyal's own; Django's (``migrate``, ``runserver``, ``createsuperuser``...) work too.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str] | None = None) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "loyal.config.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(["loyal", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    main()
