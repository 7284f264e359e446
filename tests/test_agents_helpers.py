"""Shared bits for the agent and ingestion tests (no tests here)."""

from __future__ import annotations

import json
from pathlib import Path

from rest_framework.test import APIClient

SHARED = Path(__file__).resolve().parents[1] / ".." / "shared"
WINDOWS_DATA = SHARED / "data" / "windows"
MESSAGE_SCHEMA = json.loads((SHARED / "spec" / "messages.schema.json").read_text())


def agent_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Agent {token}")
    return client


def jsonl_records(relative: str, limit: int | None = None) -> list[dict]:
    """Records of one of the shared JSON Lines files (read at test time, never copied)."""
    records = []
    with (WINDOWS_DATA / relative).open(encoding="utf-8") as handle:
        for line in handle:
            records.append(json.loads(line))
            if limit is not None and len(records) >= limit:
                break
    return records
