"""What the HTTP benchmarks share: daphne processes on one socket, readiness, clean-up.

Imported by bench/ingest_bulk.py and bench/agent_ingest.py (run as scripts, so this folder is
on sys.path).
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import threading
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
                elif '"type":"resync_required"' in head:
                    received.resyncs += 1
    except websockets.ConnectionClosed as exc:
        received.closes.append(exc.rcvd.code if exc.rcvd else None)


class SubscriberThread:
    """`count_events` clients on their own event loop, for the thread-based benchmarks."""

    def __init__(self, ws_url: str, clients: int = 1) -> None:
        self.received = Received()
        self._url, self._clients = ws_url, clients
        self._loop = asyncio.new_event_loop()
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._stop = asyncio.Event()
        tasks = [count_events(self._url, self.received, self._stop) for _ in range(self._clients)]
        self._loop.run_until_complete(asyncio.gather(*tasks))

    def start(self) -> SubscriberThread:
        self._thread.start()
        time.sleep(1)  # connected before the load starts
        return self

    def stop(self) -> Received:
        if self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=10)
        return self.received
