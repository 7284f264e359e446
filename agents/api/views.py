"""Agent endpoints: enrollment, heartbeats and event shipping; the agent list for users.

Enrollment needs the shared AGENT_ENROLLMENT_KEY (empty: enrollment disabled). Heartbeat and
events need `Authorization: Agent <agent_token>` and accept nothing else; the list and detail
are for users (any role) and refuse agent tokens.
"""

from __future__ import annotations

import hmac
import logging
from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsRoleUser
from agents import enrollment_throttle, services
from agents.api.serializers import (
    AgentSerializer,
    AgentStatusSerializer,
    HeartbeatSerializer,
    IngestResultSerializer,
    RegisteredSerializer,
    RegisterSerializer,
)
from agents.authentication import AgentTokenAuthentication, IsAgent
from agents.models import Agent, AgentStatus
from events.ingest import prepare
from events.services import create_events
from siem.api_common import StandardPagination
from siem.client_address import client_ip
from siem.concurrency import BUSY_RESPONSE, ingest_slot
from siem.throttle import Blocked

logger = logging.getLogger(__name__)

_DETAIL = inline_serializer("AgentDetailMessage", {"detail": serializers.CharField()})
# Shipping events counts as being alive; refresh `last_seen` at most this often per agent.
SEEN_REFRESH = timedelta(seconds=15)


def _forbidden(message: str) -> Response:
    return Response({"detail": message}, status=status.HTTP_403_FORBIDDEN)


class RegisterView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["agents"],
        summary="Enroll an agent with the enrollment key",
        description=(
            "Returns the agent's id and token (shown once; stored hashed). Re-enrolling a known "
            "hostname keeps the agent id and replaces its token. 403 when enrollment is "
            "disabled (AGENT_ENROLLMENT_KEY empty), the key is wrong, or the host's agent was "
            "revoked by an administrator."
        ),
        request=RegisterSerializer,
        responses={
            201: RegisteredSerializer,
            400: OpenApiResponse(description="Bad fields."),
            403: OpenApiResponse(_DETAIL, description="Enrollment disabled or refused."),
            429: OpenApiResponse(_DETAIL, description="Too many wrong keys from this address."),
        },
        auth=[],
    )
    def post(self, request):
        expected = settings.AGENT_ENROLLMENT_KEY
        if not expected:
            return _forbidden(
                "Agent enrollment is disabled on this server (AGENT_ENROLLMENT_KEY is not set)."
            )
        address = client_ip(request)
        data = request.data
        if not isinstance(data, dict):
            return _bad_request("Expected a JSON object with enrollment_key and hostname.")
        # Charged before the key is compared, atomically (agents/enrollment_throttle.py).
        verdict = enrollment_throttle.attempt(address)
        if isinstance(verdict, Blocked):
            return Response(
                {
                    "detail": "Too many wrong enrollment keys from this address. "
                    f"Try again in {verdict.retry_after} seconds."
                },
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(verdict.retry_after)},
            )
        offered = data.get("enrollment_key")
        if not isinstance(offered, str) or not hmac.compare_digest(
            offered.encode(), expected.encode()
        ):
            # Never the key itself: only who tried, from where.
            logger.warning(
                "Agent enrollment refused: wrong enrollment key for host %r from %s",
                str(data.get("hostname", ""))[:255],
                address,
            )
            return _forbidden("Invalid enrollment key.")
        enrollment_throttle.succeeded(verdict)
        serializer = RegisterSerializer(data=data)
        serializer.is_valid(raise_exception=True)
        fields = serializer.validated_data
        try:
            agent, token, re_enrolled = services.enroll_agent(
                hostname=fields["hostname"],
                ip_address=fields.get("ip_address") or address,
                os=fields.get("os", ""),
                version=fields.get("version", ""),
            )
        except services.EnrollmentRefused as exc:
            return _forbidden(str(exc))
        return Response(
            {
                "agent_id": str(agent.agent_id),
                "agent_token": token,
                "hostname": agent.hostname,
                "re_enrolled": re_enrolled,
                "batch_max": settings.AGENT_BATCH_MAX,
                "heartbeat_interval_sec": max(5, settings.AGENT_OFFLINE_AFTER_SEC // 3),
            },
            status=status.HTTP_201_CREATED,
        )


class AgentOnlyView(APIView):
    authentication_classes = [AgentTokenAuthentication]
    permission_classes = [IsAgent]


class HeartbeatView(AgentOnlyView):
    @extend_schema(
        tags=["agents"],
        summary="Heartbeat: the agent is alive",
        description="Marks the agent online (broadcast if it was offline), last_seen = now.",
        request=HeartbeatSerializer,
        responses={200: AgentStatusSerializer, 401: OpenApiResponse(_DETAIL)},
    )
    def post(self, request):
        serializer = HeartbeatSerializer(data=request.data if request.data else {})
        serializer.is_valid(raise_exception=True)
        agent = services.heartbeat(
            request.auth,
            ip_address=serializer.validated_data.get("ip_address") or None,
            version=serializer.validated_data.get("version") or None,
        )
        return Response(
            {
                "agent_id": str(agent.agent_id),
                "status": agent.status,
                "last_seen": agent.last_seen,
                "server_time": timezone.now(),
            }
        )


class AgentEventsView(AgentOnlyView):
    @extend_schema(
        tags=["agents"],
        summary="Ship a batch of events",
        description=(
            'A JSON array of events (or `{"events": [...]}`), at most AGENT_BATCH_MAX '
            "(default 1000). Each item is our flat event (`computer`, `event_code`, `severity`, "
            "`message`, `source_type`, optional `timestamp`, `raw`, `record_id`) or a Windows "
            "record as exported (flat evtx JSON, Get-WinEvent | ConvertTo-Json, nested "
            "Event.System/EventData, Winlogbeat). `computer` defaults to the agent's hostname. "
            "An item whose record id (`record_id` or Windows `EventRecordID`) this agent already "
            "delivered is counted in `duplicates` and not stored again, so a retried batch is "
            "safe. Any invalid item rejects the whole batch (400, errors by index)."
        ),
        request=inline_serializer(
            "AgentEventBatch", {"events": serializers.ListField(child=serializers.DictField())}
        ),
        responses={
            201: IngestResultSerializer,
            200: OpenApiResponse(IngestResultSerializer, description="Every item a duplicate."),
            400: OpenApiResponse(description="Not a list, empty, too many, or invalid items."),
            401: OpenApiResponse(_DETAIL),
            413: OpenApiResponse(description="Body larger than MAX_REQUEST_BODY_BYTES."),
            503: BUSY_RESPONSE,
        },
    )
    def post(self, request):
        with ingest_slot():
            return self._store(request)

    def _store(self, request):
        agent: Agent = request.auth
        records = request.data
        if isinstance(records, dict) and "events" in records:
            records = records["events"]
        if not isinstance(records, list):
            return _bad_request('Expected a JSON array of events (or {"events": [...]}).')
        if not records:
            return _bad_request("The batch is empty.")
        limit = settings.AGENT_BATCH_MAX
        if len(records) > limit:
            return _bad_request(
                f"Too many events: {len(records)} > {limit} (AGENT_BATCH_MAX); split the batch."
            )
        prepared = prepare(records, default_computer=agent.hostname)
        if prepared.errors:
            return Response(
                {
                    "detail": f"{len(prepared.errors)} of {len(records)} events are invalid; "
                    "nothing was stored.",
                    "errors": [
                        {"index": index, "errors": errors} for index, errors in prepared.errors
                    ],
                },
                status=status.HTTP_400_BAD_REQUEST,
            )
        result = create_events(prepared.items, agent=agent)
        _note_alive(agent)
        return Response(
            {
                "created": len(result.created),
                "duplicates": result.duplicates,
                "event_ids": [event.event_id for event in result.created],
            },
            status=status.HTTP_201_CREATED if result.created else status.HTTP_200_OK,
        )


def _bad_request(message: str) -> Response:
    return Response({"detail": message}, status=status.HTTP_400_BAD_REQUEST)


def _note_alive(agent: Agent) -> None:
    """An agent that ships is alive: heartbeat on its behalf, at most every SEEN_REFRESH."""
    now = timezone.now()
    if (
        agent.status != AgentStatus.ONLINE
        or agent.last_seen is None
        or now - agent.last_seen > SEEN_REFRESH
    ):
        services.heartbeat(agent)


@extend_schema(tags=["agents"], summary="List agents")
class AgentListView(generics.ListAPIView):
    permission_classes = [IsRoleUser]
    serializer_class = AgentSerializer
    pagination_class = StandardPagination
    queryset = Agent.objects.all()
    filterset_fields = ["status", "os", "version"]
    search_fields = ["hostname", "ip_address"]
    ordering_fields = ["hostname", "last_seen", "registered_at", "status"]
    ordering = ["hostname"]


@extend_schema(tags=["agents"], summary="One agent")
class AgentDetailView(generics.RetrieveAPIView):
    permission_classes = [IsRoleUser]
    serializer_class = AgentSerializer
    queryset = Agent.objects.all()
    lookup_field = "agent_id"
