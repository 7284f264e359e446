"""Login, logout and the current user. Login writes a session row through the service."""

from __future__ import annotations

import logging

from django.contrib.auth import authenticate, user_logged_in
from drf_spectacular.utils import OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import login_throttle
from accounts.api.serializers import LoginSerializer, MeSerializer, TokenSerializer
from accounts.permissions import request_role
from accounts.services import issue_access_token, record_failed_login, revoke_session
from siem.client_address import client_ip
from siem.throttle import Blocked

logger = logging.getLogger(__name__)

_DETAIL = inline_serializer("Detail", {"detail": serializers.CharField()})


class LoginView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]

    @extend_schema(
        tags=["auth"],
        summary="Log in and get an access token",
        request=LoginSerializer,
        responses={
            200: TokenSerializer,
            400: OpenApiResponse(description="Missing or malformed fields."),
            401: OpenApiResponse(_DETAIL, description="Bad credentials or inactive user."),
            429: OpenApiResponse(_DETAIL, description="Too many failed logins; see Retry-After."),
        },
        auth=[],
    )
    def post(self, request):
        serializer = LoginSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        username = serializer.validated_data["username"]
        password = serializer.validated_data["password"]
        ip = client_ip(request)
        # Charged before the password is checked, atomically: concurrent guesses cannot all
        # pass a check that only later counts them (accounts/login_throttle.py).
        verdict = login_throttle.attempt(username, ip)
        if isinstance(verdict, Blocked):
            logger.warning("Login throttled for %s (%s)", verdict.scope, ip)
            return Response(
                {
                    "detail": "Too many failed login attempts. "
                    f"Try again in {verdict.retry_after} seconds."
                },
                status=status.HTTP_429_TOO_MANY_REQUESTS,
                headers={"Retry-After": str(verdict.retry_after)},
            )
        # ModelBackend refuses inactive users, and hashes anyway for unknown names (timing).
        user = authenticate(request._request, username=username, password=password)
        if user is None:
            record_failed_login(username, ip, lockouts=verdict.reached)
            return Response(
                {"detail": "Invalid username or password."},
                status=status.HTTP_401_UNAUTHORIZED,
                headers={"WWW-Authenticate": 'Bearer realm="api"'},
            )
        login_throttle.succeeded(verdict)
        token, _session = issue_access_token(
            user, client_ip=ip, user_agent=request.META.get("HTTP_USER_AGENT", "")
        )
        # Django's own receiver records last_login, as for an admin login.
        user_logged_in.send(sender=user.__class__, request=request._request, user=user)
        return Response(TokenSerializer.for_token(token))


class LogoutView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(
        tags=["auth"],
        summary="Revoke this token's session",
        request=None,
        responses={204: None, 401: OpenApiResponse(description="No valid token.")},
    )
    def post(self, request):
        revoke_session(request.auth.session, reason="logout", actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class MeView(APIView):
    # Any logged-in user may see who they are, including one without a role (role: null).
    permission_classes = [IsAuthenticated]

    @extend_schema(tags=["auth"], summary="The current user and role", responses=MeSerializer)
    def get(self, request):
        user = request.user
        return Response(
            MeSerializer(
                {
                    "username": user.get_username(),
                    "role": request_role(request),
                    "email": user.email,
                    "is_superuser": user.is_superuser,
                }
            ).data
        )
