"""Alerts: list, create, read (with context and timeline), edit, acknowledge, assign, resolve,
its events, related alerts, comments. Detection rules are in rules.py.

Every write is one call to `alerts.services`; its InvalidTransition becomes 409 and its
ValidationError 400 (siem.api.exception_handler).
"""

from __future__ import annotations

from django.core.paginator import Paginator as DjangoPaginator
from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import CanTriage, IsRoleUser, ReadRoleWriteTriage
from alerts import context, services
from alerts.api.filters import AlertFilter
from alerts.api.serializers import (
    AcknowledgeSerializer,
    AlertCreateSerializer,
    AlertDetailSerializer,
    AlertSerializer,
    AlertUpdateSerializer,
    AssignSerializer,
    OccurrencesSerializer,
    RelatedAlertSerializer,
    ResolveSerializer,
)
from alerts.models import Alert
from events.api.serializers import EventSerializer
from events.models import SecurityEvent
from siem.api_comments import comments_view
from siem.api_common import StandardPagination
from siem.strict_params import StrictQueryParams

_CONFLICT = OpenApiResponse(description="Illegal status change (e.g. resolving a resolved alert).")


def alert_queryset():
    return Alert.objects.select_related("assigned_to").prefetch_related(
        Prefetch("events", queryset=SecurityEvent.objects.only("event_id").order_by())
    )


def detail_queryset():
    """One alert: its event ids are read by the serializer (no event objects prefetched)."""
    return Alert.objects.select_related("assigned_to").prefetch_related("activities")


def _detail(alert: Alert, **kwargs) -> Response:
    fresh = detail_queryset().get(pk=alert.pk)
    return Response(AlertDetailSerializer(fresh).data, **kwargs)


@extend_schema_view(
    get=extend_schema(tags=["alerts"], summary="List alerts, newest first"),
    post=extend_schema(
        tags=["alerts"],
        summary="Create an alert",
        request=AlertCreateSerializer,
        responses={201: AlertDetailSerializer},
    ),
)
class AlertListView(StrictQueryParams, generics.ListAPIView):
    permission_classes = [ReadRoleWriteTriage]
    serializer_class = AlertSerializer
    pagination_class = StandardPagination
    filterset_class = AlertFilter
    search_fields = ["title", "description", "hostname", "category", "rule_id"]
    ordering_fields = ["created_at", "updated_at", "last_seen", "severity", "status", "alert_id"]
    ordering = ["-created_at", "-alert_id"]

    def get_queryset(self):
        return alert_queryset()

    def post(self, request):
        serializer = AlertCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        alert = services.create_alert(**serializer.validated_data, actor=request.user)
        return _detail(alert, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(tags=["alerts"], summary="One alert with its activity timeline"),
    patch=extend_schema(
        tags=["alerts"],
        summary="Edit an alert or change its status",
        request=AlertUpdateSerializer,
        responses={200: AlertDetailSerializer, 409: _CONFLICT},
    ),
)
class AlertDetailView(generics.RetrieveAPIView):
    permission_classes = [ReadRoleWriteTriage]
    serializer_class = AlertDetailSerializer
    lookup_field = "alert_id"

    def get_queryset(self):
        return detail_queryset()

    def patch(self, request, alert_id: int):
        alert = get_object_or_404(Alert, pk=alert_id)
        serializer = AlertUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        alert = services.update_alert(alert, actor=request.user, **serializer.validated_data)
        return _detail(alert)


class _AlertAction(APIView):
    """POST /alerts/{id}/<action>/: validate the body, call one service, answer the alert."""

    permission_classes = [CanTriage]
    input_serializer: type = AcknowledgeSerializer

    def post(self, request, alert_id: int):
        alert = get_object_or_404(Alert, pk=alert_id)
        serializer = self.input_serializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        alert = self.perform(alert, request.user, serializer.validated_data)
        return _detail(alert)

    def perform(self, alert: Alert, user, data: dict) -> Alert:
        raise NotImplementedError


def _action_schema(summary: str, serializer: type):
    return extend_schema(
        tags=["alerts"],
        summary=summary,
        request=serializer,
        responses={200: AlertDetailSerializer, 404: None, 409: _CONFLICT},
    )


class AlertAcknowledgeView(_AlertAction):
    input_serializer = AcknowledgeSerializer

    @_action_schema("Acknowledge (and assign; default: the caller)", AcknowledgeSerializer)
    def post(self, request, alert_id: int):
        return super().post(request, alert_id)

    def perform(self, alert, user, data):
        return services.acknowledge_alert(alert, actor=user, assigned_to=data.get("assigned_to"))


class AlertAssignView(_AlertAction):
    input_serializer = AssignSerializer

    @_action_schema("Assign to a user (null unassigns)", AssignSerializer)
    def post(self, request, alert_id: int):
        return super().post(request, alert_id)

    def perform(self, alert, user, data):
        return services.assign_alert(alert, actor=user, assigned_to=data["assigned_to"])


class AlertResolveView(_AlertAction):
    input_serializer = ResolveSerializer

    @_action_schema("Resolve, or close as a false positive", ResolveSerializer)
    def post(self, request, alert_id: int):
        return super().post(request, alert_id)

    def perform(self, alert, user, data):
        return services.resolve_alert(
            alert,
            actor=user,
            resolution=data["resolution"],
            false_positive=data["false_positive"],
        )


class LinkedEventsPagination(StandardPagination):
    """Counts from the link table (an index-only count), not by joining every event."""

    known_count: int | None = None

    def django_paginator_class(self, object_list, per_page):
        paginator = DjangoPaginator(object_list, per_page)
        if self.known_count is not None:
            paginator.count = self.known_count  # a cached_property: set, it is never queried
        return paginator


@extend_schema_view(
    get=extend_schema(
        tags=["alerts"],
        summary="The events this alert counted, newest stored first (count = occurrence_count)",
    )
)
class AlertEventsView(generics.ListAPIView):
    permission_classes = [IsRoleUser]
    serializer_class = EventSerializer
    pagination_class = LinkedEventsPagination
    filter_backends: list = []

    def get_queryset(self):
        alert = get_object_or_404(Alert, pk=self.kwargs["alert_id"])
        self.paginator.known_count = context.link_count(alert)
        return context.alert_events(alert)


@extend_schema_view(
    get=extend_schema(
        tags=["alerts"], summary="Alerts on the same host, or sharing a user or source IP"
    )
)
class AlertRelatedView(generics.ListAPIView):
    permission_classes = [IsRoleUser]
    serializer_class = RelatedAlertSerializer
    pagination_class = None
    filter_backends: list = []

    def get_queryset(self):
        alert = get_object_or_404(Alert, pk=self.kwargs["alert_id"])
        return context.related_alerts(alert)


class AlertOccurrencesView(APIView):
    permission_classes = [IsRoleUser]

    @extend_schema(
        tags=["alerts"],
        summary="Its events per time bucket (the occurrences chart)",
        responses={200: OccurrencesSerializer, 404: None},
    )
    def get(self, request, alert_id: int):
        alert = get_object_or_404(Alert, pk=alert_id)
        return Response(OccurrencesSerializer(context.occurrences(alert)).data)


AlertCommentsView = comments_view(Alert, services.add_comment, "alerts")
