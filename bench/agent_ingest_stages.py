"""Where an agent batch's server time goes: each ingestion stage timed in-process.

Complements bench/agent_ingest.py (end to end over HTTP): here one process runs the stages of
POST /api/v1/agents/events/ one after the other on batches of simulated agent records, against
PostgreSQL (database `--database`, recreated) and the real Redis, and prints µs per event:

1. JSON decoding of the request body;
2. normalization + validation (`events.ingest.prepare`; also the serializer-only path);
3. the record-id de-duplication query;
4. the insert (one transaction, `events.services.insert_rows`: COPY on PostgreSQL), on-commit
   work excluded;
5. the broadcast of the batch (`event` messages, one history script call per 200 messages);
6. the post-ingestion pipeline (detection).

    .venv/bin/python bench/agent_ingest_stages.py --batches 20 --batch-size 500
"""

from __future__ import annotations

import argparse
import json
import os
import random
import secrets
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Per-stage cost of agent ingestion (µs per event), in-process.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--batches", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--pg-url", default="postgres://postgres@127.0.0.1:5432")
    parser.add_argument("--database", default="siem_bench_agents_stages")
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    args = parser.parse_args(argv)

    import psycopg

    with psycopg.connect(f"{args.pg_url}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{args.database}"')
    os.environ.update(
        DJANGO_SETTINGS_MODULE="siem.settings",
        SIEM_IGNORE_DOTENV="1",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(48),
        DATABASE_URL=f"{args.pg_url}/{args.database}",
        REDIS_URL=args.redis_url,
        REDIS_KEY_PREFIX=f"siem-bench-stages-{secrets.token_hex(3)}",
        LOG_LEVEL="WARNING",
    )
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True
    )
    try:
        results = run(args)
    finally:
        from django.db import connections

        connections.close_all()
        with psycopg.connect(f"{args.pg_url}/postgres", autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.database}" WITH (FORCE)')
        import redis

        client = redis.Redis.from_url(args.redis_url)
        for key in client.scan_iter(f"{os.environ['REDIS_KEY_PREFIX']}:*", count=1000):
            client.delete(key)  # what this run left under its own prefix
    events = args.batches * args.batch_size
    print(f"{events} events in {args.batches} batches of {args.batch_size}; load average "
          f"before: {results.pop('_load')}")  # fmt: skip
    total = 0.0
    for name, seconds in results.items():
        per_event = seconds / events * 1e6
        if not name.startswith("("):
            total += per_event
        print(f"  {name:44s} {per_event:8.1f} µs/event")
    print(f"  {'total':44s} {total:8.1f} µs/event → {1e6 / total:,.0f} events/s on one core")
    return 0


def run(args) -> dict:
    import django

    django.setup()
    from django.db import transaction
    from django.utils import timezone

    from agents.services import register_agent
    from agents.simulator import SimulatedAgent
    from events import services
    from events.api.serializers import EventInputSerializer
    from events.ingest import prepare
    from events.normalize import normalize_record
    from realtime.manager import get_connection_manager

    agent, _token = register_agent(hostname="STAGES-001")
    simulated = SimulatedAgent(1, "STAGES-001", random.Random(3))
    # An office mix with attack traffic, as the simulator sends it.
    bodies = []
    for _ in range(args.batches):
        records = simulated.brute_force_events(args.batch_size // 10)
        records += simulated.spray_events(args.batch_size // 10)
        records += [simulated.office_event() for _ in range(args.batch_size - len(records))]
        bodies.append(json.dumps(records[: args.batch_size]).encode())

    stages = {
        "json decode": 0.0,
        "normalize + validate (events.ingest.prepare)": 0.0,
        "(comparison: normalize + serializer only)": 0.0,
        "record-id de-duplication query": 0.0,
        "insert (COPY, one transaction)": 0.0,
        "broadcast (event messages)": 0.0,
        "detection (after_events_stored)": 0.0,
    }
    load = [round(x, 2) for x in os.getloadavg()]
    manager = get_connection_manager()
    for body in bodies:
        started = time.perf_counter()
        records = json.loads(body)
        stages["json decode"] += time.perf_counter() - started

        started = time.perf_counter()
        prepared = prepare(records, default_computer=agent.hostname)
        stages["normalize + validate (events.ingest.prepare)"] += time.perf_counter() - started
        assert not prepared.errors, prepared.errors[:1]

        started = time.perf_counter()
        serializer = EventInputSerializer()
        for record in records:
            serializer.run_validation(normalize_record(record))
        stages["(comparison: normalize + serializer only)"] += time.perf_counter() - started

        received = timezone.now()
        rows = [services._build(item, agent=agent, received_at=received) for item in prepared.items]
        started = time.perf_counter()
        rows, _duplicates = services._without_delivered(rows, agent)
        stages["record-id de-duplication query"] += time.perf_counter() - started

        started = time.perf_counter()
        with transaction.atomic():
            created = services.insert_rows(rows)
        stages["insert (COPY, one transaction)"] += time.perf_counter() - started

        started = time.perf_counter()
        with transaction.atomic():
            manager.broadcast_events(created)
        stages["broadcast (event messages)"] += time.perf_counter() - started

        started = time.perf_counter()
        services.after_events_stored(created, only=("alerts.detection",))
        stages["detection (after_events_stored)"] += time.perf_counter() - started
    stages["_load"] = load
    return stages


if __name__ == "__main__":
    raise SystemExit(main())
