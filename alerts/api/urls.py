from __future__ import annotations

from alerts.api import views
from siem.api_common import route

_ONE = r"alerts/(?P<alert_id>[0-9]+)"

urlpatterns = [
    route("alerts", views.AlertListView.as_view(), "alert-list"),
    route(_ONE, views.AlertDetailView.as_view(), "alert-detail"),
    route(f"{_ONE}/acknowledge", views.AlertAcknowledgeView.as_view(), "alert-acknowledge"),
    route(f"{_ONE}/assign", views.AlertAssignView.as_view(), "alert-assign"),
    route(f"{_ONE}/resolve", views.AlertResolveView.as_view(), "alert-resolve"),
]
