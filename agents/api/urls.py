"""Agent endpoints, included by siem/api_urls.py at /api/v1/ (no prefix).

Patterns carry their full path below /api/v1/ and an optional trailing slash, like the other
apps: `route("agents/register", view, "agent-register")` with `siem.api_common.route`.
"""

from __future__ import annotations

urlpatterns: list = []
