"""Read the verdicts out of what language models really answer.

The contract asks for `{"analyses":[{"event_id":..,"score":..,"category":..,"description":..}]}`.
Models wrap it in code fences, put prose around it, return a bare list, quote numbers, score
150 or -3, forget events or invent others. `parse_analyses` keeps every usable verdict for an
event that was asked about and raises `ProviderError` only when no JSON can be found at all.
"""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Iterable
from typing import Any

from events.ai.base import (
    CATEGORY_MAX,
    DESCRIPTION_MAX,
    SCORE_MAX,
    SCORE_MIN,
    Analysis,
    ProviderError,
)

logger = logging.getLogger(__name__)

_FENCE = re.compile(r"```[a-zA-Z0-9_-]*\s*\n?(.*?)```", re.DOTALL)
_LIST_KEYS = ("analyses", "analysis", "results", "events", "items", "data")


def parse_analyses(text: str | None, expected_ids: Iterable[int]) -> dict[int, Analysis]:
    """Verdicts by event id for the ids in `expected_ids`; extra ids and broken items are dropped.

    1. Collect JSON candidates: each fenced block, the whole text, then every `{`/`[` from which
       a JSON value decodes (prose before and after is skipped).
    2. The first candidate that yields a list of items wins.
    3. Each item is validated alone: a bad item is skipped, the others are kept.
    """
    expected = set(expected_ids)
    if not text or not text.strip():
        raise ProviderError("empty answer from the model")
    items = None
    for candidate in _json_candidates(text):
        items = _items(candidate)
        if items is not None:
            break
    if items is None:
        raise ProviderError(f"answer is not the expected JSON: {_snippet(text)!r}")
    verdicts: dict[int, Analysis] = {}
    for item in items:
        parsed = _item(item)
        if parsed is None:
            continue
        event_id, analysis = parsed
        if event_id not in expected:
            logger.info("AI answer mentions event %s, which was not asked about", event_id)
            continue
        verdicts.setdefault(event_id, analysis)
    return verdicts


def _snippet(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def _json_candidates(text: str):
    decoder = json.JSONDecoder()
    for block in _FENCE.findall(text):
        try:
            yield json.loads(block)
        except ValueError:
            pass
    try:
        yield json.loads(text)
    except ValueError:
        pass
    for match in re.finditer(r"[\[{]", text):
        try:
            value, _end = decoder.raw_decode(text, match.start())
        except ValueError:
            continue
        yield value


def _items(value: Any) -> list | None:
    if isinstance(value, list):
        return value if all(isinstance(item, dict) for item in value) else None
    if not isinstance(value, dict):
        return None
    for key in _LIST_KEYS:
        if isinstance(value.get(key), list):
            return value[key]
    if "event_id" in value:
        return [value]
    return None


def _item(item: Any) -> tuple[int, Analysis] | None:
    if not isinstance(item, dict):
        return None
    event_id = _integer(item.get("event_id", item.get("id")))
    score = _score(item.get("score", item.get("risk_score")))
    if event_id is None or score is None:
        return None
    return event_id, Analysis(
        score=score,
        category=normalize_category(item.get("category")),
        description=_text(item.get("description", item.get("reason")), DESCRIPTION_MAX),
    )


def _integer(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str) and value.strip().lstrip("#").isdigit():
        return int(value.strip().lstrip("#"))
    return None


def _score(value: Any) -> int | None:
    """A number (or numeric string, "85%", "85/100") clamped to 0–100; None if not a number."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, str):
        match = re.match(r"\s*(-?\d+(?:\.\d+)?)", value)
        if not match:
            return None
        value = float(match.group(1))
    if not isinstance(value, int | float) or math.isnan(value):
        return None
    if math.isinf(value):
        return SCORE_MAX if value > 0 else SCORE_MIN
    return max(SCORE_MIN, min(SCORE_MAX, round(value)))


def normalize_category(value: Any) -> str:
    """One lower-case word (underscores allowed), as in `brute_force`; `unknown` if none."""
    if not isinstance(value, str):
        return "unknown"
    word = re.sub(r"[^a-z0-9]+", "_", value.strip().lower()).strip("_")
    return word[:CATEGORY_MAX] or "unknown"


def _text(value: Any, limit: int) -> str:
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    text = " ".join(text.split())
    return text[:limit]
