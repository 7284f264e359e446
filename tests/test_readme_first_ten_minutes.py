"""README "First ten minutes", run as written: a live `runsiem` (embedded Redis, SQLite, its own
`.env` through SIEM_ENV_FILE, as `make run` would have written it), then the README's
second-terminal block through bash with nothing exported but the path to that `.env` — the
enrollment key, the data directory and the secret key all come from the file.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.browser_support import free_port

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[1]
# Variables of the test runner that a newcomer's shell does not have.
RUNNER_ONLY = ("SIEM_", "PYTEST_", "DJANGO_SETTINGS_MODULE", "DEBUG", "SECRET_KEY", "REDIS_")
RUNNER_ONLY_EXACT = {"DATABASE_URL", "AGENT_ENROLLMENT_KEY", "CELERY_TASK_ALWAYS_EAGER"}


def readme_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## First ten minutes", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def newcomer_env(env_file: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(RUNNER_ONLY) and k not in RUNNER_ONLY_EXACT
    }
    env["SIEM_ENV_FILE"] = str(env_file)  # stands for the project's own .env
    return env


@pytest.mark.timeout(900)  # several server processes start on a loaded machine
def test_the_readme_first_ten_minutes_work_as_written(tmp_path):
    first, second = readme_blocks()
    assert first.strip() == "make run"
    port = free_port()
    env_file = tmp_path / ".env"
    # What `make run`'s .env target writes — minus the enrollment key, which runsiem must add —
    # plus a data directory of this test's own instead of the project's data/.
    env_file.write_text(f"SECRET_KEY=readme-test-secret-key-0123456789\nSIEM_DATA_DIR={tmp_path}\n")
    log = open(tmp_path / "runsiem.log", "wb")  # noqa: SIM115 (closed below)
    server = subprocess.Popen(
        [sys.executable, "manage.py", "runsiem", "--port", str(port), "--no-worker"],
        cwd=ROOT,
        env=newcomer_env(env_file),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 180
        while True:
            assert server.poll() is None, (tmp_path / "runsiem.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, (tmp_path / "runsiem.log").read_text()
            time.sleep(0.5)
        started = (tmp_path / "runsiem.log").read_text()
        assert "AGENT_ENROLLMENT_KEY" in env_file.read_text()
        assert "simulate_agents" in started

        script = second.replace("SIEM=http://localhost:8000", f"SIEM=http://localhost:{port}")
        assert script != second  # the block still starts by naming the server
        result = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=ROOT,
            env=newcomer_env(env_file),
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
        assert '"event_id"' in result.stdout  # the posted event came back as created (201)
        alerts = result.stdout.rsplit('"count":', 1)[-1] if '"count":' in result.stdout else ""
        assert '"alert_id"' in result.stdout, result.stdout[-3000:]
        assert alerts.strip()[:1] not in {"", "0"}
    finally:
        os.killpg(server.pid, signal.SIGINT)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
