"""Hunting: fill `search_text` for events stored before it existed, and on PostgreSQL add the
trigram index that answers `search_text LIKE '%word%'` (docs/investigation.md, measured in
docs/performance.md "Hunting"). SQLite and SQL Server get no index here: the SQL is run only
when the database is PostgreSQL (pg_trgm is a trusted extension from PostgreSQL 13 on, so the
database owner may create it)."""

from django.db import migrations

BATCH = 2000

TRGM_INDEX = (
    "CREATE INDEX IF NOT EXISTS event_search_text_trgm_idx "
    "ON events_securityevent USING gin (search_text gin_trgm_ops)"
)


def backfill(apps, schema_editor):
    from events.normalize import event_fields
    from events.query import build_search_text

    Event = apps.get_model("events", "SecurityEvent")
    db = schema_editor.connection.alias
    last = 0
    while True:
        rows = list(
            Event.objects.using(db)
            .filter(pk__gt=last)
            .order_by("pk")
            .only("pk", "message", "computer", "user_name", "source_ip", "source_type", "raw")[
                :BATCH
            ]
        )
        if not rows:
            return
        for row in rows:
            row.search_text = build_search_text(
                {name: getattr(row, name) for name in
                 ("message", "computer", "user_name", "source_ip", "source_type")},
                event_fields(row.raw or {}),
            )
        Event.objects.using(db).bulk_update(rows, ["search_text"], batch_size=500)
        last = rows[-1].pk


def trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    schema_editor.execute(TRGM_INDEX)


def drop_trigram_index(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("DROP INDEX IF EXISTS event_search_text_trgm_idx")


class Migration(migrations.Migration):
    dependencies = [("events", "0002_hunting_search_text_and_saved_searches")]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop),
        migrations.RunPython(trigram_index, drop_trigram_index),
    ]
