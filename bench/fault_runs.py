"""Fault runs: kill -9 daphne mid-batch, restart Redis, kill the Celery worker mid-drain —
then prove that nothing stored was lost to live clients or to detection.

    .venv/bin/python bench/fault_runs.py [--database-url postgres://…/db] [--crashes 3]

Sets up its own world: a private `redis-server` (AOF, fsync always) on a free port, a SQLite
file (or the given database, which must be empty: it is migrated), two daphne processes, a
Celery worker and beat (the pipeline relay), an enrolled agent and two `/ws/events` watchers
(one on each daphne; a watcher whose server dies reconnects to the other with `?since=`).
Every event is a failed logon (4625) of one account from one address within one brute-force
window, so each stored event must be counted by the brute-force alert.

1. Crashes: a 500-event batch is posted to daphne A; the moment its outbox rows are committed
   (the batch is stored, its post-commit work is not done yet) A is killed with SIGKILL. The
   agent retries the same batch on B (`duplicates`), A is restarted. Repeated `--crashes` times.
2. Redis restart: Redis is killed (SIGKILL; AOF keeps what it acknowledged, or with
   `--no-persistence` it comes back empty), batches are posted to both servers while it is
   down, Redis is started again.
3. Worker kill: while the relay drains what the outage left, the Celery worker is killed with
   SIGKILL as soon as it has completed part of it; a new worker finishes.
4. Wait until the outbox is empty, then check:
   - stored ⇒ delivered live or covered by `resync_required`, for each watcher;
   - stored 4625s = the brute-force alerts' occurrence_count;
   - no event message delivered twice to a watcher.

Prints one JSON object with the numbers; exit status 1 if anything was lost.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import websockets

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
PASSWORD = "Fault-run-Passw0rd"  # noqa: S105 - a throw-away user of a throw-away database
ENROLLMENT_KEY = "fault-run-enrollment-key"
START = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class World:
    def __init__(self, database_url: str | None, workdir: Path, no_persistence: bool) -> None:
        self.workdir = workdir
        self.no_persistence = no_persistence
        self.redis_port = free_port()
        self.sqlite = None if database_url else workdir / "siem.sqlite3"
        self.database_url = database_url or f"sqlite:///{self.sqlite}"
        self.env = {
            **os.environ,
            "SIEM_IGNORE_DOTENV": "1",
            "DJANGO_SETTINGS_MODULE": "siem.settings",
            "DEBUG": "false",
            "SECRET_KEY": "fault-run-secret-key-" + uuid.uuid4().hex,
            "DATABASE_URL": self.database_url,
            "SIEM_DATA_DIR": str(workdir),
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "REDIS_KEY_PREFIX": f"fault-{uuid.uuid4().hex[:8]}",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "AGENT_ENROLLMENT_KEY": ENROLLMENT_KEY,
            "LOG_LEVEL": "INFO",
            "SIGMA_RULES_DIR": "",
            # Short so that the run is short: a dead process's work is taken over after 3 s.
            "PIPELINE_LEASE_SEC": "3",
            "PIPELINE_RELAY_INTERVAL_SEC": "1",
            "PIPELINE_RETRY_MAX_SEC": "2",
        }
        self.redis: subprocess.Popen | None = None
        self.daphne: dict[str, subprocess.Popen] = {}
        self.ports = {"A": free_port(), "B": free_port()}
        self.worker: subprocess.Popen | None = None
        self.beat: subprocess.Popen | None = None
        self._pg = None

    # --- processes ---------------------------------------------------------------------------
    def _spawn(self, name: str, args: list[str]) -> subprocess.Popen:
        out = (self.workdir / f"{name}.log").open("ab")
        try:
            return subprocess.Popen(args, cwd=ROOT, env=self.env, stdout=out, stderr=out)  # noqa: S603
        finally:
            out.close()

    def start_redis(self) -> None:
        server = shutil.which("redis-server", path=str(BIN)) or shutil.which("redis-server")
        self.redis = self._spawn(
            "redis",
            [
                server,
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.workdir),
                "--save",
                "",
                *(
                    ["--appendonly", "no"]
                    if self.no_persistence
                    else ["--appendonly", "yes", "--appendfsync", "always"]
                ),
            ],
        )
        wait_port(self.redis_port)

    def kill(self, process: subprocess.Popen | None) -> None:
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)

    def start_daphne(self, name: str) -> None:
        self.daphne[name] = self._spawn(
            f"daphne-{name}",
            [
                str(BIN / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(self.ports[name]),
                "siem.asgi:application",
            ],
        )
        wait_port(self.ports[name])

    def start_worker(self) -> None:
        self.worker = self._spawn(
            "worker",
            [sys.executable, "-m", "celery", "-A", "siem", "worker", "-P", "solo", "-l", "INFO"],
        )

    def start_beat(self) -> None:
        schedule = str(self.workdir / "celerybeat-schedule")
        self.beat = self._spawn(
            "beat", [sys.executable, "-m", "celery", "-A", "siem", "beat", "-s", schedule]
        )

    def manage(self, *args: str) -> str:
        done = subprocess.run(  # noqa: S603
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        if done.returncode:
            raise RuntimeError(f"manage.py {args[0]}: {done.stdout}{done.stderr}")
        return done.stdout

    def stop_all(self) -> None:
        for process in [*self.daphne.values(), self.worker, self.beat, self.redis]:
            if process is not None and process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.kill(process)

    # --- database ----------------------------------------------------------------------------
    def query(self, sql: str) -> list[tuple]:
        if self.sqlite is not None:
            for _ in range(50):
                try:
                    with sqlite3.connect(self.sqlite, timeout=5) as db:
                        return db.execute(sql).fetchall()
                except sqlite3.OperationalError:
                    time.sleep(0.05)
            raise RuntimeError("SQLite stayed locked")
        import psycopg

        if self._pg is None or self._pg.closed:
            url = self.database_url.replace("postgres://", "postgresql://", 1)
            self._pg = psycopg.connect(url, autocommit=True)
        return self._pg.execute(sql).fetchall()

    def outbox(self) -> int:
        return self.query("SELECT COUNT(*) FROM events_pipelineitem")[0][0]


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port}")


def failed_logon(record: int) -> dict:
    return {
        "EventID": 4625,
        "Computer": "DC-01",
        "Channel": "Security",
        "TimeCreated": (START + timedelta(milliseconds=record)).isoformat().replace("+00:00", "Z"),
        "EventRecordID": record,
        "TargetUserName": "administrator",
        "TargetDomainName": "EXAMPLE",
        "Status": "0xc000006d",
        "LogonType": 3,
        "WorkstationName": "KALI",
        "IpAddress": "203.0.113.66",
    }


class Watcher:
    """A `/ws/events` client that reconnects with `?since=` to whichever server is up."""

    def __init__(self, name: str, ports: list[int], token: str) -> None:
        self.name, self.ports, self.token = name, ports, token
        self.events: Counter = Counter()
        self.resyncs: list[dict] = []
        self.seq: int | None = None
        self.connections = 0
        self.last_message = time.monotonic()
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        turn = 0
        while True:
            port = self.ports[turn % len(self.ports)]
            turn += 1
            url = f"ws://127.0.0.1:{port}/ws/events?token={self.token}"
            if self.seq is not None:
                url += f"&since={self.seq}"
            try:
                async with websockets.connect(url, max_size=None, open_timeout=5) as ws:
                    self.connections += 1
                    async for text in ws:
                        message = json.loads(text)
                        self.last_message = time.monotonic()
                        if "seq" in message:
                            self.seq = message["seq"]
                        if message["type"] == "event":
                            self.events[message["data"]["event_id"]] += 1
                        elif message["type"] == "resync_required":
                            self.resyncs.append(message)
                        elif message["type"] == "error":
                            log(f"watcher {self.name}: {message}")
            except (TimeoutError, OSError, websockets.WebSocketException):
                await asyncio.sleep(0.3)


async def post_batch(world: World, client: httpx.AsyncClient, token: str, batch, order) -> dict:
    """Post one batch like the agent does: on a dropped connection or 5xx, retry the same
    batch, on the next server."""
    attempt = 0
    while True:
        name = order[attempt % len(order)]
        attempt += 1
        if world.daphne[name].poll() is not None:
            await asyncio.sleep(0.2)
            continue
        try:
            response = await client.post(
                f"http://127.0.0.1:{world.ports[name]}/api/v1/agents/events/",
                json=batch,
                headers={"Authorization": f"Agent {token}"},
                timeout=120,
            )
        except httpx.HTTPError:
            await asyncio.sleep(0.3)
            continue
        if response.status_code in (200, 201):
            body = response.json()
            return {"server": name, "created": body["created"], "duplicates": body["duplicates"]}
        await asyncio.sleep(0.5)


async def scenario(world: World, args) -> dict:
    record = 0

    def next_batch(size: int) -> list[dict]:
        nonlocal record
        batch = [failed_logon(record + i) for i in range(size)]
        record += size
        return batch

    async with httpx.AsyncClient(timeout=120) as client:
        login = await client.post(
            f"http://127.0.0.1:{world.ports['B']}/api/v1/auth/login",
            json={"username": "watcher", "password": PASSWORD},
        )
        user_token = login.json()["access_token"]
        enrolled = await client.post(
            f"http://127.0.0.1:{world.ports['B']}/api/v1/agents/register/",
            json={"enrollment_key": ENROLLMENT_KEY, "hostname": "DC-01"},
        )
        agent = enrolled.json()["agent_token"]
        watchers = [
            Watcher("on-A", [world.ports["A"], world.ports["B"]], user_token),
            Watcher("on-B", [world.ports["B"], world.ports["A"]], user_token),
        ]
        for watcher in watchers:
            watcher.task = asyncio.create_task(watcher.run())
        await asyncio.sleep(2)
        report: dict = {"crashes": [], "redis_restart": {}, "worker_kill": {}}

        await post_batch(world, client, agent, next_batch(100), ["A", "B"])  # warm-up

        # 1. kill -9 daphne A mid-batch.
        for _ in range(args.crashes):
            # The previous crash's rows wait out their lease before the relay finishes them: the
            # next kill must be triggered by this batch's rows, not by those.
            settle = time.monotonic() + 60
            while world.outbox() and time.monotonic() < settle:
                await asyncio.sleep(0.2)
            posting = asyncio.create_task(
                post_batch(world, client, agent, next_batch(args.batch), ["A", "B"])
            )
            left = None
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not posting.done():
                if world.outbox():  # committed, post-commit work not done yet
                    world.kill(world.daphne["A"])
                    left = world.outbox()
                    break
                await asyncio.sleep(0.002)
            outcome = await posting
            report["crashes"].append({"outbox_rows_left_by_kill": left, "retry": outcome})
            log(f"crash: outbox rows left {left}, agent retry {outcome}")
            await asyncio.to_thread(world.start_daphne, "A")
            await post_batch(world, client, agent, next_batch(100), ["A", "B"])

        # 2. Redis restart, batches stored while it is down.
        world.kill(world.redis)
        during = []
        for number in range(args.outage_batches):
            order = ["A", "B"] if number % 2 == 0 else ["B", "A"]
            during.append(
                await post_batch(world, client, agent, next_batch(args.outage_batch), order)
            )
        report["redis_restart"] = {
            "batches_while_down": len(during),
            "events_while_down": sum(d["created"] for d in during),
            "outbox_rows_while_down": world.outbox(),
        }
        log(f"redis down: {report['redis_restart']}")
        await asyncio.to_thread(world.start_redis)

        # 3. Kill the Celery worker as soon as it has drained part of what the outage left.
        peak = world.outbox()
        at_kill = claimed = None
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = world.outbox()
            if 0 < now < peak:
                world.kill(world.worker)
                at_kill = world.outbox()
                claimed = world.query(
                    "SELECT COUNT(*) FROM events_pipelineitem WHERE claim_token <> ''"
                )[0][0]
                break
            if now == 0:
                break
            await asyncio.sleep(0.005)
        report["worker_kill"] = {
            "outbox_rows_at_start": peak,
            "outbox_rows_at_kill": at_kill,
            "rows_claimed_by_killed_worker": claimed,
        }
        log(f"worker kill: {report['worker_kill']}")
        await asyncio.to_thread(world.start_worker)

        await post_batch(world, client, agent, next_batch(100), ["B", "A"])  # after it all

        # 4. Wait for the relay and the watchers to settle.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            quiet = all(time.monotonic() - w.last_message > 4 for w in watchers)
            if world.outbox() == 0 and quiet:
                break
            await asyncio.sleep(0.5)
        for watcher in watchers:
            watcher.task.cancel()

    stored = {row[0] for row in world.query("SELECT event_id FROM events_securityevent")}
    failed_logons = world.query("SELECT COUNT(*) FROM events_securityevent WHERE event_code=4625")
    counted = world.query(
        "SELECT COALESCE(SUM(occurrence_count), 0) FROM alerts_alert "
        "WHERE rule_id = 'builtin.brute_force'"
    )
    report["stored_events"] = len(stored)
    report["outbox_left"] = world.outbox()
    report["stored_4625"] = failed_logons[0][0]
    report["brute_force_count"] = int(counted[0][0])
    report["watchers"] = {}
    lost_total = 0
    for watcher in watchers:
        missing = stored - set(watcher.events)
        covered = bool(watcher.resyncs)
        lost = 0 if covered else len(missing)
        lost_total += lost
        report["watchers"][watcher.name] = {
            "delivered": len(set(watcher.events) & stored),
            "missing": len(missing),
            "resync_required": len(watcher.resyncs),
            "lost": lost,
            "duplicates": sum(1 for count in watcher.events.values() if count > 1),
            "connections": watcher.connections,
        }
    report["detection_lost"] = report["stored_4625"] - report["brute_force_count"]
    report["lost"] = lost_total + abs(report["detection_lost"]) + report["outbox_left"]
    return report


SETUP = f"""
from django.contrib.auth.models import Group, User
user = User.objects.create_user("watcher", password={PASSWORD!r})
user.groups.add(Group.objects.get(name="viewer"))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", help="an empty database (default: a new SQLite file)")
    parser.add_argument("--crashes", type=int, default=3)
    parser.add_argument("--batch", type=int, default=500, help="events per crash batch")
    parser.add_argument("--outage-batches", type=int, default=10)
    parser.add_argument("--outage-batch", type=int, default=200)
    parser.add_argument(
        "--no-persistence",
        action="store_true",
        help="Redis without AOF: its restart loses history and windows (clients must resync)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work directory (logs)")
    args = parser.parse_args(argv)

    workdir = Path(tempfile.mkdtemp(prefix="fault-runs-"))
    world = World(args.database_url, workdir, args.no_persistence)
    started = time.monotonic()
    try:
        world.start_redis()
        world.manage("migrate", "--noinput")
        world.manage("shell", "--no-imports", "-c", SETUP)
        world.start_daphne("A")
        world.start_daphne("B")
        world.start_worker()
        world.start_beat()
        report = asyncio.run(scenario(world, args))
    finally:
        world.stop_all()
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report["database"] = "sqlite" if world.sqlite else world.database_url.split(":", 1)[0]
    report["redis_persistence"] = "none" if args.no_persistence else "aof, fsync always"
    report["seconds"] = round(time.monotonic() - started, 1)
    report["load_average"] = [round(x, 2) for x in os.getloadavg()]
    if args.keep:
        report["workdir"] = str(workdir)
    print(json.dumps(report, indent=2))
    return 1 if report["lost"] else 0


if __name__ == "__main__":
    sys.exit(main())
