#!/usr/bin/env python3
"""Reference SIEM agent for Windows: tails the Security event log and ships it to the SIEM.

Standard library only (Python 3.8+), so it runs wherever Python is installed. On Windows it reads
the log with `wevtutil qe Security /f:xml` (run it as Administrator, or as a service account in
the "Event Log Readers" group); anywhere, `--from-jsonl FILE` ships records from a JSON Lines
file instead (for testing, or to replay an export).

Server contract (docs/agents.md; tested in tests/test_agents_reference_agent.py):
1. POST /api/v1/agents/register/ {"enrollment_key", "hostname", "os", "version"}
   → 201 {"agent_id", "agent_token", "batch_max", "heartbeat_interval_sec", ...}.
   The token is saved in the state file; the enrollment key is not.
2. POST /api/v1/agents/heartbeat/ with `Authorization: Agent <token>` every interval.
3. POST /api/v1/agents/events/ with a JSON array of records, each carrying its EventRecordID.
   201/200 → the bookmark (last shipped EventRecordID) advances and is saved. A network error,
   a 5xx or a 429 → the very same batch is sent again with backoff: the server stores a record
   id once per agent, so a batch that was stored but whose answer was lost is not duplicated.
   400 → the batch is set aside in a dead-letter file and the bookmark advances (the server
   would refuse it forever). 401 → stop: the token was revoked or is unknown.

    python siem_agent.py --url https://siem.example.org --enrollment-key KEY
    python siem_agent.py --url http://127.0.0.1:8000 --enrollment-key KEY \\
        --from-jsonl security.jsonl --once
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import random
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from pathlib import Path
from typing import Any

VERSION = "1.0.0"
NS = "{http://schemas.microsoft.com/win/2004/08/events/event}"
log = logging.getLogger("siem-agent")


class Revoked(Exception):
    """The server refuses our token (revoked or unknown): nothing more can be shipped."""


class Refused(Exception):
    """The server refused the request for good (4xx other than 401/429)."""


# --- state ---------------------------------------------------------------------------------------
def default_state_path() -> Path:
    base = os.environ.get("ProgramData") if os.name == "nt" else None
    root = Path(base) / "siem-agent" if base else Path.home() / ".siem-agent"
    return root / "state.json"


def load_state(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write atomically (a crash never leaves a half-written bookmark). The file holds the agent
    token: keep it readable by the agent's account only (docs/agents.md)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(state, indent=2), encoding="utf-8")
    if os.name != "nt":
        os.chmod(temporary, 0o600)
    os.replace(temporary, path)


# --- HTTP ----------------------------------------------------------------------------------------
class Server:
    def __init__(self, url: str, timeout: float = 30.0):
        if not url.startswith(("http://", "https://")):
            raise SystemExit(f"--url must be http:// or https://, got {url!r}")
        self.url = url.rstrip("/")
        self.timeout = timeout
        self.token = ""

    def post(self, path: str, body: Any, *, auth: bool = True) -> tuple[int, Any]:
        data = json.dumps(body).encode("utf-8")
        # The scheme was checked in __init__ (http or https only).
        request = urllib.request.Request(self.url + path, data=data, method="POST")  # noqa: S310
        request.add_header("Content-Type", "application/json")
        request.add_header("User-Agent", f"siem-agent/{VERSION}")
        if auth:
            request.add_header("Authorization", f"Agent {self.token}")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                return response.status, json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = {"detail": raw[:300].decode("utf-8", "replace")}
            return exc.code, payload


def with_retries(send, *, what: str, max_attempts: int, backoff_max: float = 60.0):
    """Call `send()` until it succeeds; retry network errors, 5xx and 429 with backoff."""
    attempt = 0
    while True:
        attempt += 1
        try:
            status, payload = send()
        except (OSError, urllib.error.URLError) as exc:  # connection refused, timeout, DNS
            status, payload = None, {"detail": str(exc)}
        if status is not None and status < 500 and status != 429:
            return status, payload
        if max_attempts and attempt >= max_attempts:
            raise ConnectionError(f"{what}: giving up after {attempt} attempts: {payload}")
        delay = min(backoff_max, 2 ** min(attempt, 6)) * (0.5 + random.random() / 2)  # noqa: S311
        log.warning("%s failed (%s %s); retrying in %.1f s", what, status, payload, delay)
        time.sleep(delay)


# --- event sources -------------------------------------------------------------------------------
def records_from_jsonl(path: Path, after_line: int) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) of a JSON Lines export, after the bookmarked line."""
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if number <= after_line or not line.strip():
                continue
            try:
                yield number, json.loads(line)
            except ValueError as exc:
                log.warning("%s:%d: not JSON, skipped (%s)", path, number, exc)


def wevtutil_batch(log_name: str, after: int, count: int) -> list[dict[str, Any]]:
    """The next `count` records of the log after record id `after`, oldest first."""
    query = f"*[System[(EventRecordID>{int(after)})]]"
    output = subprocess.run(
        ["wevtutil", "qe", log_name, f"/q:{query}", "/f:xml", f"/c:{int(count)}", "/rd:false"],
        capture_output=True,
        check=True,
        timeout=120,
    ).stdout.decode("utf-8", "replace")
    return parse_events_xml(output)


def latest_record_id(log_name: str) -> int:
    output = subprocess.run(
        ["wevtutil", "qe", log_name, "/f:xml", "/c:1", "/rd:true"],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode("utf-8", "replace")
    events = parse_events_xml(output)
    return int(events[0]["EventRecordID"]) if events else 0


def parse_events_xml(text: str) -> list[dict[str, Any]]:
    """wevtutil's <Event> elements (no common root) → flat records, in the same shape as the
    flat evtx JSON export: System fields, then every EventData/UserData value by its name."""
    if not text.strip():
        return []
    root = ET.fromstring(f"<Events>{text}</Events>")  # noqa: S314 (wevtutil output, local)
    return [flatten_event(event) for event in root.iter(f"{NS}Event")]


def _int(value: str | None) -> Any:
    if value is not None and value.strip().lstrip("-").isdigit():
        return int(value)
    return value


def flatten_event(event: ET.Element) -> dict[str, Any]:
    system = event.find(f"{NS}System")
    record: dict[str, Any] = {}

    def text(tag: str) -> str | None:
        node = system.find(f"{NS}{tag}") if system is not None else None
        return node.text if node is not None else None

    def attr(tag: str, name: str) -> str | None:
        node = system.find(f"{NS}{tag}") if system is not None else None
        return node.get(name) if node is not None else None

    record["EventID"] = _int(text("EventID"))
    record["Computer"] = text("Computer")
    record["Channel"] = text("Channel")
    record["Provider_Name"] = attr("Provider", "Name")
    record["Provider_Guid"] = attr("Provider", "Guid")
    record["TimeCreated"] = attr("TimeCreated", "SystemTime")
    record["EventRecordID"] = _int(text("EventRecordID"))
    for tag in ("Level", "Task", "Opcode", "Version"):
        record[tag] = _int(text(tag))
    record["Keywords"] = text("Keywords")
    record["ExecutionProcessID"] = _int(attr("Execution", "ProcessID"))
    record["ExecutionThreadID"] = _int(attr("Execution", "ThreadID"))
    if attr("Security", "UserID"):
        record["Security_UserID"] = attr("Security", "UserID")
    record = {key: value for key, value in record.items() if value is not None}
    data = event.find(f"{NS}EventData")
    if data is not None:
        for index, item in enumerate(data.findall(f"{NS}Data"), start=1):
            name = item.get("Name") or f"Data{index}"
            record[name if name not in record else f"EventData_{name}"] = item.text or ""
    user_data = event.find(f"{NS}UserData")
    if user_data is not None:
        for wrapper in user_data:
            for item in wrapper:
                name = item.tag.split("}", 1)[-1]
                record[name if name not in record else f"UserData_{name}"] = item.text or ""
    rendering = event.find(f"{NS}RenderingInfo/{NS}Message")
    if rendering is not None and rendering.text:
        record["Message"] = rendering.text
    return record


# --- the agent -----------------------------------------------------------------------------------
class Agent:
    def __init__(self, args: argparse.Namespace):
        self.args = args
        self.server = Server(args.url, timeout=args.timeout)
        self.state_path = Path(args.state)
        self.state = load_state(self.state_path)
        self.server.token = self.state.get("agent_token", "")
        self.batch_size = args.batch_size
        self.heartbeat_every = args.heartbeat_interval
        self.last_heartbeat = 0.0
        self.shipped = 0

    # 1. enrollment
    def enroll(self) -> None:
        if self.server.token and self.state.get("url") == self.server.url:
            return
        key = self.args.enrollment_key or os.environ.get("SIEM_ENROLLMENT_KEY", "")
        if not key:
            raise SystemExit("Not enrolled yet: give --enrollment-key (or SIEM_ENROLLMENT_KEY).")
        body = {
            "enrollment_key": key,
            "hostname": self.args.hostname,
            "os": f"{platform.system()} {platform.release()}".strip(),
            "version": VERSION,
        }
        status, payload = with_retries(
            lambda: self.server.post("/api/v1/agents/register/", body, auth=False),
            what="enrollment",
            max_attempts=self.args.max_attempts,
        )
        if status != 201:
            raise SystemExit(f"Enrollment refused ({status}): {payload.get('detail', payload)}")
        self.server.token = payload["agent_token"]
        self.state.update(
            agent_id=payload["agent_id"], agent_token=payload["agent_token"], url=self.server.url
        )
        self.batch_size = min(self.batch_size, int(payload.get("batch_max") or self.batch_size))
        self.heartbeat_every = min(
            self.heartbeat_every, float(payload.get("heartbeat_interval_sec") or 60)
        )
        save_state(self.state_path, self.state)
        log.info("Enrolled as agent %s (host %s)", payload["agent_id"], self.args.hostname)

    # 2. heartbeat
    def heartbeat(self, force: bool = False) -> None:
        if not force and time.monotonic() - self.last_heartbeat < self.heartbeat_every:
            return
        try:
            status, payload = self.server.post("/api/v1/agents/heartbeat/", {"version": VERSION})
        except OSError as exc:
            log.warning("heartbeat failed: %s", exc)
            return
        if status == 401:
            raise Revoked(payload.get("detail", "unauthorized"))
        self.last_heartbeat = time.monotonic()

    # 3. shipping
    def ship(self, batch: list[dict[str, Any]], position: dict[str, Any]) -> None:
        status, payload = with_retries(
            lambda: self.server.post("/api/v1/agents/events/", batch),
            what=f"batch of {len(batch)}",
            max_attempts=self.args.max_attempts,
        )
        if status == 401:
            raise Revoked(payload.get("detail", "unauthorized"))
        if status == 400:
            self.dead_letter(batch, payload)
        elif status not in (200, 201):
            raise Refused(f"{status}: {payload}")
        else:
            self.shipped += payload.get("created", 0)
            log.info(
                "shipped %d record(s): %s stored, %s already there",
                len(batch),
                payload.get("created"),
                payload.get("duplicates"),
            )
        # Only now, once the server has answered for this batch, does the bookmark move.
        self.state.update(position)
        save_state(self.state_path, self.state)

    def dead_letter(self, batch: list[dict[str, Any]], payload: Any) -> None:
        path = self.state_path.with_name("dead-letter.jsonl")
        with path.open("a", encoding="utf-8") as handle:
            for record in batch:
                handle.write(json.dumps(record) + "\n")
        log.error("server refused a batch (kept in %s): %s", path, payload)

    def batches(self) -> Iterator[tuple[list[dict[str, Any]], dict[str, Any]]]:
        """(batch, bookmark to save once the server has it): the last EventRecordID read from
        the log, or for a JSON Lines file its name and last line (ids need not be ordered)."""
        if self.args.from_jsonl:
            path = Path(self.args.from_jsonl)
            mark = self.state.get("jsonl_bookmark") or {}
            after = int(mark.get("line", 0)) if mark.get("file") == str(path.resolve()) else 0
            batch: list[dict[str, Any]] = []
            for number, record in records_from_jsonl(path, after):
                batch.append(record)
                if len(batch) >= self.batch_size:
                    yield batch, {"jsonl_bookmark": {"file": str(path.resolve()), "line": number}}
                    batch = []
            if batch:
                yield batch, {"jsonl_bookmark": {"file": str(path.resolve()), "line": number}}
            return
        bookmark = int(self.state.get("bookmark", 0))
        if "bookmark" not in self.state and self.args.start_at == "now":
            self.state["bookmark"] = bookmark = latest_record_id(self.args.log)
            save_state(self.state_path, self.state)
        while True:
            batch = wevtutil_batch(self.args.log, bookmark, self.batch_size)
            if not batch:
                return
            bookmark = max(int(r["EventRecordID"]) for r in batch)
            yield batch, {"bookmark": bookmark}

    def run(self) -> int:
        self.enroll()
        self.heartbeat(force=True)
        while True:
            for batch, position in self.batches():
                self.ship(batch, position)
                self.heartbeat()
            if self.args.once:
                log.info("done: %d new record(s) stored", self.shipped)
                return 0
            self.heartbeat()
            time.sleep(self.args.poll_interval)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Ship the Windows Security log (or a JSON Lines export) to the SIEM.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--url", required=True, help="SIEM base URL, e.g. https://siem.corp")
    parser.add_argument("--enrollment-key", default="", help="needed once, to enroll")
    parser.add_argument("--hostname", default=socket.getfqdn(), help="name to enroll under")
    parser.add_argument("--state", default=str(default_state_path()), help="state file")
    parser.add_argument("--log", default="Security", help="Windows event log to tail")
    parser.add_argument(
        "--start-at",
        choices=["now", "oldest"],
        default="now",
        help="on first start: ship only new events, or the whole log",
    )
    parser.add_argument("--from-jsonl", metavar="FILE", help="ship records from this file")
    parser.add_argument("--once", action="store_true", help="ship what is there, then exit")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--poll-interval", type=float, default=5.0, help="seconds")
    parser.add_argument("--heartbeat-interval", type=float, default=60.0, help="seconds")
    parser.add_argument("--timeout", type=float, default=30.0, help="HTTP timeout, seconds")
    parser.add_argument(
        "--max-attempts", type=int, default=0, help="per request; 0 = retry until it works"
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        return Agent(args).run()
    except Revoked as exc:
        log.error("The SIEM refuses this agent's token (%s); ask an administrator.", exc)
        return 3
    except (Refused, ConnectionError) as exc:
        log.error("%s", exc)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
