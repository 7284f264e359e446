"""WebSocket routing: Origin check, then `?token=` authentication, then `/ws/<channel>`."""

from __future__ import annotations

from channels.routing import URLRouter
from django.urls import re_path

from realtime.auth import OriginCheckMiddleware, QueryTokenAuthMiddleware
from realtime.consumers import RealtimeConsumer

# Every path reaches the consumer: an unknown channel (or path) gets an error and close 4004
# instead of a dropped handshake.
websocket_urlpatterns = [
    re_path(r"^ws/(?P<channel>[^/]+)/?$", RealtimeConsumer.as_asgi()),
    re_path(r"^(?P<path>.*)$", RealtimeConsumer.as_asgi()),
]


def websocket_application():
    return OriginCheckMiddleware(QueryTokenAuthMiddleware(URLRouter(websocket_urlpatterns)))
