"""Claims: several worker processes never analyze the same event; dead workers' claims return.

The race runs real `manage.py analyze_events` processes at the same time against one database
(a file SQLite database, and PostgreSQL when it is reachable) and one loopback LLM that records
every event id it was asked about.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from events.ai import Analysis
from events.analysis import claim_batch, reclaim_stale, run_batch
from events.models import AnalysisStatus, SecurityEvent
from tests.ai_helpers import FakeLLM, Reply, verdicts

BASE_DIR = Path(__file__).resolve().parent.parent
POSTGRES = "postgres://postgres@127.0.0.1:5432/{name}"


class Builtin:
    name = "builtin-test"

    def analyze(self, events):
        return {e.event_id: Analysis(10, "benign", "ok") for e in events}


@pytest.mark.django_db
def test_claims_of_one_run_are_not_claimable_by_the_next():
    for index in range(7):
        SecurityEvent.objects.create(computer=f"H{index}", event_code=4624, severity=1)
    _, first = claim_batch(5)
    _, second = claim_batch(5)
    _, third = claim_batch(5)
    assert len(first) == 5 and len(second) == 2 and third == []
    assert {e.pk for e in first}.isdisjoint({e.pk for e in second})


@pytest.mark.django_db
def test_a_claim_left_by_a_dead_worker_is_taken_back_and_analyzed(settings):
    settings.AI_CLAIM_TIMEOUT_SEC = 600
    settings.AI_RETRY_BACKOFF_SEC = 0
    event = SecurityEvent.objects.create(computer="H", event_code=4624, severity=1)
    claim_batch(10)  # the worker dies here

    assert run_batch(Builtin()).claimed == 0  # a young claim is left alone
    later = timezone.now() + timedelta(seconds=601)
    result = run_batch(Builtin(), now=later)

    event.refresh_from_db()
    assert (result.reclaimed, result.analyzed) == (1, 1)
    assert event.ai_status == AnalysisStatus.DONE and event.ai_attempts == 1


@pytest.mark.django_db
def test_an_event_that_keeps_killing_its_worker_ends_failed_with_the_reason(settings):
    settings.AI_CLAIM_TIMEOUT_SEC = 60
    settings.AI_RETRY_ATTEMPTS = 2
    event = SecurityEvent.objects.create(computer="H", event_code=4624, severity=1)
    now = timezone.now()
    for round_ in range(2):
        claim_batch(10, now=now, ignore_backoff=True)  # claimed, then the worker dies
        now += timedelta(seconds=61)
        reclaim_stale(now)
        event.refresh_from_db()
        assert event.ai_attempts == round_ + 1

    assert event.ai_status == AnalysisStatus.FAILED
    assert "did not finish within 60 s" in event.ai_error


def _manage(env: dict[str, str], *args: str, timeout: float = 180) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def _postgres_database(name: str) -> str | None:
    """A fresh PostgreSQL database for this test, or None if PostgreSQL is not reachable."""
    try:
        import psycopg

        with psycopg.connect(POSTGRES.format(name="test"), autocommit=True, connect_timeout=3) as c:
            c.execute(f'DROP DATABASE IF EXISTS "{name}"')
            c.execute(f'CREATE DATABASE "{name}"')
    except Exception:
        return None
    return POSTGRES.format(name=name)


def _drop_postgres_database(name: str) -> None:
    import psycopg

    with psycopg.connect(POSTGRES.format(name="test"), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.e2e
@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_three_worker_processes_never_analyze_the_same_event_twice(tmp_path, backend):
    pg_name = f"test_ai_claims_{uuid.uuid4().hex[:6]}"
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'claims.sqlite3'}"
    else:
        url = _postgres_database(pg_name)
        if url is None:
            pytest.skip("PostgreSQL is not reachable on 127.0.0.1:5432")
    llm = FakeLLM().start()
    good = verdicts(lambda e: 10, "benign")
    # A little latency per request keeps the three processes overlapping.
    llm.behaviour = lambda body: Reply(content=good(body).content, delay=0.05)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AI_")}
    env.update(
        SIEM_IGNORE_DOTENV="1",
        DATABASE_URL=url,
        SIEM_DATA_DIR=str(tmp_path),
        REDIS_URL="redis://127.0.0.1:6379/5",
        REDIS_KEY_PREFIX=f"siem-ai-claims-{uuid.uuid4().hex[:8]}",
        DEBUG="false",
        SECRET_KEY="claims-test-secret-key-not-for-production",
        AI_PROVIDER="openai",
        AI_BASE_URL=llm.base_url,
        AI_MODEL="m",
    )
    try:
        _manage(env, "migrate", "--noinput")
        _manage(
            env,
            "shell",
            "-c",
            "from events.models import SecurityEvent as E;"
            "E.objects.bulk_create([E(computer=f'H{i}', event_code=4624, severity=1)"
            " for i in range(150)])",
        )
        workers = [
            subprocess.Popen(
                [sys.executable, "manage.py", "analyze_events", "--batch-size", "3"],
                cwd=BASE_DIR,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for _ in range(3)
        ]
        outputs = [worker.communicate(timeout=300)[0] for worker in workers]
        assert all(worker.returncode == 0 for worker in workers), outputs
        counts = json.loads(
            _manage(
                env,
                "shell",
                "-c",
                "import json; from django.db.models import Count;"
                "from events.models import SecurityEvent as E;"
                "print(json.dumps({r['ai_status']: r['n'] for r in "
                "E.objects.values('ai_status').annotate(n=Count('pk'))}))",
            ).splitlines()[-1]
        )
    finally:
        llm.stop()
        if backend == "postgres":
            _drop_postgres_database(pg_name)

    asked = llm.requested_ids()
    assert len(asked) == len(set(asked)) == 150, "an event was sent to the provider twice"
    assert counts == {"done": 150}
    # The processes really overlapped: the work was shared (e.g. [50, 49, 51] on PostgreSQL).
    done_by = [int(o.rsplit("Done: ", 1)[1].split(" ", 1)[0]) for o in outputs]
    assert sum(done_by) == 150
    assert sum(1 for n in done_by if n) >= 2, done_by
