"""Pick the provider named by settings.AI_PROVIDER."""

from __future__ import annotations

from django.conf import settings

from events.ai.base import Provider


def get_provider(name: str | None = None) -> Provider:
    name = (name or settings.AI_PROVIDER).strip().lower()
    if name == "builtin":
        from events.ai.builtin import BuiltinAnalyzer

        return BuiltinAnalyzer()
    from events.ai.llm import LLMProvider

    return LLMProvider.from_settings(name)
