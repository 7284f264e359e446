"""Fuzz the REST API with schemathesis, from its own OpenAPI schema, against a live daphne.

    .venv/bin/python bench/fuzz_api.py [--max-examples 25] [--seed 13] [--database-url URL]

Starts one daphne (tests/browser_support.LiveServer: a file SQLite database, real Redis under
its own key prefix, or --database-url), creates the named users and an enrolled agent, logs in
as `admin`, and runs `schemathesis run` with that Bearer token and the check that matters
here: `not_a_server_error` (no 5xx). The login throttle and enrollment limits are raised so
that the fuzzer is not stopped by them. Exit status: schemathesis's. Record runs in
docs/security.md ("Fuzzing").
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.browser_support import LiveServer  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--max-examples", type=int, default=25)
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--database-url", default="")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    # SIGTERM ends the run like Ctrl-C: the server below is stopped and its files removed.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    with socket.socket() as sock:  # a port of the OS's choosing: other runs use 8600-8699
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = LiveServer(port=port)
    server.env.update(
        {
            "LOGIN_FAILURE_LIMIT": "100000",
            "ENROLLMENT_FAILURE_LIMIT": "100000",
            "AGENT_ENROLLMENT_KEY": "fuzz-enrollment-key-" + "f" * 24,
        }
    )
    if args.database_url:
        server.env["DATABASE_URL"] = args.database_url
    try:
        server.prepare()
        server.start()
        server.wait_ready(timeout=120)
        token = server.login("admin")
        command = [
            str(Path(sys.executable).parent / "schemathesis"),
            "run",
            f"{server.url}/api/v1/schema/?format=json",
            "--url",
            server.url,  # the schema's paths start with /api/v1
            # Logging out would revoke the fuzzer's own token half-way through the run.
            "--exclude-path-regex",
            "auth/logout",
            "-H",
            f"Authorization: Bearer {token}",
            "--checks",
            "not_a_server_error",
            "--max-examples",
            str(args.max_examples),
            "--seed",
            str(args.seed),
            "--workers",
            str(args.workers),
            "--request-timeout",
            "60",
            "--suppress-health-check",
            "all",
        ]
        print(
            "$",
            " ".join(c if "Bearer" not in c else "'Authorization: Bearer …'" for c in command),
        )
        print(f"load average: {os.getloadavg()}")
        done = subprocess.run(command, cwd=ROOT, check=False)  # noqa: S603
        print(f"load average: {os.getloadavg()}")
        log = server.log_path.read_text(errors="replace")
        errors = [line for line in log.splitlines() if "Internal Server Error" in line]
        print(f"daphne log: {len(errors)} 'Internal Server Error' line(s)")
        for line in errors[:20]:
            print("  ", line)
        return done.returncode
    finally:
        server.cleanup()


if __name__ == "__main__":
    sys.exit(main())
