"""REST endpoint of the real-time layer: one-time WebSocket tickets."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import IsRoleUser
from realtime.tickets import issue_ticket


class WebSocketTicketView(APIView):
    """`POST /api/v1/auth/ws-ticket`: a ticket for one `/ws/<channel>?ticket=` handshake."""

    # A user in no role group may not subscribe to anything, so gets no ticket either (403).
    permission_classes = [IsRoleUser]

    @extend_schema(
        request=None,
        responses={
            201: inline_serializer(
                "WebSocketTicket",
                {"ticket": serializers.CharField(), "expires_in": serializers.IntegerField()},
            )
        },
    )
    def post(self, request):
        ticket, ttl = issue_ticket(user=request.user, jti=request.auth.jti)
        return Response({"ticket": ticket, "expires_in": ttl}, status=status.HTTP_201_CREATED)
