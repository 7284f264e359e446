from __future__ import annotations

from django.contrib import admin
from django.db.models import Q

from events.models import SecurityEvent
from siem.pagination import EstimatedCountPaginator, exact_search


@admin.register(SecurityEvent)
class SecurityEventAdmin(admin.ModelAdmin):
    """Events are evidence: read-only in the admin (they arrive through the API and agents)."""

    list_display = (
        "event_id",
        "timestamp",
        "computer",
        "event_code",
        "severity",
        "user_name",
        "source_ip",
        "ai_status",
        "ai_score",
        "ai_category",
    )
    # Performance at millions of events (docs/performance.md, "Scale"): filters from choices
    # only (a free-text field's filter runs SELECT DISTINCT over the whole table on every view),
    # no date hierarchy (it runs one too), estimated counts, and a search that uses indexes.
    list_filter = ("severity", "ai_status")
    search_fields = ("computer", "user_name", "source_ip", "event_code")
    search_help_text = (
        "Exact host name, user name, source IP or event code; #123 for event id 123 (full-text "
        "search: the events page)."
    )
    ordering = ("-timestamp",)
    paginator = EstimatedCountPaginator
    list_per_page = 50  # rendering 100 rows of 10 columns is most of a page view's time
    show_full_result_count = False  # a COUNT(*) over millions of events on every page is waste

    def get_search_results(self, request, queryset, search_term):
        """Exact matches on indexed columns, instead of the admin's `icontains` over four
        columns (a scan of every event).

        1. The term's candidate matches: a host (as typed or upper-case, as Windows writes
           it), a user name, a source IP; a number is an event code, `#n` an event id.
        2. Only those that match some event are used (`siem.pagination.exact_search`).
        """
        term = search_term.strip()
        if not term:
            return queryset, False
        if term.startswith("#") and term[1:].isdigit() and len(term) < 20:
            return queryset.filter(event_id=int(term[1:])), False
        candidates = [Q(computer=value) for value in dict.fromkeys([term, term.upper()])]
        candidates += [Q(user_name=term), Q(source_ip=term)]
        if term.isdigit() and len(term) < 10:
            candidates.append(Q(event_code=int(term)))
        found = exact_search(queryset, candidates)
        return (queryset.none() if found is None else found), False

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # evidence: nobody deletes security events by hand

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions
