"""Hunting: on PostgreSQL, a jsonb_path_ops GIN index on `raw` for whole-number raw-field terms
(`LogonType:3` → `raw @> '{"LogonType": 3}'`, events/query.py `_raw_hint`): a single digit has
no trigrams, so the trigram index cannot narrow those (docs/performance.md "Hunting"). A no-op
on SQLite and SQL Server, which have no JSON containment."""

from django.db import migrations

RAW_INDEX = (
    "CREATE INDEX IF NOT EXISTS event_raw_path_ops_idx "
    "ON events_securityevent USING gin (raw jsonb_path_ops)"
)


def raw_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(RAW_INDEX)


def drop_raw_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS event_raw_path_ops_idx")


class Migration(migrations.Migration):
    dependencies = [("events", "0003_hunting_backfill_and_trigram_index")]

    operations = [migrations.RunPython(raw_index, drop_raw_index)]
