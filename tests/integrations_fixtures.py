"""Fixtures of the integrations tests (imported by their modules).

`task_queue` stands in for the Celery broker inside one test process: what the services queue
(`integrations.services._enqueue`) is recorded with its countdown, after a JSON round trip (the
broker's serializer), and `run()` executes it with Celery's own `Task.apply` in order, each
task's after-commit work included. Timers are not waited for; their countdowns are kept for
assertions. The real broker and worker are exercised by tests/test_integrations_e2e.py.
"""

from __future__ import annotations

import json

import pytest

from integrations import services
from integrations import tasks as integration_tasks
from tests.integration_helpers import Mailbox, Receiver

SECRET = "whsec-7b2f0e4c9a1d-never-shown"  # the webhook's secret (write-only)
BOT_TOKEN = "987654321:AAH-test-bot-token-never-logged-0123456789"


class TaskQueue:
    def __init__(self, capture) -> None:
        self.pending: list[tuple[str, list, float]] = []
        self.ran: list[tuple[str, list, float]] = []
        self._capture = capture

    def put(self, task: str, args: list, countdown: float = 0) -> None:
        self.pending.append((task, json.loads(json.dumps(args)), countdown))

    def names(self) -> list[str]:
        return [name for name, _args, _countdown in self.pending]

    def run(self, count: int | None = None) -> list:
        """Run queued tasks (and what they queue) until none is left, or only `count` of them."""
        results = []
        for _ in range(count or 1000):
            if not self.pending:
                return results
            item = self.pending.pop(0)
            self.ran.append(item)
            name, args, _countdown = item
            with self._capture(execute=True):
                results.append(getattr(integration_tasks, name).apply(args, throw=True).get())
        if count is None:
            raise AssertionError(f"still queued after 1000 tasks: {self.names()[:10]}")
        return results


@pytest.fixture
def task_queue(monkeypatch, django_capture_on_commit_callbacks):
    queue = TaskQueue(django_capture_on_commit_callbacks)
    monkeypatch.setattr(services, "_enqueue", queue.put)
    return queue


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def mailbox():
    box = Mailbox().start()
    yield box
    box.stop()


@pytest.fixture
def integration_settings(settings):
    settings.SITE_URL = "https://siem.example.test"
    settings.INTEGRATION_TIMEOUT_SEC = 1
    settings.INTEGRATION_MAX_ATTEMPTS = 3
    settings.INTEGRATION_RETRY_BACKOFF_SEC = 10
    settings.INTEGRATION_MAX_IN_FLIGHT = 1
    settings.INTEGRATION_RATE_PER_MIN = 20
    settings.INTEGRATION_RATE_WINDOW_SEC = 3600
    settings.TELEGRAM_BOT_TOKEN = BOT_TOKEN
    return settings
