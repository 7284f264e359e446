"""Everything under /api/v1/ (trailing slashes optional on every path)."""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

import siem.openapi  # noqa: F401  (registers the authentication schemes for the schema)
from realtime.api import WebSocketTicketView
from siem.api_common import route
from siem.api_docs import ApiDocsView
from siem.api_views import DashboardStatisticsView

urlpatterns = [
    path("", include("accounts.api.urls")),
    path("", include("events.api.urls")),
    path("", include("alerts.api.urls")),
    path("", include("incidents.api.urls")),
    path("", include("agents.api.urls")),
    path("", include("integrations.api.urls")),
    route("auth/ws-ticket", WebSocketTicketView.as_view(), "auth-ws-ticket"),  # realtime/api.py
    route("dashboard/statistics", DashboardStatisticsView.as_view(), "dashboard-statistics"),
    route("schema", SpectacularAPIView.as_view(), "api-schema"),
    route("docs", ApiDocsView.as_view(url_name="api-schema"), "api-docs"),  # offline assets
]
