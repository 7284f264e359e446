"""Read recorded Windows logs (JSON Lines or EVTX) and feed them through ingestion or detection.

Used by `manage.py detect --replay FILE` and by the tests that replay the shared real data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from events.normalize import normalize_record


def read_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Records of a `.evtx` file (via the `evtx` parser) or of a JSON Lines file."""
    path = Path(path)
    if path.suffix.lower() == ".evtx":
        from evtx import PyEvtxParser

        for record in PyEvtxParser(str(path)).records_json():
            yield json.loads(record["data"])
        return
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise ValueError(f"{path}:{number}: expected a JSON object")
            yield record


def normalized(path: str | Path) -> list[dict[str, Any]]:
    return [normalize_record(record) for record in read_records(path)]


def ingest(path: str | Path, *, batch_size: int = 500) -> int:
    """Store a file's events through `create_events`, batch by batch, as an import would."""
    from events.services import create_events

    items = normalized(path)
    for start in range(0, len(items), batch_size):
        create_events(items[start : start + batch_size])
    return len(items)


def unsaved_events(items: list[dict[str, Any]], first_id: int = 1) -> list:
    """SecurityEvent objects for a dry run: never saved, numbered from `first_id`."""
    from events.models import SecurityEvent
    from events.services import EVENT_FIELDS

    events = []
    for number, item in enumerate(items, first_id):
        values = {name: item[name] for name in EVENT_FIELDS if item.get(name) is not None}
        event = SecurityEvent(**values)
        event.pk = number
        events.append(event)
    return events
