"""Fault runs (bench/fault_runs.py) as a test: kill -9 of a daphne process mid-batch three
times, a Redis restart with batches stored while it is down, a Celery worker killed mid-drain —
and every stored event reached both live watchers (or they were told `resync_required`), and
every stored failed logon was counted by the brute-force alert exactly once.

Real processes: two daphne, a Celery worker and beat, a private redis-server (AOF) on a free
port; SQLite by default, a fresh PostgreSQL database when the suite runs on PostgreSQL.
"""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from django.db import connection

ROOT = Path(__file__).resolve().parent.parent

# every_database: the runs use the pass's PostgreSQL server (database_url), not a db fixture.
pytestmark = [pytest.mark.e2e, pytest.mark.every_database]


@pytest.fixture
def database_url(django_db_blocker):
    """None (the script's own SQLite file), or a new PostgreSQL database dropped afterwards."""
    with django_db_blocker.unblock():
        vendor = connection.vendor
        if vendor != "postgresql":
            yield None
            return
        import psycopg

        params = connection.get_connection_params()
        name = f"fault_{uuid.uuid4().hex[:10]}"
        admin = psycopg.connect(
            host=params.get("host"),
            port=params.get("port"),
            user=params.get("user"),
            password=params.get("password"),
            dbname="postgres",
            autocommit=True,
        )
        admin.execute(f'CREATE DATABASE "{name}"')
        user = params.get("user") or "postgres"
        auth = f"{user}:{params['password']}@" if params.get("password") else f"{user}@"
        host = params.get("host") or "127.0.0.1"
        try:
            yield f"postgres://{auth}{host}:{params.get('port') or 5432}/{name}"
        finally:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()


@pytest.mark.timeout(1200)
def test_crashes_and_outages_lose_no_live_message_and_no_detection(database_url):
    args = [sys.executable, "bench/fault_runs.py", "--crashes", "3", "--batch", "300"]
    args += ["--outage-batches", "6", "--outage-batch", "100"]
    if database_url:
        args += ["--database-url", database_url]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=1100)  # noqa: S603
    assert done.returncode in (0, 1), done.stderr[-3000:]
    report = json.loads(done.stdout)
    print(json.dumps(report, indent=2))

    # The faults happened where they should: each kill left committed, unfinished work.
    assert all(crash["outbox_rows_left_by_kill"] for crash in report["crashes"])
    # The agent's retry finds the batch stored (the kill came after the commit) or stores it
    # (the kill came first); at least one kill must have hit committed, unfinished work.
    retries = [crash["retry"] for crash in report["crashes"]]
    assert all(retry["created"] + retry["duplicates"] == 300 for retry in retries)
    assert any(retry["duplicates"] == 300 for retry in retries)
    assert report["redis_restart"]["outbox_rows_while_down"] > 0

    assert report["outbox_left"] == 0
    assert report["stored_events"] == 100 + 3 * (300 + 100) + 600 + 100
    assert report["brute_force_count"] == report["stored_4625"] == report["stored_events"]
    for watcher in report["watchers"].values():
        assert watcher["lost"] == 0
        assert watcher["duplicates"] == 0
    assert report["lost"] == 0
