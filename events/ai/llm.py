"""DeepSeek, YandexGPT and any OpenAI-compatible endpoint, through the `openai` client.

One chat-completions request per batch. The client's own retries are off (`max_retries=0`):
the analyzer counts attempts per event in the database and backs off between runs, so a
retry survives a worker restart and an outage is visible on the events themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import openai
from django.conf import settings

from events.ai.base import Analysis, ProviderError
from events.ai.parsing import parse_analyses
from events.ai.prompt import SYSTEM_PROMPT, Masker, user_prompt

logger = logging.getLogger(__name__)

DEEPSEEK_BASE_URL = "https://api.deepseek.com"
DEEPSEEK_MODEL = "deepseek-chat"
YANDEX_BASE_URL = "https://llm.api.cloud.yandex.net/v1"
YANDEX_MODEL = "yandexgpt/latest"
OPENAI_BASE_URL = "https://api.openai.com/v1"
OPENAI_MODEL = "gpt-4o-mini"
# Tokens the answer may use per event (score, category, a sentence or two) plus the envelope.
_TOKENS_PER_EVENT = 200


@dataclass(frozen=True)
class LLMConfig:
    provider: str
    base_url: str
    api_key: str
    model: str
    timeout: float
    folder_id: str = ""
    mask: bool = False
    json_mode: bool = False


def config_from_settings(name: str) -> LLMConfig:
    """Per-provider defaults, overridden by AI_BASE_URL / AI_MODEL; raises ProviderError."""
    base_url, model, api_key = settings.AI_BASE_URL.strip(), settings.AI_MODEL.strip(), ""
    api_key = settings.AI_API_KEY.strip()
    folder = settings.AI_FOLDER_ID.strip()
    common = {"timeout": float(settings.AI_TIMEOUT_SEC), "mask": settings.AI_MASK_SENSITIVE}
    if name == "deepseek":
        if not api_key:
            raise ProviderError("AI_API_KEY is not set (DeepSeek needs an API key)")
        return LLMConfig(
            provider=name,
            base_url=base_url or DEEPSEEK_BASE_URL,
            api_key=api_key,
            model=model or DEEPSEEK_MODEL,
            json_mode=True,  # DeepSeek documents response_format={"type": "json_object"}
            **common,
        )
    if name == "yandexgpt":
        if not api_key:
            raise ProviderError("AI_API_KEY is not set (YandexGPT needs an API key)")
        model = model or YANDEX_MODEL
        if not model.startswith("gpt://"):
            if not folder:
                raise ProviderError(
                    "AI_FOLDER_ID is not set (YandexGPT model URIs are gpt://<folder>/<model>)"
                )
            model = f"gpt://{folder}/{model}"
        elif not folder:
            folder = model.removeprefix("gpt://").split("/", 1)[0]
        return LLMConfig(
            provider=name,
            base_url=base_url or YANDEX_BASE_URL,
            api_key=api_key,
            model=model,
            folder_id=folder,
            **common,
        )
    if name == "openai":
        # Local servers (Ollama, vLLM, LM Studio) accept any key; the client insists on one.
        return LLMConfig(
            provider=name,
            base_url=base_url or OPENAI_BASE_URL,
            api_key=api_key or "not-needed",
            model=model or OPENAI_MODEL,
            **common,
        )
    raise ProviderError(f"unknown AI provider {name!r}")


class LLMProvider:
    """A chat-completions provider; `name` is what is stored in SecurityEvent.ai_provider."""

    def __init__(self, config: LLMConfig):
        self.config = config
        self.name = config.provider
        headers = {"x-folder-id": config.folder_id} if config.folder_id else None
        self._client = openai.OpenAI(
            api_key=config.api_key,
            base_url=config.base_url,
            timeout=config.timeout,
            max_retries=0,
            # Yandex AI Studio reads the folder from the OpenAI-Project header (and x-folder-id).
            project=config.folder_id or None,
            default_headers=headers,
        )

    @classmethod
    def from_settings(cls, name: str) -> LLMProvider:
        return cls(config_from_settings(name))

    def describe(self) -> str:
        return f"{self.name} (model {self.config.model} at {self.config.base_url})"

    def analyze(self, events: Sequence) -> dict[int, Analysis]:
        if not events:
            return {}
        masker = Masker(self.config.mask)
        content = self._complete(user_prompt(events, masker), len(events))
        verdicts = parse_analyses(content, [event.event_id for event in events])
        return {
            event_id: Analysis(
                score=verdict.score,
                category=verdict.category,
                description=masker.unmask(verdict.description),
            )
            for event_id, verdict in verdicts.items()
        }

    def _complete(self, prompt: str, count: int) -> str | None:
        extra = {"response_format": {"type": "json_object"}} if self.config.json_mode else {}
        try:
            response = self._client.chat.completions.create(
                model=self.config.model,
                messages=[
                    {"role": "system", "content": SYSTEM_PROMPT},
                    {"role": "user", "content": prompt},
                ],
                temperature=0,
                max_tokens=_TOKENS_PER_EVENT * count + 200,
                **extra,
            )
        except openai.APITimeoutError:
            raise ProviderError(
                f"{self.name}: no answer within {self.config.timeout:g} s (AI_TIMEOUT_SEC)"
            ) from None
        except openai.APIConnectionError as exc:
            raise ProviderError(
                f"{self.name}: cannot connect to {self.config.base_url} ({exc.__cause__ or exc})"
            ) from None
        except openai.APIStatusError as exc:
            raise ProviderError(
                f"{self.name}: HTTP {exc.status_code} from {self.config.base_url}: "
                f"{_short(exc.message)}"
            ) from None
        except openai.OpenAIError as exc:
            raise ProviderError(f"{self.name}: {_short(str(exc))}") from None
        choices = getattr(response, "choices", None) or []
        if not choices or choices[0].message is None:
            raise ProviderError(f"{self.name}: the answer has no choices")
        return choices[0].message.content


def _short(text: str, limit: int = 300) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[:limit] + "…"
