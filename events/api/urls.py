from __future__ import annotations

from events.api import hunting, views
from siem.api_common import route

urlpatterns = [
    route("events", views.EventListView.as_view(), "event-list"),
    route("events/bulk", views.EventBulkView.as_view(), "event-bulk"),
    route("events/histogram", hunting.EventHistogramView.as_view(), "event-histogram"),
    route("events/facets", hunting.EventFacetsView.as_view(), "event-facets"),
    route("events/export", hunting.EventExportView.as_view(), "event-export"),
    route("searches", hunting.SavedSearchListView.as_view(), "saved-search-list"),
    route(
        r"searches/(?P<search_id>[0-9]+)",
        hunting.SavedSearchDetailView.as_view(),
        "saved-search-detail",
    ),
    route(r"events/(?P<event_id>[0-9]+)", views.EventDetailView.as_view(), "event-detail"),
]
