"""Real server processes for the end-to-end WebSocket tests: a shared SQLite file, real Redis
under a private key prefix, and several `daphne` processes on loopback ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent

USERS_SCRIPT = """
from django.contrib.auth.models import Group, User
admin = User.objects.create_superuser("admin", "admin@example.test", "{password}")
admin.groups.add(Group.objects.get(name="admin"))
analyst = User.objects.create_user("analyst", "analyst@example.test", "{password}")
analyst.groups.add(Group.objects.get(name="analyst"))
"""


class Cluster:
    """A database, a Redis namespace and N daphne processes sharing them."""

    def __init__(self, workdir: Path, ports: list[int], extra_env: dict[str, str] | None = None):
        self.workdir = workdir
        self.ports = ports
        self.prefix = f"rt-e2e-{uuid.uuid4().hex[:8]}"
        self.env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("SIEM_TEST_DB_NAME", "PYTEST_", "DJANGO_SETTINGS_MODULE"))
        }
        self.env.update(
            {
                "DJANGO_SETTINGS_MODULE": "siem.settings",
                "SIEM_IGNORE_DOTENV": "1",
                "SIEM_DATA_DIR": str(workdir),
                "DATABASE_URL": f"sqlite:///{workdir / 'siem.sqlite3'}",
                "REDIS_URL": os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
                "REDIS_KEY_PREFIX": self.prefix,
                "SECRET_KEY": "e2e-only-secret-key-not-for-production",
                "DEBUG": "false",
                "ALLOWED_HOSTS": "127.0.0.1,localhost",
                "LOG_LEVEL": "INFO",
                "PYTHONUNBUFFERED": "1",
                **(extra_env or {}),
            }
        )
        self.processes: dict[int, subprocess.Popen] = {}

    def manage(self, *args: str) -> None:
        subprocess.run(
            [str(BIN / "python"), "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            check=True,
            capture_output=True,
            timeout=180,
        )

    def prepare(self, password: str) -> None:
        self.manage("migrate", "--noinput")
        self.manage("shell", "-c", USERS_SCRIPT.format(password=password))

    def log_path(self, port: int) -> Path:
        return self.workdir / f"daphne-{port}.log"

    def start(self, port: int) -> None:
        log = open(self.log_path(port), "ab")  # noqa: SIM115 (lives as long as the process)
        self.processes[port] = subprocess.Popen(
            [str(BIN / "daphne"), "-b", "127.0.0.1", "-p", str(port), "siem.asgi:application"],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, port: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.processes[port].poll() is not None:
                raise RuntimeError(f"daphne on {port} exited:\n{self.log(port)}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    pass
                httpx.get(f"http://127.0.0.1:{port}/api/v1/auth/me", timeout=5)
                return
            except (OSError, httpx.HTTPError):
                time.sleep(0.2)
        raise RuntimeError(f"daphne on {port} not ready:\n{self.log(port)}")

    def start_all(self) -> None:
        for port in self.ports:
            self.start(port)
        for port in self.ports:
            self.wait_ready(port)

    def kill(self, port: int) -> None:
        """SIGKILL: the process dies without closing anything (no presence clean-up)."""
        process = self.processes.pop(port)
        process.kill()
        process.wait(timeout=10)

    def stop_all(self) -> None:
        for port, process in list(self.processes.items()):
            process.send_signal(signal.SIGINT)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            del self.processes[port]

    def log(self, port: int) -> str:
        path = self.log_path(port)
        return path.read_text(errors="replace") if path.exists() else ""

    def pids(self) -> list[int]:
        return [p.pid for p in self.processes.values()]
