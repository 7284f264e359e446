from __future__ import annotations

from integrations.api import views
from siem.api_common import route

_ONE = r"integrations/(?P<integration_id>[0-9]+)"

urlpatterns = [
    route("integrations", views.IntegrationListView.as_view(), "integration-list"),
    route(_ONE, views.IntegrationDetailView.as_view(), "integration-detail"),
    route(f"{_ONE}/test", views.IntegrationTestView.as_view(), "integration-test"),
    route(
        f"{_ONE}/deliveries", views.IntegrationDeliveriesView.as_view(), "integration-deliveries"
    ),
]
