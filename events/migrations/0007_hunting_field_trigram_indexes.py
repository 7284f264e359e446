"""Hunting: on PostgreSQL, a trigram index on the lowercased value of each of the most hunted raw
fields, wherever the record's shape keeps it (`lower(COALESCE(raw->>'CommandLine',
raw#>>'{winlog,event_data,CommandLine}', …))`, exactly the SQL of events/query.py `raw_field`),
so that `CommandLine:*powershell*` is narrowed by the field itself, not by every value of the
event (`search_text`): `INDEXED_RAW_FIELDS` and `_field_index_hint`, measured in
docs/performance.md "Hunting". The lists are fixed here (a migration must not change with the
code); tests/test_hunt_scale.py holds them equal to the code's. A no-op on SQLite and SQL
Server."""

from django.db import migrations

FIELDS = (
    "CommandLine",
    "ParentCommandLine",
    "Image",
    "ParentImage",
    "TargetFilename",
    "TargetUserName",
)

PATHS = ((), ("winlog", "event_data"), ("Event", "EventData"), ("EventData",))


def index_name(field: str) -> str:
    return f"event_raw_{field.lower()}_trgm_idx"


def value_expression(field: str) -> str:
    paths = [
        f"(raw #>> '{{{','.join((*path, field))}}}')" if path else f"(raw ->> '{field}')"
        for path in PATHS
    ]
    return f"lower(COALESCE({', '.join(paths)}))"


def create_statement(field: str) -> str:
    return (
        f"CREATE INDEX IF NOT EXISTS {index_name(field)} ON events_securityevent "
        f"USING gin (({value_expression(field)}) gin_trgm_ops)"
    )


def field_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for field in FIELDS:
        schema_editor.execute(create_statement(field))


def drop_field_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for field in FIELDS:
        schema_editor.execute(f"DROP INDEX IF EXISTS {index_name(field)}")


class Migration(migrations.Migration):
    dependencies = [("events", "0006_merge_20261202_0046")]

    operations = [migrations.RunPython(field_indexes, drop_field_indexes)]
