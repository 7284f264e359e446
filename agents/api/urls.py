"""Agent endpoints, included by siem/api_urls.py at /api/v1/ (trailing slash optional)."""

from __future__ import annotations

from agents.api import views
from siem.api_common import route

urlpatterns = [
    route("agents/register", views.RegisterView.as_view(), "agent-register"),
    route("agents/heartbeat", views.HeartbeatView.as_view(), "agent-heartbeat"),
    route("agents/events", views.AgentEventsView.as_view(), "agent-events"),
    route("agents", views.AgentListView.as_view(), "agent-list"),
    route(
        r"agents/(?P<agent_id>[0-9a-fA-F-]{36})", views.AgentDetailView.as_view(), "agent-detail"
    ),
]
