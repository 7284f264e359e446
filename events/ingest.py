"""Normalize and validate incoming records before they are stored (agents and import_events).

`prepare(records)` turns each record, whatever shape it arrived in (see `events.normalize`), into
validated fields for `events.services.create_events`, and reports every bad record by its index
with field-level reasons. Callers decide what a bad record means: the agent endpoint refuses the
whole batch, the import command skips the record and says so.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from rest_framework.exceptions import ValidationError

from events.api.serializers import EventInputSerializer
from events.normalize import normalize_record

INT32_MAX = 2**31 - 1
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
# (field, max length or None, trimmed and non-blank) for the text fields of EventInputSerializer.
_TEXT_FIELDS = (
    ("computer", 255, True),
    ("message", None, False),
    ("source_type", 100, True),
)
_OPTIONAL_TEXT_FIELDS = (("user_name", 255), ("source_ip", 64))


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
        valid = fast_validate(item)
        if valid is not None:
            prepared.items.append(valid)
            continue
        try:  # the serializer is the authority, and gives the field-level reasons
            prepared.items.append(validator.run_validation(item))
        except ValidationError as exc:
            prepared.errors.append((index, exc.detail))
    return prepared


def fast_validate(item: dict[str, Any]) -> dict[str, Any] | None:
    """What `EventInputSerializer` would return for `item`, if the item is plainly valid; None
    when it is not, or not plainly so (the caller then asks the serializer, for the reasons).

    The serializer costs ~130 µs per event on this machine, most of an agent batch's CPU time;
    these checks cost a few. tests/test_ingest_fast_validation.py holds the two to the same
    answers on real records and on every kind of bad value.
    """
    out: dict[str, Any] = {}
    for name, max_length, trimmed in _TEXT_FIELDS:
        value = _text(item.get(name), max_length, trim=trimmed, blank=not trimmed)
        if value is None:
            return None
        out[name] = value
    for name, max_length in _OPTIONAL_TEXT_FIELDS:
        if name in item:
            value = _text(item[name], max_length, trim=True, blank=True)
            if value is None:
                return None
            out[name] = value
    code, severity = item.get("event_code"), item.get("severity")
    if type(code) is not int or not 0 <= code <= INT32_MAX:
        return None
    if type(severity) is not int or not 1 <= severity <= 5:
        return None
    out["event_code"], out["severity"] = code, severity
    if "timestamp" in item:
        stamp = item["timestamp"]
        if type(stamp) is not datetime or stamp.tzinfo is None:
            return None
        try:
            out["timestamp"] = stamp.astimezone(UTC)
        except OverflowError:
            return None
    if "raw" in item:
        raw = item["raw"]
        if type(raw) is not dict or _has_nul(raw):
            return None
        out["raw"] = raw
    if "agent_record_id" in item:
        record_id = item["agent_record_id"]
        if record_id is not None and (
            type(record_id) is not int or not INT64_MIN <= record_id <= INT64_MAX
        ):
            return None
        out["agent_record_id"] = record_id
    return out


def _text(value: Any, max_length: int | None, trim: bool, blank: bool = False) -> str | None:
    if type(value) is not str:
        return None
    if trim:
        value = value.strip()
    if (not value and not blank) or (max_length is not None and len(value) > max_length):
        return None
    if "\x00" in value or not _encodable(value):
        return None
    return value


def _encodable(value: str) -> bool:
    """False for lone surrogates ("\ud800" from JSON), which the serializer refuses."""
    if value.isascii():
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _has_nul(value: Any) -> bool:
    """NUL characters anywhere in a JSON value (PostgreSQL text and jsonb cannot store them)."""
    if type(value) is str:
        return "\x00" in value
    if type(value) is dict:
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if type(value) is list:
        return any(_has_nul(v) for v in value)
    return False


def _kind(value: Any) -> str:
    return {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number"
    )
