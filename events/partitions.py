"""PostgreSQL: the events table partitioned by day of `received_at` (docs/operations.md,
"PostgreSQL partitions").

`events_securityevent` is a table partitioned by RANGE (`received_at`), converted by migration
0007: one partition per UTC day, `events_securityevent_pYYYYMMDD`, and a DEFAULT partition
(`events_securityevent_default`) for any row no day partition covers (a day beat did not
create in time, the events retention kept past their day). `received_at` is the server's clock
at insert, so partitions created ahead by beat (`ensure_partitions`, EVENTS_PARTITION_DAYS_AHEAD)
always cover what ingestion writes. The retention purge drops expired days whole
(siem/retention.py). SQLite and SQL Server keep one plain table: everything here is a no-op
there.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.utils import timezone

logger = logging.getLogger(__name__)

PARENT = "events_securityevent"
DEFAULT = "events_securityevent_default"
DAY_NAME = re.compile(r"^events_securityevent_p(\d{8})$")


@dataclass(frozen=True)
class Partition:
    name: str
    day: date

    @property
    def lower(self) -> datetime:
        return day_start(self.day)

    @property
    def upper(self) -> datetime:
        return day_start(self.day + timedelta(days=1))


def day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def utc_day(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def partition_name(day: date) -> str:
    return f"{PARENT}_p{day:%Y%m%d}"


def is_partitioned() -> bool:
    """True once migration 0007 has converted the table (PostgreSQL only)."""
    if connection.vendor != "postgresql":
        return False
    with connection.cursor() as cursor:
        cursor.execute("SELECT relkind FROM pg_class WHERE oid = to_regclass(%s)", [PARENT])
        row = cursor.fetchone()
    return bool(row) and row[0] == "p"


def day_partitions() -> list[Partition]:
    """The attached day partitions, oldest first (the DEFAULT partition is not among them)."""
    return _days(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "WHERE i.inhparent = %s::regclass",
        [PARENT],
    )


def detached_days() -> list[Partition]:
    """Day tables that are not partitions (any more): left by a purge stopped after DETACH."""
    return _days(
        "SELECT relname FROM pg_class WHERE relkind = 'r' AND NOT relispartition "
        "AND relname LIKE %s AND relnamespace = current_schema()::regnamespace",
        [f"{PARENT}_p%"],
    )


def _days(sql: str, params: list) -> list[Partition]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        names = [name for (name,) in cursor.fetchall()]
    found = []
    for name in names:
        match = DAY_NAME.match(name)
        if match:
            day = date(int(match[1][:4]), int(match[1][4:6]), int(match[1][6:]))
            found.append(Partition(name, day))
    return sorted(found, key=lambda partition: partition.day)


def set_lock_timeout(cursor) -> None:
    """Inside a transaction: give up a table lock after PARTITION_LOCK_TIMEOUT_MS rather than
    queue ingestion behind a wait (a lock request blocks every later one on the same table)."""
    cursor.execute(f"SET LOCAL lock_timeout = {int(settings.PARTITION_LOCK_TIMEOUT_MS)}")


def ensure_partitions(*, days_ahead: int | None = None, now: datetime | None = None) -> list[str]:
    """Create the day partitions from today to `days_ahead` days ahead that do not exist yet;
    returns the names created. Safe to run any time and twice at once (beat, every few hours)."""
    if not is_partitioned():
        return []
    days_ahead = settings.EVENTS_PARTITION_DAYS_AHEAD if days_ahead is None else days_ahead
    today = utc_day(now or timezone.now())
    existing = {partition.day for partition in day_partitions()}
    created = []
    for offset in range(days_ahead + 1):
        day = today + timedelta(days=offset)
        if day not in existing and create_partition(day):
            created.append(partition_name(day))
    return created


def create_partition(day: date) -> bool:
    """Create and attach the partition of one UTC day; False if it could not be done now.

    The table is created on its own, then attached: ATTACH takes a SHARE UPDATE EXCLUSIVE lock
    on the events table, which inserts and reads go on around (CREATE TABLE … PARTITION OF
    would take an exclusive lock). It does scan the DEFAULT partition (small: kept events) for
    rows of that day; if there are some, the day stays in DEFAULT (logged), where the batched
    purge removes it in time.
    """
    partition = Partition(partition_name(day), day)
    qn = connection.ops.quote_name
    try:
        with transaction.atomic(), connection.cursor() as cursor:
            set_lock_timeout(cursor)
            cursor.execute(
                f"SELECT 1 FROM {qn(DEFAULT)} WHERE received_at >= %s AND received_at < %s LIMIT 1",  # noqa: S608 - names quoted
                [partition.lower, partition.upper],
            )
            if cursor.fetchone():
                logger.warning("Partition %s not created: DEFAULT holds rows of that day", day)
                return False
            cursor.execute(
                f"CREATE TABLE {qn(partition.name)} (LIKE {qn(PARENT)} "
                "INCLUDING DEFAULTS INCLUDING CONSTRAINTS INCLUDING STORAGE)"
            )
            # Lets ATTACH skip validating the new table's rows (it has none anyway).
            cursor.execute(
                f"ALTER TABLE {qn(partition.name)} ADD CONSTRAINT {qn(partition.name + '_range')} "
                "CHECK (received_at IS NOT NULL AND received_at >= %s AND received_at < %s)",
                [partition.lower, partition.upper],
            )
            cursor.execute(
                f"ALTER TABLE {qn(PARENT)} ATTACH PARTITION {qn(partition.name)} "
                "FOR VALUES FROM (%s) TO (%s)",
                [partition.lower, partition.upper],
            )
    except DatabaseError as error:
        # Lock timeout, or a concurrent run created it first: the next run tries again.
        logger.warning("Partition %s not created now: %s", day, error)
        return False
    logger.info("Created events partition %s", partition.name)
    return True
