"""PostgreSQL only: turn `events_securityevent` into a table partitioned by day of `received_at`
(events/partitions.py, docs/operations.md "PostgreSQL partitions"). A no-op on SQLite and SQL
Server, and on a table already partitioned.

Under an exclusive lock on the table: create the partitioned table (primary key (`event_id`,
`received_at`); the same columns, defaults, identity, check and foreign-key constraints), a
DEFAULT partition and one partition per UTC day from the oldest event still within
EVENTS_RETENTION_DAYS to EVENTS_PARTITION_DAYS_AHEAD days ahead (older rows go to DEFAULT, where
the batched purge removes them); copy the rows; recreate every index of the old table as a
partitioned index (the model's and the trigram / GIN ones of migrations 0003–0004), except that
`event_agent_record_unique` becomes a plain index (a unique index must contain `received_at`:
de-duplication is the ingest's per-agent lock, events/services.py); drop the foreign keys that
referenced `event_id` (the alert↔event links: the purge removes the links of the events it
drops); drop the old table; carry the identity sequence over.

Instant on an empty database; on a large table it copies every row and rebuilds every index
while ingestion waits: a maintenance-window operation (docs/operations.md).
Reversing it leaves the table partitioned (the other migrations work on either form).
"""

from datetime import UTC, datetime, time, timedelta

from django.db import migrations

TABLE = "events_securityevent"
OLD = "events_securityevent_unpartitioned"


def _rows(cursor, sql, params=()):
    cursor.execute(sql, params)
    return cursor.fetchall()


def partition_events(apps, schema_editor):
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    from django.conf import settings

    with connection.cursor() as cursor:
        kind = _rows(cursor, "SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [TABLE])
        if not kind or kind[0][0] == "p":
            return
        cursor.execute(f"LOCK TABLE {TABLE} IN ACCESS EXCLUSIVE MODE")
        indexes = _rows(
            cursor,
            "SELECT i.relname, pg_get_indexdef(i.oid), x.indisunique FROM pg_index x "
            "JOIN pg_class i ON i.oid = x.indexrelid "
            "WHERE x.indrelid = %s::regclass AND NOT x.indisprimary ORDER BY i.relname",
            [TABLE],
        )
        constraints = _rows(
            cursor,
            "SELECT conname, pg_get_constraintdef(oid), contype FROM pg_constraint "
            "WHERE conrelid = %s::regclass AND contype IN ('c', 'f') ORDER BY conname",
            [TABLE],
        )
        referencing = _rows(
            cursor,
            "SELECT conrelid::regclass::text, conname FROM pg_constraint "
            "WHERE confrelid = %s::regclass AND contype = 'f'",
            [TABLE],
        )
        (sequence,) = _rows(cursor, "SELECT pg_get_serial_sequence(%s, 'event_id')", [TABLE])[0]
        last_value, is_called = _rows(cursor, f"SELECT last_value, is_called FROM {sequence}")[0]
        oldest, newest = _rows(cursor, f"SELECT min(received_at), max(received_at) FROM {TABLE}")[0]

        for table, name in referencing:
            cursor.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        cursor.execute(f"ALTER TABLE {TABLE} RENAME TO {OLD}")
        cursor.execute(f"ALTER TABLE {OLD} RENAME CONSTRAINT {TABLE}_pkey TO {OLD}_pkey")
        for name, _definition, _unique in indexes:
            cursor.execute(f'DROP INDEX "{name}"')  # their names go to the new table's indexes

        cursor.execute(
            f"CREATE TABLE {TABLE} (LIKE {OLD} INCLUDING DEFAULTS INCLUDING IDENTITY "
            "INCLUDING STORAGE INCLUDING COMMENTS) PARTITION BY RANGE (received_at)"
        )
        cursor.execute(
            f"ALTER TABLE {TABLE} ADD CONSTRAINT {TABLE}_pkey PRIMARY KEY (event_id, received_at)"
        )
        for name, definition, kind in constraints:
            if kind == "c":
                cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')
        cursor.execute(f"CREATE TABLE {TABLE}_default PARTITION OF {TABLE} DEFAULT")
        today = datetime.now(UTC).date()
        first = today
        if oldest is not None:
            first = oldest.astimezone(UTC).date()
            if settings.EVENTS_RETENTION_DAYS:
                first = max(first, today - timedelta(days=settings.EVENTS_RETENTION_DAYS + 1))
        last = today + timedelta(days=settings.EVENTS_PARTITION_DAYS_AHEAD)
        if newest is not None:
            last = max(last, newest.astimezone(UTC).date())
        day = first
        while day <= last:
            lower = datetime.combine(day, time.min, tzinfo=UTC)
            cursor.execute(
                f"CREATE TABLE {TABLE}_p{day:%Y%m%d} PARTITION OF {TABLE} "
                "FOR VALUES FROM (%s) TO (%s)",
                [lower, lower + timedelta(days=1)],
            )
            day += timedelta(days=1)

        cursor.execute(f"INSERT INTO {TABLE} SELECT * FROM {OLD}")
        for _name, definition, unique in indexes:
            if unique:
                definition = definition.replace("CREATE UNIQUE INDEX", "CREATE INDEX", 1)
            cursor.execute(definition)
        # Foreign keys last: added to the filled table, they are checked in one query (the rows
        # copied before would each leave a deferred check pending, which forbids CREATE INDEX).
        for name, definition, kind in constraints:
            if kind == "f":
                cursor.execute(f'ALTER TABLE {TABLE} ADD CONSTRAINT "{name}" {definition}')
        cursor.execute(f"DROP TABLE {OLD}")
        (new_sequence,) = _rows(cursor, "SELECT pg_get_serial_sequence(%s, 'event_id')", [TABLE])[0]
        cursor.execute("SELECT setval(%s, %s, %s)", [new_sequence, last_value, is_called])
        if new_sequence != sequence:
            cursor.execute(f"ALTER SEQUENCE {new_sequence} RENAME TO {sequence.split('.')[-1]}")
        cursor.execute(f"ANALYZE {TABLE}")


class Migration(migrations.Migration):
    atomic = True

    dependencies = [
        ("events", "0006_merge_20261202_0046"),
        ("alerts", "0004_merge_0003_alert_comments_0003_open_alerts_index"),
    ]

    operations = [migrations.RunPython(partition_events, migrations.RunPython.noop)]
