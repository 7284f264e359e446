from __future__ import annotations

from alerts.api import rules, views
from siem.api_common import route

_ONE = r"alerts/(?P<alert_id>[0-9]+)"
_RULE = r"rules/(?P<rule_id>[^/]+)"

urlpatterns = [
    route("alerts", views.AlertListView.as_view(), "alert-list"),
    route(_ONE, views.AlertDetailView.as_view(), "alert-detail"),
    route(f"{_ONE}/acknowledge", views.AlertAcknowledgeView.as_view(), "alert-acknowledge"),
    route(f"{_ONE}/assign", views.AlertAssignView.as_view(), "alert-assign"),
    route(f"{_ONE}/resolve", views.AlertResolveView.as_view(), "alert-resolve"),
    route(f"{_ONE}/events", views.AlertEventsView.as_view(), "alert-events"),
    route(f"{_ONE}/occurrences", views.AlertOccurrencesView.as_view(), "alert-occurrences"),
    route(f"{_ONE}/related", views.AlertRelatedView.as_view(), "alert-related"),
    route(f"{_ONE}/comments", views.AlertCommentsView.as_view(), "alert-comments"),
    # Detection rules (rules.py); `coverage` before the rule ids (which never read "coverage").
    route("rules", rules.RuleListView.as_view(), "rule-list"),
    route("rules/coverage", rules.RuleCoverageView.as_view(), "rule-coverage"),
    route(_RULE, rules.RuleDetailView.as_view(), "rule-detail"),
    route(f"{_RULE}/exceptions", rules.RuleExceptionListView.as_view(), "rule-exception-list"),
    route(
        rf"{_RULE}/exceptions/(?P<exception_id>[0-9]+)",
        rules.RuleExceptionDetailView.as_view(),
        "rule-exception-detail",
    ),
]
