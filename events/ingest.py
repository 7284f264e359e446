"""Normalize and validate incoming records before they are stored (agents and import_events).

`prepare(records)` turns each record, whatever shape it arrived in (see `events.normalize`), into
validated fields for `events.services.create_events`, and reports every bad record by its index
with field-level reasons. Callers decide what a bad record means: the agent endpoint refuses the
whole batch, the import command skips the record and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rest_framework.exceptions import ValidationError

from events.api.serializers import EventInputSerializer
from events.normalize import normalize_record


@dataclass
class Prepared:
    items: list[dict[str, Any]] = field(default_factory=list)
    # (index in the input, field errors) for every record that failed.
    errors: list[tuple[int, Any]] = field(default_factory=list)


def prepare(records: list[Any], *, default_computer: str | None = None) -> Prepared:
    """Normalize and validate `records`; `computer` defaults to `default_computer` if given."""
    validator = EventInputSerializer()
    prepared = Prepared()
    for index, record in enumerate(records):
        if not isinstance(record, dict):
            prepared.errors.append(
                (index, {"non_field_errors": [f"Expected a JSON object, got {_kind(record)}."]})
            )
            continue
        item = normalize_record(record)
        if default_computer and not item.get("computer"):
            item["computer"] = default_computer
        try:
            prepared.items.append(validator.run_validation(item))
        except ValidationError as exc:
            prepared.errors.append((index, exc.detail))
    return prepared


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
