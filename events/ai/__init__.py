"""AI analysis of security events: providers behind one small interface.

`get_provider()` returns the provider chosen by `AI_PROVIDER`; every provider has a `name` and
`analyze(events) -> dict[event_id, Analysis]`. A provider raises `ProviderError` when the whole
request failed (network, HTTP error, timeout, an answer that is not JSON); an event missing from
the returned dict simply was not analyzed this time.
"""

from __future__ import annotations

from events.ai.base import Analysis, Provider, ProviderError
from events.ai.registry import get_provider

__all__ = ["Analysis", "Provider", "ProviderError", "get_provider"]
