"""The provider interface and the verdict it returns."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

SCORE_MIN, SCORE_MAX = 0, 100
CATEGORY_MAX = 64
DESCRIPTION_MAX = 2000


@dataclass(frozen=True)
class Analysis:
    """One event's verdict: a risk score 0–100, a one-word category and a readable description."""

    score: int
    category: str
    description: str


class ProviderError(Exception):
    """The provider could not analyze the batch; the message says why (no secrets in it)."""


class Provider(Protocol):
    name: str

    def analyze(self, events: Sequence) -> dict[int, Analysis]:
        """Analyze a batch of SecurityEvent rows; return verdicts keyed by event_id."""
        ...
