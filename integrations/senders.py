"""One function per integration kind: send one message, report what happened, never raise.

Outcome.retryable says whether another attempt could succeed: timeouts, connection errors, 5xx
and 429 (rate limited) are worth retrying; other 4xx mean the request itself is wrong.
Error texts are built here, never from an exception's full text when a URL could be in it, and
pass through `scrub()`: neither the integration's secret nor the Telegram bot token may reach
the delivery log, a log line or an API answer.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import smtplib
import time
from dataclasses import dataclass
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection

from integrations import messages
from integrations.models import Integration, IntegrationKind

USER_AGENT = "SIEM-Integrations/1.0"
SIGNATURE_HEADER = "X-SIEM-Signature"
MAX_ERROR = 500


@dataclass
class Outcome:
    ok: bool
    http_status: int | None = None
    error: str = ""
    retryable: bool = False
    duration_ms: int = 0


def sign(body: bytes, secret: str) -> str:
    """`sha256=<hex HMAC-SHA256 of the raw body>`, the X-SIEM-Signature header value."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()


def scrub(text: str, *secrets: str) -> str:
    for secret in (*secrets, settings.TELEGRAM_BOT_TOKEN):
        if secret:
            text = text.replace(secret, "[redacted]")
    return text[:MAX_ERROR]


def send(integration: Integration, body: dict[str, Any], summary: dict[str, Any]) -> Outcome:
    started = time.monotonic()
    sender = _SENDERS[integration.kind]
    try:
        outcome = sender(integration, body, summary)
    except Exception as exc:  # a bug or an odd library error must not kill the worker loop
        outcome = Outcome(False, error=f"{type(exc).__name__}", retryable=True)
    outcome.duration_ms = int((time.monotonic() - started) * 1000)
    outcome.error = scrub(outcome.error, integration.secret)
    return outcome


def _post(url: str, content: bytes, headers: dict[str, str]) -> Outcome:
    headers = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers}
    try:
        with httpx.Client(timeout=settings.INTEGRATION_TIMEOUT_SEC, follow_redirects=False) as c:
            response = c.post(url, content=content, headers=headers)
    except httpx.TimeoutException as exc:
        # Only the class name: some httpx errors quote the request URL (the bot token).
        return Outcome(False, error=f"timeout ({type(exc).__name__})", retryable=True)
    except httpx.TransportError as exc:
        return Outcome(False, error=f"connection error ({type(exc).__name__})", retryable=True)
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(True, http_status=status)
    return Outcome(
        False,
        http_status=status,
        error=f"HTTP {status}: {response.text[:200]}",
        retryable=status >= 500 or status == 429,
    )


def _webhook(integration: Integration, body, summary) -> Outcome:
    content = encode(body)
    return _post(integration.target, content, {SIGNATURE_HEADER: sign(content, integration.secret)})


def _slack(integration: Integration, body, summary) -> Outcome:
    return _post(integration.target, encode(messages.slack(summary)), {})


def _telegram(integration: Integration, body, summary) -> Outcome:
    token = settings.TELEGRAM_BOT_TOKEN
    if not token:
        return Outcome(False, error="TELEGRAM_BOT_TOKEN is not set")
    payload = {
        "chat_id": integration.target,
        "text": messages.telegram(summary),
        "parse_mode": "HTML",
        "disable_web_page_preview": True,
    }
    return _post(f"{settings.TELEGRAM_API_BASE}/bot{token}/sendMessage", encode(payload), {})


def _email(integration: Integration, body, summary) -> Outcome:
    recipients = [a.strip() for a in integration.target.split(",") if a.strip()]
    mail = EmailMultiAlternatives(
        subject=messages.headline(summary)[:200],
        body=messages.plain_text(summary),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=recipients,
        connection=get_connection(timeout=settings.INTEGRATION_TIMEOUT_SEC),
    )
    mail.attach_alternative(messages.email_html(summary), "text/html")
    try:
        mail.send()
    except smtplib.SMTPResponseException as exc:
        # 4xx is temporary (greylisting, mailbox busy), 5xx permanent.
        return Outcome(False, error=f"SMTP {exc.smtp_code}", retryable=exc.smtp_code < 500)
    except smtplib.SMTPRecipientsRefused as exc:
        codes = sorted({code for code, _msg in exc.recipients.values()})
        return Outcome(False, error=f"SMTP recipients refused {codes}", retryable=False)
    except TimeoutError as exc:
        return Outcome(False, error=f"timeout ({type(exc).__name__})", retryable=True)
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome(False, error=f"SMTP error ({type(exc).__name__})", retryable=True)
    return Outcome(True)


_SENDERS = {
    IntegrationKind.WEBHOOK: _webhook,
    IntegrationKind.SLACK: _slack,
    IntegrationKind.TELEGRAM: _telegram,
    IntegrationKind.EMAIL: _email,
}
