"""The one-command run: embedded Redis, daphne, Celery worker and beat; Ctrl-C or SIGTERM stops
all of them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from siem.management.commands.runsiem import free_port

BASE_DIR = Path(__file__).resolve().parent.parent


@pytest.mark.e2e
@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "kill"])
def test_runsiem_starts_everything_with_embedded_redis_and_stops_cleanly(tmp_path, stop_signal):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(
        SIEM_DATA_DIR=str(tmp_path),
        SIEM_IGNORE_DOTENV="1",
        DEBUG="false",
        SECRET_KEY="runsiem-test-secret-key",
        PYTHONUNBUFFERED="1",
    )
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "runsiem", "--port", str(port)],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 90
        while not any("Started beat" in line for line in lines):
            assert proc.poll() is None, "".join(lines)
            assert time.monotonic() < deadline, "".join(lines)
            time.sleep(0.2)
        output = "".join(lines)
        assert "Redis: embedded redis-server on 127.0.0.1:" in output
        assert "Created the DEMO user 'admin' / 'Admin123!'" in output
        assert (tmp_path / "embedded-redis.url").read_text().startswith("redis://:")

        with urllib.request.urlopen(
            f"http://127.0.0.1:{port}/admin/login/", timeout=10
        ) as response:
            assert response.status == 200

        names = " ".join(" ".join(c.cmdline()) for c in psutil.Process(proc.pid).children())
        for expected in ("redis-server", "daphne", "worker", "beat"):
            assert expected in names, names
        children = psutil.Process(proc.pid).children(recursive=True)
    finally:
        proc.send_signal(stop_signal)
        try:
            code = proc.wait(timeout=60)
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
    reader.join(timeout=5)
    gone, alive = psutil.wait_procs(children, timeout=10)
    for orphan in alive:  # never leave a server behind, even when the test fails
        orphan.kill()
    assert code == 0, "".join(lines)
    assert "Stopped." in "".join(lines)
    assert alive == []
    assert not (tmp_path / "embedded-redis.url").exists()
