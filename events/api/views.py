"""Security events: list, read one, create one, create many (all or nothing)."""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import CanTriage, ReadRoleWriteTriage
from events.api.filters import EventFilter
from events.api.serializers import (
    BulkCreatedSerializer,
    EventCreatedSerializer,
    EventInputSerializer,
    EventSerializer,
)
from events.ingest import fast_validate
from events.models import SecurityEvent
from events.services import create_event, create_events
from siem.concurrency import BUSY_RESPONSE, ingest_slot
from siem.pagination import EventPagination
from siem.strict_params import StrictQueryParams


@extend_schema_view(
    get=extend_schema(
        tags=["events"],
        summary="List events, newest first",
        description=(
            "`q` takes the hunting query language (docs/investigation.md): 400 "
            '`{"q": ["<reason> at position N"]}` if it cannot be read. An unknown query '
            "parameter is a 400 naming it. Who: any role (admin, analyst, viewer)."
        ),
    ),
    post=extend_schema(
        tags=["events"],
        summary="Create one event",
        request=EventInputSerializer,
        responses={201: EventCreatedSerializer, 400: OpenApiResponse(description="Bad fields.")},
    ),
)
class EventListView(StrictQueryParams, generics.ListAPIView):
    permission_classes = [ReadRoleWriteTriage]
    serializer_class = EventSerializer
    pagination_class = EventPagination  # fast counts, `?cursor=` keyset pages
    filterset_class = EventFilter
    search_fields = ["message", "computer", "user_name", "source_ip"]
    ordering_fields = ["timestamp", "received_at", "event_id", "severity", "ai_score"]
    ordering = ["-timestamp", "-event_id"]
    queryset = SecurityEvent.objects.all()

    def post(self, request):
        serializer = EventInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        event = create_event(serializer.validated_data, actor=request.user)
        return Response({"event_id": event.event_id}, status=status.HTTP_201_CREATED)


@extend_schema(tags=["events"], summary="One event with its AI verdict")
class EventDetailView(generics.RetrieveAPIView):
    permission_classes = [ReadRoleWriteTriage]
    serializer_class = EventSerializer
    queryset = SecurityEvent.objects.all()
    lookup_field = "event_id"


class EventBulkView(APIView):
    permission_classes = [CanTriage]

    @extend_schema(
        tags=["events"],
        summary="Create many events, all or nothing",
        description=(
            "A JSON array of events (same fields as a single event). Every item is validated "
            "first; if any is invalid nothing is stored and `errors` lists each bad item by "
            "its index. At most EVENTS_BULK_MAX items (default 1000) and "
            "MAX_REQUEST_BODY_BYTES per body (default 10 MiB, 413 beyond)."
        ),
        request=EventInputSerializer(many=True),
        responses={
            201: BulkCreatedSerializer,
            400: OpenApiResponse(description="Not a list, too many items, or invalid items."),
            413: OpenApiResponse(description="Body larger than MAX_REQUEST_BODY_BYTES."),
            503: BUSY_RESPONSE,
        },
    )
    def post(self, request):
        with ingest_slot():
            return self._store(request)

    def _store(self, request):
        items = request.data
        if not isinstance(items, list):
            raise ValidationError({"detail": "Expected a JSON array of events."})
        if not items:
            raise ValidationError({"detail": "The batch is empty."})
        limit = settings.EVENTS_BULK_MAX
        if len(items) > limit:
            raise ValidationError(
                {"detail": f"Too many events: {len(items)} > {limit} (EVENTS_BULK_MAX)."}
            )
        valid, invalid = validate_events(items)
        if invalid:
            return Response(
                {
                    "detail": f"{len(invalid)} of {len(items)} events are invalid; "
                    "nothing was stored.",
                    "errors": [{"index": index, "errors": errors} for index, errors in invalid],
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        result = create_events(valid, actor=request.user)
        return Response(
            {"created": len(result.created), "event_ids": [e.event_id for e in result.created]},
            status=status.HTTP_201_CREATED,
        )


def validate_events(items: list) -> tuple[list[dict], list[tuple[int, dict]]]:
    """(validated items, [(index, field errors)]) with exactly EventInputSerializer's answers.

    The serializer costs ~100 µs per event, most of a bulk request's own CPU. Plainly valid
    items take `events.ingest.fast_validate` instead (held to the serializer's answers by
    tests/test_ingest_fast_validation.py), after the serializer's own `timestamp` field has
    parsed the ISO 8601 string; anything else is asked of the serializer, for its reasons.
    """
    serializer = EventInputSerializer()
    timestamp_field = serializer.fields["timestamp"]
    valid: list[dict] = []
    invalid: list[tuple[int, dict]] = []
    for index, item in enumerate(items):
        fast = None
        if type(item) is dict:
            candidate = item
            stamp = item.get("timestamp")
            if type(stamp) is str:
                try:
                    candidate = {**item, "timestamp": timestamp_field.to_internal_value(stamp)}
                except ValidationError:
                    candidate = None
            fast = fast_validate(candidate) if candidate is not None else None
        if fast is not None:
            valid.append(fast)
            continue
        try:
            valid.append(serializer.run_validation(item))
        except ValidationError as exc:
            invalid.append((index, exc.detail))
    return valid, invalid
