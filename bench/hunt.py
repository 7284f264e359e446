"""Hunting benchmark: the hunting API on PostgreSQL with a million events.

1. Creates its own PostgreSQL database (`--db`, dropped at the end unless `--keep`), migrates it
   (which installs pg_trgm and the trigram index on `search_text`).
2. Loads `--events` events made from the real Windows logs of ../shared/data/windows (attack
   captures and benign office logs), each given one of 200 hosts, one of 2,002 users, a random
   10.x source address and an event time spread over the last `--days` days:
   a. `--distinct` (20,000) of them through ingestion's own code (`events.ingest.prepare`,
      `events.services._build`, COPY by `insert_rows`);
   b. the rest as copies made inside PostgreSQL (`INSERT … SELECT`, copy k of each record):
      host, users and address shifted by k (a bijection, so values equal or distinct in the
      record stay so), a new event time, and `search_text` edited line by line to match (the
      line of each old value replaced by the new one). Records where another value could be
      one of those (a host or user name or a 10.x.x.x address elsewhere in the record) are not
      copied. Before the
      copy, `verify` builds 300 sample copies in Python through ingestion's code and checks the
      generated rows equal them in every column written (timestamp, computer, user_name,
      source_ip, raw, search_text, and the record's own event_code, severity, message,
      source_type, which the copy keeps);
   c. the GIN indexes (trigram on `search_text`, `jsonb_path_ops` on `raw`, the per-field
      trigram indexes of migration 0007) built after the load with `maintenance_work_mem` 1 GB
      (build times printed), then VACUUM ANALYZE (as autovacuum would after a bulk load).
3. Times each scenario `--runs` times through the real API views in this process (Django's test
   client: URL routing, authentication, query parsing, the database, JSON rendering; no
   network): p50 and p95 in milliseconds. Each list request also counts its matches (DRF's
   page count), as the hunting page does.

    .venv/bin/python bench/hunt.py --events 1000000
    .venv/bin/python bench/hunt.py --events 200000 --runs 10 --keep   # then measure with --reuse

Bounded: it stops at `--events`; the database is dropped on exit, Ctrl-C included.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "windows"
PG = {"host": "127.0.0.1", "port": "5432", "user": "postgres"}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000, help="events to load")
    parser.add_argument(
        "--days", type=int, default=7, help="event times spread over this many days"
    )
    parser.add_argument("--runs", type=int, default=20, help="timed requests per scenario")
    parser.add_argument("--db", default="hunt_scale_bench", help="PostgreSQL database to create")
    parser.add_argument("--keep", action="store_true", help="do not drop the database at the end")
    parser.add_argument("--reuse", action="store_true", help="use the loaded database as it is")
    parser.add_argument("--batch", type=int, default=5000, help="rows per COPY")
    parser.add_argument(
        "--distinct", type=int, default=20000, help="records ingested in Python, then copied"
    )
    return parser.parse_args()


def pg(command: str, *args: str) -> None:
    subprocess.run(
        [command, "-h", PG["host"], "-p", PG["port"], "-U", PG["user"], *args],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def setup_django(db: str) -> None:
    os.environ.update(
        {
            "SIEM_IGNORE_DOTENV": "1",
            "DJANGO_SETTINGS_MODULE": "siem.settings",
            "DEBUG": "true",
            "DATABASE_URL": f"postgres://{PG['user']}@{PG['host']}:{PG['port']}/{db}",
            "ALLOWED_HOSTS": "testserver,127.0.0.1",
            "LOG_LEVEL": "WARNING",
            "REDIS_URL": os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0"),
        }
    )
    sys.path.insert(0, str(ROOT))
    import django

    django.setup()


def templates() -> list[dict]:
    records = []
    for path in sorted(DATA.glob("*/*.jsonl")):
        with path.open() as lines:
            records.extend(json.loads(line) for line in lines if line.strip())
    return records


# --- the varying values, and how a copy changes them (the SQL functions below do the same) ---
HOSTS = [f"WS-{i:03d}.corp.local" for i in range(190)] + [
    f"DC-{i:02d}.corp.local" for i in range(10)
]
USERS = [f"user{i:04d}" for i in range(2000)] + ["administrator", "svc_backup"]
USER_FIELDS = ("TargetUserName", "SubjectUserName")
VARYING = ("Computer", *USER_FIELDS, "IpAddress", "TimeCreated")
TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
HOST_STEP, USER_STEP, IP_STEPS = 37, 101, (7, 13)


def shift_host(value: str, k: int) -> str:
    return HOSTS[(HOSTS.index(value) + k * HOST_STEP) % len(HOSTS)]


def shift_user(value: str, k: int) -> str:
    return USERS[(USERS.index(value) + k * USER_STEP) % len(USERS)]


def shift_ip(value: str, k: int) -> str:
    a, b, c, d = value.split(".")
    return f"{a}.{(int(b) + k * IP_STEPS[0]) % 256}.{(int(c) + k * IP_STEPS[1]) % 256}.{d}"


SQL_FUNCTIONS = f"""
CREATE OR REPLACE FUNCTION bench_host(v text, k int) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT CASE WHEN n < 190 THEN 'WS-' || lpad(n::text, 3, '0') || '.corp.local'
              ELSE 'DC-' || lpad((n - 190)::text, 2, '0') || '.corp.local' END
  FROM (SELECT ((CASE WHEN left(v, 3) = 'WS-' THEN substr(v, 4, 3)::int
                      ELSE 190 + substr(v, 4, 2)::int END) + k * {HOST_STEP}) % 200 AS n) s $$;
CREATE OR REPLACE FUNCTION bench_user(v text, k int) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT CASE WHEN n < 2000 THEN 'user' || lpad(n::text, 4, '0')
              WHEN n = 2000 THEN 'administrator' ELSE 'svc_backup' END
  FROM (SELECT ((CASE WHEN v = 'administrator' THEN 2000 WHEN v = 'svc_backup' THEN 2001
                      ELSE substr(v, 5)::int END) + k * {USER_STEP}) % 2002 AS n) s $$;
CREATE OR REPLACE FUNCTION bench_ip(v text, k int) RETURNS text
  LANGUAGE sql IMMUTABLE STRICT AS $$
  SELECT split_part(v, '.', 1) || '.' || (split_part(v, '.', 2)::int + k * {IP_STEPS[0]}) % 256
         || '.' || (split_part(v, '.', 3)::int + k * {IP_STEPS[1]}) % 256
         || '.' || split_part(v, '.', 4) $$;
-- search_text: the line of an old value becomes a marker, then the marker the new value's line
-- (two steps, so that a new value equal to another old one is not replaced twice).
CREATE OR REPLACE FUNCTION bench_mark(s text, old text, marker text) RETURNS text
  LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN old IS NULL THEN s
              ELSE replace(s, E'\\n' || lower(old) || E'\\n', E'\\n' || marker || E'\\n') END $$;
CREATE OR REPLACE FUNCTION bench_unmark(s text, marker text, new text) RETURNS text
  LANGUAGE sql IMMUTABLE AS $$
  SELECT CASE WHEN new IS NULL THEN s
              ELSE replace(s, E'\\n' || marker || E'\\n', E'\\n' || lower(new) || E'\\n') END $$;
"""  # noqa: S608 - constants of this file

# One copy `k` of a template row `t` (a safe template, see `is_safe`), as ingestion would have
# stored the record with new values of VARYING. `n` holds the new values.
GENERATOR = """
SELECT t.event_id AS template_id, %(k)s AS k, n.ts, n.host, n.target, n.subject, n.ip, n.created,
  CASE WHEN t.computer = t.raw->>'Computer' THEN n.host ELSE t.computer END AS computer,
  CASE WHEN t.user_name = t.raw->>'TargetUserName' THEN n.target
       WHEN t.user_name = t.raw->>'SubjectUserName' THEN n.subject ELSE t.user_name END
       AS user_name,
  CASE WHEN t.source_ip = t.raw->>'IpAddress' THEN n.ip ELSE t.source_ip END AS source_ip,
  t.raw || jsonb_strip_nulls(jsonb_build_object('Computer', n.host, 'TargetUserName', n.target,
       'SubjectUserName', n.subject, 'IpAddress', n.ip, 'TimeCreated', n.created)) AS raw,
  bench_unmark(bench_unmark(bench_unmark(bench_unmark(bench_unmark(
    bench_mark(bench_mark(bench_mark(bench_mark(bench_mark(t.search_text,
      t.raw->>'Computer', E'\\x01h'), t.raw->>'TargetUserName', E'\\x01t'),
      t.raw->>'SubjectUserName', E'\\x01s'), t.raw->>'IpAddress', E'\\x01i'),
      t.raw->>'TimeCreated', E'\\x01c'),
    E'\\x01h', n.host), E'\\x01t', n.target), E'\\x01s', n.subject), E'\\x01i', n.ip),
    E'\\x01c', n.created) AS search_text
FROM events_securityevent t JOIN bench_template b ON b.event_id = t.event_id AND b.safe
CROSS JOIN LATERAL (
  SELECT ts, bench_host(t.raw->>'Computer', %(k)s) AS host,
    bench_user(t.raw->>'TargetUserName', %(k)s) AS target,
    bench_user(t.raw->>'SubjectUserName', %(k)s) AS subject,
    bench_ip(t.raw->>'IpAddress', %(k)s) AS ip,
    to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS created
  FROM (SELECT %(now)s::timestamptz - make_interval(secs =>
          ((hashint8(t.event_id * 100003 + %(k)s)::numeric + 2147483648)
           * %(span)s * 1000000 / 4294967296)::bigint / 1000000.0) AS ts) s) n
"""


def make_record(rng: random.Random, pool: list[dict], now: datetime, span: int) -> dict:
    record = dict(rng.choice(pool))
    record["Computer"] = rng.choice(HOSTS)
    for key in USER_FIELDS:
        if key in record:
            record[key] = rng.choice(USERS)
    if "IpAddress" in record:
        record["IpAddress"] = (
            f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        )
    stamp = now - timedelta(seconds=rng.uniform(0, span))
    record["TimeCreated"] = stamp.strftime(TIME_FORMAT)
    record.pop("EventRecordID", None)
    return record


def copy_of(record: dict, k: int, created: str) -> dict:
    """What the SQL generator makes of `record` for copy `k` (the new time given)."""
    copy = dict(record)
    copy["Computer"] = shift_host(record["Computer"], k)
    for key in USER_FIELDS:
        if key in record:
            copy[key] = shift_user(record[key], k)
    if "IpAddress" in record:
        copy["IpAddress"] = shift_ip(record["IpAddress"], k)
    copy["TimeCreated"] = created
    return copy


GENERATED_IP = re.compile(r"10\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}")


def is_safe(record: dict, row) -> bool:
    """A template may be multiplied by replacing lines of its search text when no other value
    of the event could be one of the varying ones (which ingestion would have written once),
    and its stored columns are either taken from the varying fields or none of their values."""
    from events.normalize import event_fields
    from events.query import _leaves, search_line

    others = {name: value for name, value in event_fields(record).items() if name not in VARYING}
    lines = {search_line(value) for value in _leaves(others.values())}
    lines |= {search_line(row.message), search_line(row.source_type)}
    varying = {h.lower() for h in HOSTS} | set(USERS)
    if lines & varying or any(GENERATED_IP.fullmatch(line) for line in lines):
        return False
    users = {record.get(key) for key in USER_FIELDS}
    return (
        row.computer == record["Computer"]
        and (row.user_name not in USERS or row.user_name in users)
        and (not GENERATED_IP.fullmatch(row.source_ip) or row.source_ip == record.get("IpAddress"))
    )


def load(count: int, days: int, batch: int, distinct: int) -> None:
    from django.db import connection, transaction

    from events.ingest import prepare
    from events.services import _build, insert_rows

    rng = random.Random(42)
    pool = templates()
    now = datetime.now(UTC)
    span = days * 86400
    field_indexes = importlib.import_module("events.migrations.0007_hunting_field_trigram_indexes")
    with connection.cursor() as cursor:
        cursor.execute("DROP INDEX IF EXISTS event_search_text_trgm_idx")
        cursor.execute("DROP INDEX IF EXISTS event_raw_path_ops_idx")
        for field in field_indexes.FIELDS:
            cursor.execute(f"DROP INDEX IF EXISTS {field_indexes.index_name(field)}")
        cursor.execute(SQL_FUNCTIONS)
        cursor.execute("CREATE TABLE bench_template (event_id bigint PRIMARY KEY, safe boolean)")
    # 1. Distinct records through ingestion's own code (normalize, validate, build, COPY).
    distinct = min(distinct, count)
    started, done, originals = time.monotonic(), 0, {}
    while done < distinct:
        size = min(batch, distinct - done)
        records = [make_record(rng, pool, now, span) for _ in range(size)]
        prepared = prepare(records)
        assert not prepared.errors, prepared.errors[:3]
        rows = [_build(item, agent=None, received_at=now) for item in prepared.items]
        with transaction.atomic():
            insert_rows(rows)
            marks = [
                (row.pk, is_safe(record, row)) for record, row in zip(records, rows, strict=True)
            ]
            with connection.cursor() as cursor:
                cursor.executemany("INSERT INTO bench_template VALUES (%s, %s)", marks)
        originals.update((row.pk, record) for record, row in zip(records, rows, strict=True))
        done += size
        print(f"  ingested {done:,} distinct events ({done / (time.monotonic() - started):,.0f}/s)",
              flush=True)  # fmt: skip
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM bench_template WHERE safe")
        (safe,) = cursor.fetchone()
    print(f"{distinct:,} distinct events in {time.monotonic() - started:,.0f} s; "
          f"{safe:,} may be copied")  # fmt: skip
    # 2. Check the generator against ingestion on a sample, then multiply inside PostgreSQL.
    params = {"now": now, "span": span}
    verify(originals, params, rng)
    columns = [
        field.name
        for field in connection.introspection.get_table_description(
            connection.cursor(), "events_securityevent"
        )
        if field.name not in {"event_id", "timestamp", "computer", "user_name", "source_ip",
                              "raw", "search_text"}
    ]  # fmt: skip
    kept = ", ".join(f"t.{c}" for c in columns)
    started, remaining, k = time.monotonic(), count - distinct, 0
    while remaining > 0:
        k += 1
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO events_securityevent (timestamp, computer, user_name, source_ip, "  # noqa: S608
                f"raw, search_text, {', '.join(columns)}) "
                f"SELECT g.ts, g.computer, g.user_name, g.source_ip, g.raw, g.search_text, {kept} "
                f"FROM ({GENERATOR}) g JOIN events_securityevent t ON t.event_id = g.template_id "
                f"LIMIT %(limit)s",
                {**params, "k": k, "limit": remaining},
            )
            remaining -= cursor.rowcount
        if k % 5 == 0 or remaining <= 0:
            done = count - remaining
            print(f"  {done:,} events ({(done - distinct) / (time.monotonic() - started):,.0f}"
                  " copies/s)", flush=True)  # fmt: skip
    print(f"copied in {time.monotonic() - started:,.0f} s")
    # 3. The indexes the migrations build, now over the whole table, then VACUUM ANALYZE (as
    # autovacuum would after a bulk insert: statistics and the visibility map).
    trigram = importlib.import_module("events.migrations.0003_hunting_backfill_and_trigram_index")
    containment = importlib.import_module("events.migrations.0004_hunting_raw_containment_index")
    statements = [("search_text trigram", trigram.TRGM_INDEX),
                  ("raw jsonb_path_ops", containment.RAW_INDEX)]  # fmt: skip
    statements += [
        (f"{f} trigram", field_indexes.create_statement(f)) for f in field_indexes.FIELDS
    ]
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE bench_template")
        cursor.execute("SET maintenance_work_mem = '1GB'")
        for name, statement in statements:
            started = time.monotonic()
            print(f"  building the {name} index ...", flush=True)
            cursor.execute(statement)
            print(f"  {name} index built in {time.monotonic() - started:,.0f} s", flush=True)
        started = time.monotonic()
        cursor.execute("VACUUM ANALYZE events_securityevent")
        print(f"VACUUM ANALYZE in {time.monotonic() - started:,.0f} s")
        cursor.execute(
            "SELECT pg_size_pretty(pg_table_size('events_securityevent')), "
            "pg_size_pretty(pg_total_relation_size('events_securityevent'))"
        )
        print("table: {}, with indexes: {}".format(*cursor.fetchone()))
        cursor.execute(
            "SELECT indexrelid::regclass::text, pg_size_pretty(pg_relation_size(indexrelid)) "
            "FROM pg_index WHERE indrelid = 'events_securityevent'::regclass ORDER BY 1"
        )
        for name, size in cursor.fetchall():
            print(f"  index {name}: {size}")


def verify(originals: dict, params: dict, rng: random.Random, sample: int = 300) -> None:
    """Generated rows equal what ingestion (`events.services._build`) stores for the same record:
    for `sample` (template, copy) pairs, build the copy's record in Python, ingest-build it and
    compare every column the generator writes."""
    from django.db import connection

    from events.ingest import prepare
    from events.services import _build

    with connection.cursor() as cursor:
        cursor.execute("SELECT event_id FROM bench_template WHERE safe")
        safe = [key for (key,) in cursor.fetchall()]
    checked = 0
    for template_id in rng.sample(safe, min(sample, len(safe))):
        k = rng.randrange(1, 60)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT g.ts, g.computer, g.user_name, g.source_ip, g.raw, g.search_text, "  # noqa: S608
                f"t.event_code, t.severity, t.message, t.source_type "
                f"FROM ({GENERATOR}) g JOIN events_securityevent t ON t.event_id = g.template_id "
                f"WHERE g.template_id = %(id)s",
                {**params, "k": k, "id": template_id},
            )
            ts, computer, user_name, source_ip, raw, search_text, *kept = cursor.fetchone()
        raw = json.loads(raw) if isinstance(raw, str) else raw
        record = copy_of(originals[template_id], k, raw["TimeCreated"])
        (item,) = prepare([record]).items
        row = _build(item, agent=None, received_at=params["now"])
        names = ("timestamp", "computer", "user_name", "source_ip", "raw", "search_text",
                 "event_code", "severity", "message", "source_type")  # fmt: skip
        expected = [getattr(row, name) for name in names]
        got = (ts, computer, user_name, source_ip, raw, search_text, *kept)
        for name, want, have in zip(names, expected, got, strict=True):
            if want != have:
                raise SystemExit(
                    f"generated row differs from ingestion in {name}: "
                    f"template {template_id}, copy {k}:\n{want!r}\n{have!r}"
                )
        checked += 1
    print(f"verified {checked} generated rows against ingestion: equal in every column")


def scenarios(now: datetime) -> list[tuple[str, str, dict]]:
    day = (now - timedelta(hours=24)).isoformat()
    week = (now - timedelta(days=7)).isoformat()
    lst, hist, facets = "/api/v1/events/", "/api/v1/events/histogram/", "/api/v1/events/facets/"
    return [
        ("raw field value, 7 d", lst, {"q": "TargetUserName:administrator", "since": week}),
        ("wildcard on CommandLine, 7 d", lst, {"q": "CommandLine:*powershell*", "since": week}),
        ("a host over 24 h", lst, {"q": "computer:dc-03.corp.local", "since": day}),
        ("a bare word, 7 d", lst, {"q": "mimikatz", "since": week}),
        ("OR + NOT, 24 h", lst, {"q": "(lsass OR sekurlsa) AND NOT computer:dc-*", "since": day}),
        ("all events, 24 h (no q)", lst, {"since": day}),
        ("histogram, all events, 24 h", hist, {"since": day}),
        ("histogram, raw field, 7 d", hist, {"q": "LogonType:3", "since": week}),
        ("facet computer, 24 h", facets, {"field": "computer", "since": day}),
        ("facet TargetUserName, 24 h", facets, {"field": "TargetUserName", "since": day}),
        (
            "facet computer, bare word, 7 d",
            facets,
            {"field": "computer", "q": "mimikatz", "since": week},
        ),
    ]


def measure(runs: int) -> None:
    from django.contrib.auth.models import Group, User
    from rest_framework.test import APIClient

    from accounts.services import issue_access_token

    user, _ = User.objects.get_or_create(username="bench-hunter")
    user.groups.add(Group.objects.get(name="analyst"))
    token, _session = issue_access_token(user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    now = datetime.now(UTC)
    print(f"\n{'scenario':<34} {'matches':>9} {'p50 ms':>8} {'p95 ms':>8}")
    for name, path, params in scenarios(now):
        times, matches = [], "-"
        for run in range(runs + 1):
            started = time.perf_counter()
            answer = client.get(f"{path}?{urlencode(params)}")
            elapsed = (time.perf_counter() - started) * 1000
            assert answer.status_code == 200, answer.content[:300]
            if run:  # the first one warms caches
                times.append(elapsed)
            body = answer.json()
            if "count" in body:
                matches = f"{body['count']:,}"
            elif "buckets" in body:
                matches = f"{sum(b['count'] for b in body['buckets']):,}"
            elif "values" in body:
                matches = f"{sum(v['count'] for v in body['values']):,}"
        times.sort()
        p50 = statistics.median(times)
        p95 = times[min(len(times) - 1, round(0.95 * (len(times) - 1)))]
        print(f"{name:<34} {matches:>9} {p50:>8.0f} {p95:>8.0f}", flush=True)


def main() -> None:
    args = parse_args()
    print(f"load average at start: {os.getloadavg()}  cpus: {os.cpu_count()}")
    if not args.reuse:
        pg("dropdb", "--if-exists", args.db)
        pg("createdb", args.db)
    try:
        setup_django(args.db)
        if not args.reuse:
            from django.core.management import call_command

            call_command("migrate", verbosity=0)
            load(args.events, args.days, args.batch, args.distinct)
        print(f"load average before measuring: {os.getloadavg()}")
        measure(args.runs)
        print(f"load average at the end: {os.getloadavg()}")
    finally:
        if not args.keep:
            from django.db import connections

            connections.close_all()
            pg("dropdb", "--if-exists", args.db)
            print(f"dropped database {args.db}")


if __name__ == "__main__":
    main()
