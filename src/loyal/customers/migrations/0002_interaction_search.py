"""The full-text index of interactions (see loyal.customers.search)."""

from django.db import migrations

SQLITE = [
    "CREATE VIRTUAL TABLE customers_interaction_fts USING fts5("
    "search_document, content='customers_interaction', content_rowid='id')",
    "CREATE TRIGGER customers_interaction_fts_insert AFTER INSERT ON customers_interaction BEGIN"
    " INSERT INTO customers_interaction_fts(rowid, search_document) VALUES (new.id, new.search_document); END",
    "CREATE TRIGGER customers_interaction_fts_delete AFTER DELETE ON customers_interaction BEGIN"
    " INSERT INTO customers_interaction_fts(customers_interaction_fts, rowid, search_document)"
    " VALUES ('delete', old.id, old.search_document); END",
    "CREATE TRIGGER customers_interaction_fts_update AFTER UPDATE OF search_document ON customers_interaction BEGIN"
    " INSERT INTO customers_interaction_fts(customers_interaction_fts, rowid, search_document)"
    " VALUES ('delete', old.id, old.search_document);"
    " INSERT INTO customers_interaction_fts(rowid, search_document) VALUES (new.id, new.search_document); END",
]
SQLITE_REVERSE = [
    "DROP TRIGGER customers_interaction_fts_update",
    "DROP TRIGGER customers_interaction_fts_delete",
    "DROP TRIGGER customers_interaction_fts_insert",
    "DROP TABLE customers_interaction_fts",
]
POSTGRESQL = [
    "CREATE INDEX customers_interaction_search ON customers_interaction"
    " USING gin (string_to_array(search_document, ' '))",
]
POSTGRESQL_REVERSE = ["DROP INDEX customers_interaction_search"]


def _run(statements_by_vendor):
    def run(apps, schema_editor):
        for statement in statements_by_vendor.get(schema_editor.connection.vendor, []):
            schema_editor.execute(statement)

    return run


class Migration(migrations.Migration):
    dependencies = [("customers", "0001_initial")]

    operations = [
        migrations.RunPython(
            _run({"sqlite": SQLITE, "postgresql": POSTGRESQL}),
            _run({"sqlite": SQLITE_REVERSE, "postgresql": POSTGRESQL_REVERSE}),
        )
    ]
