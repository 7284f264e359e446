from __future__ import annotations

from incidents.api import views
from siem.api_common import route

_ONE = r"incidents/(?P<incident_id>[0-9]+)"

urlpatterns = [
    route("incidents", views.IncidentListView.as_view(), "incident-list"),
    route(_ONE, views.IncidentDetailView.as_view(), "incident-detail"),
    route(f"{_ONE}/escalate", views.IncidentEscalateView.as_view(), "incident-escalate"),
    route(f"{_ONE}/close", views.IncidentCloseView.as_view(), "incident-close"),
    route(f"{_ONE}/alerts", views.IncidentAlertsView.as_view(), "incident-alerts"),
    route(f"{_ONE}/comments", views.IncidentCommentsView.as_view(), "incident-comments"),
    route(f"{_ONE}/tasks", views.IncidentTasksView.as_view(), "incident-tasks"),
    route(f"{_ONE}/observables", views.IncidentObservablesView.as_view(), "incident-observables"),
    route(r"tasks/(?P<task_id>[0-9]+)", views.TaskDetailView.as_view(), "task-detail"),
]
