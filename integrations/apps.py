from __future__ import annotations

import logging

from django.apps import AppConfig


class IntegrationsConfig(AppConfig):
    name = "integrations"
    verbose_name = "Notifications out (integrations)"

    def ready(self) -> None:
        from siem.logging import RedactTokensFilter

        # httpx logs every request line ("HTTP Request: POST <url> ...") at INFO, and a
        # Telegram URL carries the bot token. A filter on the logger itself rewrites the record
        # before any handler sees it (console, files, pytest's caplog alike).
        for name in ("httpx", "httpcore"):
            logging.getLogger(name).addFilter(RedactTokensFilter())
