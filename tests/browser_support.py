"""A real server for the browser tests: daphne on a file SQLite database and real Redis.

The server runs in its own process with its own environment (database file, Redis key
prefix), exactly as in production; the test process talks to it over HTTP like any client and
runs `manage.py shell` in the same environment for what only the server side can do (set up
users, broadcast statistics). Chromium is Debian's (`apt-get install chromium`).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import pytest
import redis

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless=new",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "Passw0rd!x"
# The browser tests' own port range and Redis database (shared machine, see the team notes).
PORT_RANGE = range(8600, 8700)
REDIS_URL = os.environ.get("SIEM_BROWSER_REDIS_URL", "redis://127.0.0.1:6379/6")

SETUP_USERS = f"""
from django.contrib.auth.models import Group, User
# The role groups carry no Django model permissions, so the admin pages need a superuser.
for name, role, superuser in [("admin", "admin", True), ("analyst", "analyst", False),
                              ("viewer", "viewer", False)]:
    user, _ = User.objects.get_or_create(
        username=name, defaults={{"is_staff": superuser, "is_superuser": superuser}}
    )
    user.set_password({PASSWORD!r})
    user.save()
    user.groups.add(Group.objects.get(name=role))
"""


def free_port() -> int:
    # In a random order: two test runs on one machine must not both try the lowest port first.
    for port in random.sample(PORT_RANGE, len(PORT_RANGE)):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 8600-8699")


class LiveServer:
    """One daphne process; `restart()` kills it and starts a new one on the same port."""

    def __init__(self, workdir: Path | None = None, port: int | None = None) -> None:
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix="ui-browser-"))
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.prefix = f"ui-{uuid.uuid4().hex[:8]}"
        self.log_path = self.workdir / "daphne.log"
        self.process: subprocess.Popen | None = None
        self.env = {
            **os.environ,
            "SIEM_IGNORE_DOTENV": "1",
            "DJANGO_SETTINGS_MODULE": "siem.settings",
            "DEBUG": "false",
            "SECRET_KEY": "browser-test-secret-key-not-for-production",
            "DATABASE_URL": f"sqlite:///{self.workdir / 'siem.sqlite3'}",
            "SIEM_DATA_DIR": str(self.workdir),
            "REDIS_URL": REDIS_URL,
            "REDIS_KEY_PREFIX": self.prefix,
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "LOG_LEVEL": "INFO",
        }

    # --- server-side commands --------------------------------------------------------------
    def manage(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if done.returncode != 0:
            raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout}\n{done.stderr}")
        return done.stdout

    def shell(self, code: str) -> str:
        return self.manage("shell", "--no-imports", "-c", code)

    def prepare(self) -> None:
        self.manage("migrate", "--noinput")
        self.shell(SETUP_USERS)

    # --- process -----------------------------------------------------------------------------
    def start(self) -> None:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [
                str(Path(sys.executable).parent / "daphne"),
                "-b",
                "127.0.0.1",
                "-p",
                str(self.port),
                "siem.asgi:application",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        self.wait_ready()

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daphne exited:\n{self.log_path.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/dashboard/", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"daphne not ready:\n{self.log_path.read_text()[-3000:]}")

    def kill(self) -> None:
        """Hard stop (SIGKILL), like a crashed server: sockets drop without a close frame."""
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def restart(self) -> None:
        self.kill()
        self.start()

    def cleanup(self) -> None:
        """Stop, then remove this server's files and its own Redis keys (never anyone else's)."""
        self.stop()
        client = redis.Redis.from_url(REDIS_URL)
        try:
            keys = list(client.scan_iter(match=f"{self.prefix}:*", count=1000))
            for start in range(0, len(keys), 500):
                client.delete(*keys[start : start + 500])
        finally:
            client.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    # --- the REST API, as a client -------------------------------------------------------------
    def login(self, username: str) -> str:
        answer = httpx.post(
            f"{self.url}/api/v1/auth/login",
            json={"username": username, "password": PASSWORD},
            timeout=10,
        )
        answer.raise_for_status()
        return answer.json()["access_token"]

    def api(self, method: str, path: str, token: str, **kwargs) -> httpx.Response:
        kwargs.setdefault("timeout", 10)
        return httpx.request(
            method,
            f"{self.url}/api/v1{path}",
            headers={"Authorization": f"Bearer {token}"},
            **kwargs,
        )


# --- fixtures shared by the browser test modules (import the ones a module uses) --------------
# A module's `VIEWPORT` sets its pages' size; the default is the smallest screen the analyst
# pages are made for.
DEFAULT_VIEWPORT = {"width": 1366, "height": 768}


@pytest.fixture(scope="module")
def server():
    """A live server of the module's own (users created, no data)."""
    srv = LiveServer()
    srv.prepare()
    srv.start()
    yield srv
    srv.cleanup()


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def open_page(browser, request):
    """Pages in separate contexts (separate sessionStorage, like two analysts' browsers); the
    test fails on any JavaScript error or anything our Content-Security-Policy had to block."""
    viewport = getattr(request.module, "VIEWPORT", DEFAULT_VIEWPORT)
    contexts, errors = [], []

    def make():
        context = browser.new_context(viewport=viewport)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "console",
            lambda msg: "Content Security Policy" in msg.text and errors.append(msg.text),
        )
        return page

    yield make
    for context in contexts:
        context.close()
    assert errors == [], f"JavaScript or CSP errors on the page: {errors}"
