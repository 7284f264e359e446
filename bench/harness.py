"""What the HTTP benchmarks share: daphne processes on one socket, readiness, clean-up.

Imported by bench/ingest_bulk.py and bench/agent_ingest.py (run as scripts, so this folder is
on sys.path).
"""

from __future__ import annotations

import asyncio
import multiprocessing
import queue
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = ROOT / ".venv" / "bin"
PYTHON = str(VENV_BIN / "python") if (VENV_BIN / "python").exists() else sys.executable


def run_manage(env: dict[str, str], *argv: str, quiet: bool = False) -> None:
    stdout = subprocess.DEVNULL if quiet else None
    subprocess.run([PYTHON, "manage.py", *argv], cwd=ROOT, env=env, check=True, stdout=stdout)


def start_servers(
    port: int, workers: int, env: dict[str, str], *, daphne_args: tuple[str, ...] = ()
) -> tuple[list[subprocess.Popen], socket.socket]:
    """`workers` daphne processes accepting on one shared listening socket (the kernel spreads
    the connections)."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(512)
    fd = listener.fileno()
    command = [str(VENV_BIN / "daphne"), *daphne_args, "--fd", str(fd), "siem.asgi:application"]
    procs = [
        subprocess.Popen(command, cwd=ROOT, env=env, pass_fds=[fd], stdout=subprocess.DEVNULL)
        for _ in range(workers)
    ]
    return procs, listener


def wait_ready(url: str, procs: list[subprocess.Popen], timeout: float = 60) -> None:
    """Until `url` (an endpoint that needs credentials) answers 401."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in procs):
            raise SystemExit("a daphne process exited during start-up")
        try:
            urllib.request.urlopen(url, timeout=2)  # noqa: S310 — loopback URL built by the bench
        except urllib.error.HTTPError as exc:
            if exc.code == 401:
                return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit("server did not become ready")


def stop_servers(procs: list[subprocess.Popen]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def delete_redis_keys(redis_url: str, prefix: str) -> int:
    """Delete the run's own keys (its prefix only; never a FLUSH); returns how many."""
    import redis

    client = redis.Redis.from_url(redis_url)
    removed, batch = 0, []
    for key in client.scan_iter(f"{prefix}:*", count=1000):
        batch.append(key)
        if len(batch) >= 500:
            removed += client.delete(*batch)
            batch = []
    if batch:
        removed += client.delete(*batch)
    return removed


# --- a live subscriber: broadcasting is measured as delivered, not only as published -----------
class Received:
    """What /ws/events clients got: `event` messages, resync_required, and close codes."""

    def __init__(self) -> None:
        self.events = 0
        self.resyncs = 0
        self.closes: list[int | None] = []


async def count_events(ws_url: str, received: Received, stop) -> None:
    """One /ws/events client until `stop` (an asyncio.Event) is set. Messages are told apart by
    their first bytes (`{"seq":N,"type":"event"`), so the counting client costs little CPU."""
    import websockets

    try:
        async with websockets.connect(ws_url, max_size=None) as ws:
            while not stop.is_set():
                try:
                    text = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    continue
                head = text[:40]
                if '"type":"event"' in head:
                    received.events += 1
                elif "resync_required" in head:  # server notices: `{"type": "resync_...`
                    received.resyncs += 1
    except websockets.ConnectionClosed as exc:
        received.closes.append(exc.rcvd.code if exc.rcvd else None)


class Subscribers:
    """`count_events` clients in a child process of their own, so that counting thousands of
    messages a second never competes with the load generator for this process's CPU (a
    subscriber that falls behind would look like a lossy server)."""

    def __init__(self, ws_url: str, clients: int = 1) -> None:
        context = multiprocessing.get_context("fork")  # started before any load thread
        self._events = context.RawValue("q", 0)
        self._resyncs = context.RawValue("q", 0)
        self._closes = context.Queue()
        self._stop = context.Event()
        self._process = context.Process(
            target=self._child, args=(ws_url, clients), daemon=True, name="bench-subscribers"
        )

    def _child(self, ws_url: str, clients: int) -> None:
        received = Received()

        async def main() -> None:
            stop = asyncio.Event()

            async def mirror() -> None:
                while not self._stop.is_set():
                    self._events.value, self._resyncs.value = received.events, received.resyncs
                    await asyncio.sleep(0.1)
                stop.set()

            watcher = asyncio.ensure_future(mirror())
            await asyncio.gather(*(count_events(ws_url, received, stop) for _ in range(clients)))
            await watcher

        asyncio.run(main())
        self._events.value, self._resyncs.value = received.events, received.resyncs
        self._closes.put(received.closes)

    @property
    def events(self) -> int:
        return self._events.value

    def start(self) -> Subscribers:
        self._process.start()
        time.sleep(1)  # connected before the load starts
        return self

    def stop(self, expected: int, patience: float = 10.0) -> tuple[Received, float]:
        """Wait until `expected` events arrived (or none for `patience` s), then stop.
        Returns what was received and how long the drain took (the subscriber's lag)."""
        started = time.monotonic()
        last, last_change = -1, started
        while self.events < expected and time.monotonic() - last_change < patience:
            if self.events != last:
                last, last_change = self.events, time.monotonic()
            time.sleep(0.1)
        drained = time.monotonic() - started
        self._stop.set()
        received = Received()
        try:
            received.closes = self._closes.get(timeout=10)
        except queue.Empty:
            received.closes = ["subscriber process did not report"]
        self._process.join(timeout=10)
        received.events, received.resyncs = self._events.value, self._resyncs.value
        return received, drained
