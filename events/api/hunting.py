"""Hunting over events: histogram, facets, export, saved searches (docs/investigation.md).

The views validate the query string and hand the work to `events.hunting` (reads) or
`events.services` (saved-search writes); every one answers 400 on a parameter it does not know.
"""

from __future__ import annotations

from django.http import StreamingHttpResponse
from django.shortcuts import get_object_or_404
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework import generics, serializers, status
from rest_framework.exceptions import PermissionDenied, ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import roles
from accounts.permissions import IsRoleUser, request_role
from events import hunting
from events.models import SavedSearch
from events.query import FIELD_NAME, QuerySyntaxError, compile_query
from events.services import create_saved_search, delete_saved_search

ANY_ROLE = "Who: any role (admin, analyst, viewer); a user with no role gets 403."
Q_PARAM = OpenApiParameter(
    "q",
    str,
    description="Hunting query (docs/investigation.md); 400 with a position if unreadable.",
)
SINCE_PARAM = OpenApiParameter(
    "since", OpenApiTypes.DATETIME, description="Event time from (ISO 8601). Default: 24 h ago."
)
UNTIL_PARAM = OpenApiParameter(
    "until", OpenApiTypes.DATETIME, description="Event time up to (ISO 8601). Default: now."
)
BAD_QUERY = OpenApiResponse(
    description='`{"q": ["<reason> at position N"]}`, a bad time, or an unknown parameter.'
)


def reject_unknown_query_params(request, allowed) -> None:
    """400 naming each query parameter this view does not know (as siem.strict_params does for
    list views): a typo must not silently widen a search."""
    unknown = sorted(set(request.query_params) - set(allowed))
    if unknown:
        raise ValidationError({name: ["Unknown filter parameter."] for name in unknown})


class RangeSerializer(serializers.Serializer):
    q = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    since = serializers.DateTimeField(required=False)
    until = serializers.DateTimeField(required=False)


def hunt_queryset(request, *, extra: tuple[str, ...] = (), default_since: bool = True):
    """(events matching q/since/until, since, until, the validated params) for a hunting view."""
    reject_unknown_query_params(request, {"q", "since", "until", *extra})
    params = RangeSerializer(data=request.query_params)
    params.is_valid(raise_exception=True)
    data = params.validated_data
    until = data.get("until") or timezone.now()
    since = data.get("since") or (until - hunting.DEFAULT_RANGE if default_since else None)
    if since is not None and since > until:
        raise ValidationError({"since": ["Must not be after until."]})
    try:
        condition = compile_query(data.get("q", ""))
    except QuerySyntaxError as exc:
        raise ValidationError({"q": [str(exc)]}) from None
    queryset = hunting.matching(condition, since, until)
    return queryset, since, until


# --- histogram ----------------------------------------------------------------------------------
class BucketSerializer(serializers.Serializer):
    start = serializers.DateTimeField()
    count = serializers.IntegerField()


class HistogramSerializer(serializers.Serializer):
    interval_sec = serializers.IntegerField()
    buckets = BucketSerializer(many=True)


class EventHistogramView(APIView):
    permission_classes = [IsRoleUser]

    @extend_schema(
        tags=["events"],
        summary="Matching events per time bucket",
        description=(
            "Counts of the events matching `q` between `since` and `until` (default: the last "
            "24 h), in whole buckets of a round width (1 s … 7 d) chosen to give at most "
            f"{hunting.MAX_BUCKETS} buckets; empty buckets are listed with count 0. " + ANY_ROLE
        ),
        parameters=[Q_PARAM, SINCE_PARAM, UNTIL_PARAM],
        responses={200: HistogramSerializer, 400: BAD_QUERY},
    )
    def get(self, request):
        queryset, since, until = hunt_queryset(request)
        interval, buckets = hunting.histogram(queryset, since, until)
        return Response(
            {
                "interval_sec": interval,
                "buckets": [{"start": hunting.iso(start), "count": n} for start, n in buckets],
            }
        )


# --- facets -------------------------------------------------------------------------------------
class FacetValueSerializer(serializers.Serializer):
    value = serializers.JSONField()
    count = serializers.IntegerField()


class FacetsSerializer(serializers.Serializer):
    field = serializers.CharField()
    values = FacetValueSerializer(many=True)
    sampled = serializers.BooleanField(
        help_text="True when the counts are over the newest `sample_size` matching events only."
    )
    sample_size = serializers.IntegerField(
        allow_null=True, help_text="Events counted when sampled; null when every one was."
    )


class EventFacetsView(APIView):
    permission_classes = [IsRoleUser]

    @extend_schema(
        tags=["events"],
        summary="Top 10 values of a field among matching events",
        description=(
            "`field` is a stored field (computer, event_code, severity, user_name, source_ip, "
            "source_type, message, agent) or any field of the raw record by its name "
            "(TargetUserName, LogonType, …). Empty values are left out. Default range: the "
            "last 24 h. A stored field is counted over every matching event; a raw field over "
            f"the newest {hunting.FACET_SAMPLE:,} when more match (`sampled` true, "
            "`sample_size` the events counted). " + ANY_ROLE
        ),
        parameters=[
            OpenApiParameter("field", str, required=True, description="The field to count."),
            Q_PARAM,
            SINCE_PARAM,
            UNTIL_PARAM,
        ],
        responses={200: FacetsSerializer, 400: BAD_QUERY},
    )
    def get(self, request):
        queryset, _since, _until = hunt_queryset(request, extra=("field",))
        field = request.query_params.get("field", "")
        if not FIELD_NAME.fullmatch(field):
            raise ValidationError({"field": ["A field name is required (e.g. computer)."]})
        return Response({"field": field, **hunting.facet(queryset, field)})


# --- export -------------------------------------------------------------------------------------
class EventExportView(APIView):
    permission_classes = [IsRoleUser]
    renderer_classes = [JSONRenderer]

    def perform_content_negotiation(self, request, force=False):
        # `format` is our parameter (csv or jsonl), not DRF's renderer override; the stream is
        # built below, and errors are JSON.
        return (JSONRenderer(), JSONRenderer.media_type)

    @extend_schema(
        tags=["events"],
        summary="Every matching event, streamed as CSV or JSON Lines",
        description=(
            "Newest first, at most EXPORT_MAX_EVENTS events (default 100,000); the "
            "`X-Export-Limit` header says the bound. No `since`: from the beginning. CSV "
            "columns: the stored fields, then `raw` as JSON. JSON Lines: one event object per "
            "line, as GET /api/v1/events/{event_id}/ returns it. " + ANY_ROLE
        ),
        parameters=[
            OpenApiParameter("format", str, enum=["csv", "jsonl"], description="Default csv."),
            Q_PARAM,
            OpenApiParameter("since", OpenApiTypes.DATETIME, description="Event time from."),
            UNTIL_PARAM,
        ],
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            (200, "application/x-ndjson"): OpenApiTypes.STR,
            400: BAD_QUERY,
        },
    )
    def get(self, request):
        queryset, _since, _until = hunt_queryset(request, extra=("format",), default_since=False)
        kind = request.query_params.get("format", "csv")
        if kind not in hunting.EXPORT_FORMATS:
            raise ValidationError({"format": ["Expected csv or jsonl."]})
        content_type, lines = hunting.export(queryset, kind)
        response = StreamingHttpResponse(lines, content_type=content_type)
        stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="events-{stamp}.{kind}"'
        response["X-Export-Limit"] = str(hunting.export_limit())
        return response


# --- saved searches -----------------------------------------------------------------------------
class SavedSearchSerializer(serializers.ModelSerializer):
    search_id = serializers.IntegerField(source="pk", read_only=True)
    owner = serializers.CharField(source="owner.username", read_only=True)

    class Meta:
        model = SavedSearch
        fields = ["search_id", "name", "q", "shared", "owner", "created_at"]
        read_only_fields = ["search_id", "owner", "created_at"]

    def validate_q(self, value: str) -> str:
        try:
            compile_query(value)
        except QuerySyntaxError as exc:
            raise serializers.ValidationError(str(exc)) from None
        return value


def visible_searches(user):
    from django.db.models import Q

    return SavedSearch.objects.filter(Q(owner=user) | Q(shared=True)).select_related("owner")


class SavedSearchListView(generics.ListAPIView):
    permission_classes = [IsRoleUser]
    serializer_class = SavedSearchSerializer
    pagination_class = None

    def get_queryset(self):
        return visible_searches(self.request.user)

    @extend_schema(
        tags=["searches"],
        summary="Saved searches: yours and the shared ones",
        description=ANY_ROLE,
        responses={200: SavedSearchSerializer(many=True)},
    )
    def get(self, request, *args, **kwargs):
        reject_unknown_query_params(request, ("format",))
        return self.list(request, *args, **kwargs)

    @extend_schema(
        tags=["searches"],
        summary="Save a search",
        description='`{"name", "q", "shared"}`; `q` must be a readable query. ' + ANY_ROLE,
        request=SavedSearchSerializer,
        responses={201: SavedSearchSerializer, 400: OpenApiResponse(description="Bad fields.")},
    )
    def post(self, request):
        serializer = SavedSearchSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        search = create_saved_search(**serializer.validated_data, actor=request.user)
        return Response(SavedSearchSerializer(search).data, status=status.HTTP_201_CREATED)


class SavedSearchDetailView(APIView):
    permission_classes = [IsRoleUser]

    @extend_schema(
        tags=["searches"],
        summary="Delete a saved search",
        description=(
            "Your own (any role); admins may delete anyone's. Someone else's shared search: "
            "403; a search you cannot see: 404. " + ANY_ROLE
        ),
        responses={204: None, 403: OpenApiResponse(description="Not yours."), 404: None},
    )
    def delete(self, request, search_id: int):
        search = get_object_or_404(visible_searches(request.user), pk=search_id)
        if search.owner_id != request.user.pk and request_role(request) != roles.ADMIN:
            raise PermissionDenied("Only its owner (or an admin) may delete a saved search.")
        delete_saved_search(search, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
