"""ASGI entry point: HTTP to Django, WebSockets to the real-time layer."""

from __future__ import annotations

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "siem.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter  # noqa: E402  (Django must be set up first)

from realtime import backpressure, handshake_tuning, wire_errors  # noqa: E402
from realtime.routing import websocket_application  # noqa: E402
from siem.logging import redact_daphne_access_log  # noqa: E402

# daphne writes its access log straight to a stream, with the query string of HTTP requests.
redact_daphne_access_log()
# daphne buffers without limit what is written to a socket that stopped reading.
backpressure.install()
# Oversized frames and invalid UTF-8 get a close frame (1009 / 1007), not a dropped TCP socket.
wire_errors.install()
# autobahn formats a debug line per WebSocket handshake even when debug logging is off.
handshake_tuning.install()

application = ProtocolTypeRouter({"http": django_asgi_app, "websocket": websocket_application()})
