"""Incidents: list, create, read (with timeline), edit, escalate, close — through the services."""

from __future__ import annotations

from django.db.models import Prefetch
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import CanTriage, ReadRoleWriteTriage
from alerts.models import Alert
from incidents import services
from incidents.api.filters import IncidentFilter
from incidents.api.serializers import (
    CloseSerializer,
    EscalateSerializer,
    IncidentCreateSerializer,
    IncidentDetailSerializer,
    IncidentSerializer,
    IncidentUpdateSerializer,
)
from incidents.models import Incident
from siem.api_common import StandardPagination

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
class IncidentListView(generics.ListAPIView):
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
        summary="Close",
        request=CloseSerializer,
        responses={200: IncidentDetailSerializer, 404: None, 409: _CONFLICT},
    )
    def post(self, request, incident_id: int):
        incident = get_object_or_404(Incident, pk=incident_id)
        serializer = CloseSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        incident = services.close_incident(
            incident, actor=request.user, resolution=serializer.validated_data["resolution"]
        )
        return _detail(incident)
