from __future__ import annotations

from events.api import views
from siem.api_common import route

urlpatterns = [
    route("events", views.EventListView.as_view(), "event-list"),
    route("events/bulk", views.EventBulkView.as_view(), "event-bulk"),
    route(r"events/(?P<event_id>[0-9]+)", views.EventDetailView.as_view(), "event-detail"),
]
