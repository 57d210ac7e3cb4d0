"""Checks that commands make before touching the records."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.utils.translation import gettext as _


def ensure_migrated() -> None:
    """Refuse plainly when the database lacks Loyal's tables, instead of failing half-way."""
    connection = connections[DEFAULT_DB_ALIAS]
    executor = MigrationExecutor(connection)
    if executor.migration_plan(executor.loader.graph.leaf_nodes()):
        raise CommandError(
            _(
                "The database is not set up (or is older than this Loyal): run `loyal migrate` first."
            )
        )
