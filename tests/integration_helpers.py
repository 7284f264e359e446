"""Loopback receivers for the integrations tests: an HTTP server (webhook, Slack, Telegram) and
an SMTP server (aiosmtpd), both real servers on 127.0.0.1 that record what they received.

`Receiver.script(path, [500, 200])` makes the next requests to `path` answer 500 then 200
(the last entry repeats); `"hang"` holds the request open until the server stops (or 30 s).
"""

from __future__ import annotations

import email
import email.policy
import json
import socket
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HANG = "hang"


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float = field(default_factory=time.monotonic)

    def json(self):
        return json.loads(self.body)


class Receiver:
    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._scripts: dict[str, list] = defaultdict(lambda: [200])
        self._lock = threading.Lock()
        self._stop = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (http.server's naming)
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver._lock:
                    receiver.requests.append(Request(self.path, dict(self.headers), body))
                    script = receiver._scripts[self.path]
                    answer = script.pop(0) if len(script) > 1 else script[0]
                if answer == HANG:
                    receiver._stop.wait(30)
                    return
                payload = b'{"ok":true}' if answer < 300 else b'{"ok":false}'
                self.send_response(answer)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args):  # keep test output quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.base = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> Receiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self.server.shutdown()
        self.server.server_close()

    def script(self, path: str, answers: list) -> None:
        with self._lock:
            self._scripts[path] = list(answers)

    def to(self, path: str) -> list[Request]:
        with self._lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int, timeout: float = 30) -> list[Request]:
        deadline = time.monotonic() + timeout
        while len(self.to(path)) < count:
            assert time.monotonic() < deadline, f"{path}: {len(self.to(path))} of {count}"
            time.sleep(0.05)
        return self.to(path)


class Mailbox:
    """An aiosmtpd SMTP server on a free loopback port; `messages` are parsed e-mails."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[email.message.EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        mailbox = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd API)
                mailbox.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
                mailbox.messages.append(
                    email.message_from_bytes(envelope.content, policy=email.policy.default)
                )
                return "250 OK"

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> Mailbox:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
