"""GET /api/v1/users/: who an alert, incident or task can be assigned to (admin, analyst)."""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models import Prefetch, Q
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import roles
from accounts.permissions import CanTriage


class UserSerializer(serializers.Serializer):
    username = serializers.CharField()
    role = serializers.CharField(help_text="admin, analyst or viewer.")


class UserListView(APIView):
    permission_classes = [CanTriage]

    @extend_schema(
        tags=["auth"],
        summary="Active users with a role, by name (for assigning)",
        responses=UserSerializer(many=True),
    )
    def get(self, request):
        User = get_user_model()
        users = (
            User.objects.filter(is_active=True)
            .filter(Q(is_superuser=True) | Q(groups__name__in=roles.ROLES))
            .distinct()
            .order_by(User.USERNAME_FIELD)
            .prefetch_related(Prefetch("groups", queryset=Group.objects.only("name")))
        )
        rows = [{"username": user.get_username(), "role": _role(user)} for user in users]
        return Response(UserSerializer(rows, many=True).data)


def _role(user) -> str:
    """roles.get_role without a query per user (groups are prefetched)."""
    if user.is_superuser:
        return roles.ADMIN
    names = {group.name for group in user.groups.all()}
    return next(role for role in (roles.ADMIN, roles.ANALYST, roles.VIEWER) if role in names)
