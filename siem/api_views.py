"""Project-level REST views: the dashboard statistics."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsRoleUser
from siem.statistics import compute_statistics


def _counts(name: str, keys: list[str]):
    return inline_serializer(name, {key: serializers.IntegerField() for key in keys})


StatisticsSerializer = inline_serializer(
    "Statistics",
    {
        "events": _counts(
            "EventStatistics", ["total_24h", "last_hour", "high_severity", "ai_attacks"]
        ),
        "alerts": _counts("AlertStatistics", ["new", "critical"]),
        "incidents": _counts("IncidentStatistics", ["open"]),
        "agents": _counts("AgentStatistics", ["online", "offline", "total"]),
        "updated_at": serializers.DateTimeField(),
    },
)


class DashboardStatisticsView(APIView):
    permission_classes = [IsRoleUser]

    @extend_schema(
        tags=["dashboard"],
        summary="Dashboard counters: exactly the data of the `statistics` WebSocket message",
        responses=StatisticsSerializer,
    )
    def get(self, request):
        return Response(compute_statistics())
