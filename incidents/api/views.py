"""Incidents: list, create, read (with timeline), edit, escalate, close, add alerts; comments,
tasks and observables — through the services."""

from __future__ import annotations

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import CanTriage, ReadRoleWriteTriage
from alerts.context import event_entities
from alerts.models import Alert
from events.models import SecurityEvent
from incidents import services
from incidents.api.filters import IncidentFilter
from incidents.api.serializers import (
    AddAlertsSerializer,
    CloseSerializer,
    EscalateSerializer,
    IncidentCreateSerializer,
    IncidentDetailSerializer,
    IncidentSerializer,
    IncidentUpdateSerializer,
    ObservableSerializer,
    TaskCreateSerializer,
    TaskSerializer,
    TaskUpdateSerializer,
)
from incidents.models import Incident, IncidentTask, ObservableKind
from siem.api_comments import comments_view
from siem.api_common import StandardPagination
from siem.strict_params import StrictQueryParams

_CONFLICT = OpenApiResponse(description="Illegal status change (e.g. closing a closed incident).")


def incident_queryset():
    return Incident.objects.select_related("assigned_to").prefetch_related(
        Prefetch("alerts", queryset=Alert.objects.only("alert_id").order_by())
    )


def _detail(incident: Incident, **kwargs) -> Response:
    fresh = incident_queryset().prefetch_related("activities").get(pk=incident.pk)
    return Response(IncidentDetailSerializer(fresh).data, **kwargs)


@extend_schema_view(
    get=extend_schema(tags=["incidents"], summary="List incidents, newest first"),
    post=extend_schema(
        tags=["incidents"],
        summary="Open an incident",
        request=IncidentCreateSerializer,
        responses={201: IncidentDetailSerializer},
    ),
)
class IncidentListView(StrictQueryParams, generics.ListAPIView):
    permission_classes = [ReadRoleWriteTriage]
    serializer_class = IncidentSerializer
    pagination_class = StandardPagination
    filterset_class = IncidentFilter
    search_fields = ["title", "description", "resolution"]
    ordering_fields = ["created_at", "updated_at", "severity", "status", "incident_id"]
    ordering = ["-created_at", "-incident_id"]

    def get_queryset(self):
        return incident_queryset()

    def post(self, request):
        serializer = IncidentCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        incident = services.create_incident(**serializer.validated_data, actor=request.user)
        return _detail(incident, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(tags=["incidents"], summary="One incident with its activity timeline"),
    patch=extend_schema(
        tags=["incidents"],
        summary="Edit an incident or change its status",
        request=IncidentUpdateSerializer,
        responses={200: IncidentDetailSerializer, 409: _CONFLICT},
    ),
)
class IncidentDetailView(generics.RetrieveAPIView):
    permission_classes = [ReadRoleWriteTriage]
    serializer_class = IncidentDetailSerializer
    lookup_field = "incident_id"

    def get_queryset(self):
        return incident_queryset().prefetch_related("activities")

    def patch(self, request, incident_id: int):
        incident = get_object_or_404(Incident, pk=incident_id)
        serializer = IncidentUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        incident = services.update_incident(
            incident, actor=request.user, **serializer.validated_data
        )
        return _detail(incident)


class IncidentEscalateView(APIView):
    permission_classes = [CanTriage]

    @extend_schema(
        tags=["incidents"],
        summary="Escalate (raises the escalation level)",
        request=EscalateSerializer,
        responses={200: IncidentDetailSerializer, 404: None, 409: _CONFLICT},
    )
    def post(self, request, incident_id: int):
        incident = get_object_or_404(Incident, pk=incident_id)
        serializer = EscalateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        incident = services.escalate_incident(
            incident, actor=request.user, reason=serializer.validated_data["reason"]
        )
        return _detail(incident)


class IncidentCloseView(APIView):
    permission_classes = [CanTriage]

    @extend_schema(
        tags=["incidents"],
        summary="Close; optionally resolve its open alerts with the same resolution",
        request=CloseSerializer,
        responses={200: IncidentDetailSerializer, 404: None, 409: _CONFLICT},
    )
    def post(self, request, incident_id: int):
        incident = get_object_or_404(Incident, pk=incident_id)
        serializer = CloseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        incident = services.close_incident(
            incident, actor=request.user, **serializer.validated_data
        )
        return _detail(incident)


def _incident(incident_id: int) -> Incident:
    return get_object_or_404(Incident, pk=incident_id)


class IncidentAlertsView(APIView):
    permission_classes = [CanTriage]

    @extend_schema(
        tags=["incidents"],
        summary="Add alerts to the incident (keeps the ones it has)",
        request=AddAlertsSerializer,
        responses={200: IncidentDetailSerializer, 404: None},
    )
    def post(self, request, incident_id: int):
        incident = _incident(incident_id)
        serializer = AddAlertsSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        incident = services.add_alerts(
            incident, actor=request.user, alerts=serializer.validated_data["alerts"]
        )
        return _detail(incident)


IncidentCommentsView = comments_view(Incident, services.add_comment, "incidents")


class IncidentTasksView(APIView):
    permission_classes = [ReadRoleWriteTriage]

    @extend_schema(
        tags=["incidents"], summary="Tasks, oldest first", responses=TaskSerializer(many=True)
    )
    def get(self, request, incident_id: int):
        incident = _incident(incident_id)
        tasks = incident.tasks.select_related("assigned_to")
        return Response(TaskSerializer(tasks, many=True).data)

    @extend_schema(
        tags=["incidents"],
        summary="Add a task",
        request=TaskCreateSerializer,
        responses={201: TaskSerializer},
    )
    def post(self, request, incident_id: int):
        incident = _incident(incident_id)
        serializer = TaskCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task = services.add_task(incident, actor=request.user, **serializer.validated_data)
        return Response(TaskSerializer(task).data, status=status.HTTP_201_CREATED)


class TaskDetailView(APIView):
    permission_classes = [CanTriage]

    @extend_schema(
        tags=["incidents"],
        summary="Change a task: status open/done, assignee, title",
        request=TaskUpdateSerializer,
        responses={200: TaskSerializer, 404: None},
    )
    def patch(self, request, task_id: int):
        task = get_object_or_404(IncidentTask.objects.select_related("incident"), pk=task_id)
        serializer = TaskUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        task = services.update_task(task, actor=request.user, **serializer.validated_data)
        return Response(TaskSerializer(task).data)


class IncidentObservablesView(APIView):
    permission_classes = [ReadRoleWriteTriage]

    @extend_schema(
        tags=["incidents"],
        summary="Observables: its alerts' entities, then the ones added by hand",
        responses=ObservableSerializer(many=True),
    )
    def get(self, request, incident_id: int):
        incident = _incident(incident_id)
        return Response(ObservableSerializer(observables(incident), many=True).data)

    @extend_schema(
        tags=["incidents"],
        summary="Add an observable by hand",
        request=ObservableSerializer,
        responses={201: ObservableSerializer},
    )
    def post(self, request, incident_id: int):
        incident = _incident(incident_id)
        serializer = ObservableSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        item = services.add_observable(incident, actor=request.user, **serializer.validated_data)
        data = {"kind": item.kind, "value": item.value, "source": "manual"}
        return Response(ObservableSerializer(data).data, status=status.HTTP_201_CREATED)


# Entity kinds of alerts' events → observable kinds.
_ENTITY_KINDS = (("hosts", ObservableKind.HOST), ("users", ObservableKind.USER))
_ENTITY_KINDS += (("source_ips", ObservableKind.IP),)


def observables(incident: Incident) -> list[dict]:
    """Its alerts' hosts, users and IPs (derived each time: they follow the alerts), then the
    manual ones not already among them."""
    events = SecurityEvent.objects.filter(alerts__incidents=incident).order_by()
    found = event_entities(events)
    hostnames = incident.alerts.exclude(hostname="").order_by("hostname").distinct()
    named = hostnames.values_list("hostname", flat=True)
    found["hosts"] = list(dict.fromkeys([*named, *found["hosts"]]))
    rows = [
        {"kind": kind, "value": value, "source": "alert"}
        for name, kind in _ENTITY_KINDS
        for value in found[name]
    ]
    seen = {(row["kind"], row["value"]) for row in rows}
    rows.extend(
        {"kind": item.kind, "value": item.value, "source": "manual"}
        for item in incident.observables.all()
        if (item.kind, item.value) not in seen
    )
    return rows
