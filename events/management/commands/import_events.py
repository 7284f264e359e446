"""`manage.py import_events FILE [FILE ...]`: load Windows events from JSON Lines, JSON or EVTX.

Every record goes through the same normalization and validation as the agent endpoint
(`events.ingest.prepare`) and is stored with `events.services.create_events`, so imported events
are broadcast and analysed like shipped ones. A bad line is reported with its line number and
skipped; the import carries on.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from tqdm import tqdm

from agents.models import Agent
from events.ingest import prepare
from events.services import create_events

DEFAULT_BATCH = 500
SHOWN_ERRORS = 100
# A parser that fails on every record would otherwise never end.
MAX_EVTX_FAILURES = 1000


@dataclass
class Tally:
    read: int = 0
    stored: int = 0
    duplicates: int = 0
    skipped: int = 0

    def add(self, other: Tally) -> None:
        self.read += other.read
        self.stored += other.stored
        self.duplicates += other.duplicates
        self.skipped += other.skipped


class Command(BaseCommand):
    help = (
        "Import security events from files: JSON Lines (.jsonl/.ndjson, one record a line), "
        "JSON (.json: an array of records or one record, e.g. Get-WinEvent | ConvertTo-Json) "
        "or Windows event logs (.evtx). Records may be our flat event fields or Windows' own "
        "shapes (flat evtx JSON, Get-WinEvent, nested Event.System/EventData, Winlogbeat). "
        "Bad records are reported with their line (or record) number and skipped."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("files", nargs="+", metavar="FILE", help=".jsonl, .json or .evtx")
        parser.add_argument(
            "--batch-size",
            type=int,
            default=DEFAULT_BATCH,
            help=f"events stored per transaction (default {DEFAULT_BATCH})",
        )
        parser.add_argument(
            "--computer",
            default="",
            help="computer name for records that carry none (default: such records are bad)",
        )
        parser.add_argument(
            "--agent",
            metavar="AGENT_ID",
            help="attribute the events to this enrolled agent; its record ids then make a "
            "re-import store nothing twice (without it, importing a file twice stores it twice)",
        )
        parser.add_argument(
            "--format",
            choices=["auto", "jsonl", "json", "evtx"],
            default="auto",
            help="file format (default: by extension; .evtx, .json, anything else JSON Lines)",
        )
        parser.add_argument(
            "--no-progress", action="store_true", help="no progress bar (e.g. in cron jobs)"
        )

    def handle(self, *args, **options) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1")
        agent = self._agent(options["agent"])
        paths = [Path(name) for name in options["files"]]
        for path in paths:
            if not path.is_file():
                raise CommandError(f"{path}: no such file")
        total = Tally()
        self._shown = 0
        for path in paths:
            tally = self._import(path, agent=agent, options=options)
            total.add(tally)
            self.stdout.write(
                f"{path}: {tally.read} read, {tally.stored} stored, "
                f"{tally.duplicates} duplicates, {tally.skipped} skipped"
            )
        if len(paths) > 1:
            self.stdout.write(
                f"Total: {total.read} read, {total.stored} stored, "
                f"{total.duplicates} duplicates, {total.skipped} skipped"
            )
        if self._shown > SHOWN_ERRORS:
            self.stderr.write(
                f"... {self._shown - SHOWN_ERRORS} more bad records were skipped (not shown)."
            )
        style = self.style.WARNING if total.skipped else self.style.SUCCESS
        self.stdout.write(style(f"Imported {total.stored} event(s)."))

    def _agent(self, agent_id: str | None) -> Agent | None:
        if not agent_id:
            return None
        try:
            return Agent.objects.get(agent_id=uuid.UUID(agent_id))
        except (ValueError, Agent.DoesNotExist):
            raise CommandError(f"--agent {agent_id}: no such agent") from None

    # --- one file -------------------------------------------------------------------------------
    def _import(self, path: Path, *, agent: Agent | None, options: dict[str, Any]) -> Tally:
        kind = options["format"]
        if kind == "auto":
            suffix = path.suffix.lower()
            kind = {".evtx": "evtx", ".json": "json"}.get(suffix, "jsonl")
        reader = {"jsonl": _jsonl, "json": _json, "evtx": _evtx}[kind]
        unit = "line" if kind == "jsonl" else "record"
        tally = Tally()
        batch: list[tuple[int, Any, str | None]] = []
        progress = tqdm(
            desc=path.name,
            unit=" events",
            disable=options["no_progress"],
            file=sys.stderr,
            dynamic_ncols=True,
        )
        with progress:
            for number, record, problem in reader(path):
                tally.read += 1
                progress.update(1)
                batch.append((number, record, problem))
                if len(batch) >= options["batch_size"]:
                    self._store(path, unit, batch, tally, agent, options["computer"])
                    batch = []
            if batch:
                self._store(path, unit, batch, tally, agent, options["computer"])
        return tally

    def _store(self, path, unit, batch, tally: Tally, agent, computer: str) -> None:
        """Store the good records of `batch`; report the bad ones in line order."""
        problems = {number: problem for number, _record, problem in batch if problem}
        readable = [(number, record) for number, record, problem in batch if not problem]
        prepared = prepare([record for _number, record in readable], default_computer=computer)
        for index, errors in prepared.errors:
            problems[readable[index][0]] = _describe(errors)
        for number in sorted(problems):
            tally.skipped += 1
            self._report(path, unit, number, problems[number])
        if prepared.items:
            result = create_events(prepared.items, agent=agent)
            tally.stored += len(result.created)
            tally.duplicates += result.duplicates

    def _report(self, path: Path, unit: str, number: int, problem: str) -> None:
        self._shown += 1
        if self._shown <= SHOWN_ERRORS:
            self.stderr.write(f"{path}:{number}: skipped {unit}: {problem}")


# --- readers: (line or record number, record, problem or None) --------------------------------
def _jsonl(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    with path.open("rb") as handle:
        for number, raw_line in enumerate(handle, start=1):
            line = raw_line.strip()
            if not line:
                continue
            try:
                yield number, json.loads(line), None
            except (ValueError, UnicodeDecodeError) as exc:
                yield number, None, f"invalid JSON ({exc})"


def _json(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    try:
        # PowerShell 5.1 writes UTF-8 with a byte order mark; utf-8-sig reads both.
        document = json.loads(path.read_text(encoding="utf-8-sig"))
    except (ValueError, UnicodeDecodeError) as exc:
        yield 1, None, f"invalid JSON document ({exc})"
        return
    records = document if isinstance(document, list) else [document]
    for number, record in enumerate(records, start=1):
        yield number, record, None


def _evtx(path: Path) -> Iterator[tuple[int, Any, str | None]]:
    from evtx import PyEvtxParser

    try:
        records = PyEvtxParser(str(path)).records_json()
    except (OSError, RuntimeError, ValueError) as exc:
        yield 1, None, f"not a readable EVTX file ({exc})"
        return
    number = failures = 0
    while True:
        number += 1
        try:
            record = next(records)
        except StopIteration:
            return
        except (RuntimeError, ValueError, OSError) as exc:  # a damaged record: skip it
            failures += 1
            yield number, None, f"unreadable EVTX record ({exc})"
            if failures >= MAX_EVTX_FAILURES:
                yield number, None, f"giving up on this file after {failures} unreadable records"
                return
            continue
        try:
            yield number, json.loads(record["data"]), None
        except (ValueError, KeyError, TypeError) as exc:
            yield number, None, f"invalid EVTX record JSON ({exc})"


def _describe(errors: Any) -> str:
    if isinstance(errors, dict):
        parts = []
        for name, reasons in errors.items():
            text = "; ".join(str(r) for r in reasons) if isinstance(reasons, list) else reasons
            parts.append(f"{name}: {text}")
        return ", ".join(parts)
    return str(errors)
