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
from events.models import SecurityEvent
from events.services import create_event, create_events
from siem.api_common import StandardPagination


@extend_schema_view(
    get=extend_schema(tags=["events"], summary="List events, newest first"),
    post=extend_schema(
        tags=["events"],
        summary="Create one event",
        request=EventInputSerializer,
        responses={201: EventCreatedSerializer, 400: OpenApiResponse(description="Bad fields.")},
    ),
)
class EventListView(generics.ListAPIView):
    permission_classes = [ReadRoleWriteTriage]
    serializer_class = EventSerializer
    pagination_class = StandardPagination
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
        },
    )
    def post(self, request):
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
        serializer = EventInputSerializer(data=items, many=True)
        if not serializer.is_valid():
            errors = [
                {"index": index, "errors": item_errors}
                for index, item_errors in _item_errors(serializer.errors)
            ]
            return Response(
                {
                    "detail": f"{len(errors)} of {len(items)} events are invalid; "
                    "nothing was stored.",
                    "errors": errors,
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        result = create_events(serializer.validated_data, actor=request.user)
        return Response(
            {"created": len(result.created), "event_ids": [e.event_id for e in result.created]},
            status=status.HTTP_201_CREATED,
        )


def _item_errors(errors) -> list[tuple[int, dict]]:
    """(index, errors) of each invalid item, whichever of DRF's two list-error formats is on:
    a dict keyed by index, or a list with an empty dict for each valid item."""
    pairs = errors.items() if isinstance(errors, dict) else enumerate(errors)
    return sorted((int(index), item) for index, item in pairs if item)
