"""Integrations over REST, for admins only: CRUD, a test message, the delivery log.

Every write is one call to `integrations.services`; its ValidationError becomes a field-level
400 (siem.api.exception_handler).
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import generics, status
from rest_framework.permissions import BasePermission
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import roles
from accounts.permissions import IsRoleUser, request_role
from integrations import services
from integrations.api.serializers import DeliverySerializer, IntegrationSerializer
from integrations.models import Delivery, Integration
from siem.api_common import StandardPagination

TAGS = ["integrations"]


class IsAdminRole(BasePermission):
    message = "Only the admin role manages integrations."

    def has_permission(self, request, view) -> bool:
        role = request_role(request)
        if role is None:
            self.message = IsRoleUser.message
        return role == roles.ADMIN


@extend_schema_view(
    get=extend_schema(tags=TAGS, summary="List integrations (secrets are never returned)"),
    post=extend_schema(
        tags=TAGS,
        summary="Create an integration",
        request=IntegrationSerializer,
        responses={201: IntegrationSerializer},
    ),
)
class IntegrationListView(generics.ListAPIView):
    permission_classes = [IsAdminRole]
    serializer_class = IntegrationSerializer
    pagination_class = StandardPagination
    queryset = Integration.objects.order_by("name")
    filter_backends: list = []

    def post(self, request):
        serializer = IntegrationSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        integration = services.create_integration(**serializer.validated_data, actor=request.user)
        return Response(IntegrationSerializer(integration).data, status=status.HTTP_201_CREATED)


@extend_schema_view(
    get=extend_schema(tags=TAGS, summary="One integration"),
    patch=extend_schema(
        tags=TAGS,
        summary="Change an integration (omit `secret` to keep it)",
        request=IntegrationSerializer,
        responses={200: IntegrationSerializer},
    ),
    delete=extend_schema(tags=TAGS, summary="Delete an integration and its delivery log"),
)
class IntegrationDetailView(generics.RetrieveAPIView):
    permission_classes = [IsAdminRole]
    serializer_class = IntegrationSerializer
    queryset = Integration.objects.all()
    lookup_url_kwarg = "integration_id"

    def patch(self, request, integration_id: int):
        integration = get_object_or_404(Integration, pk=integration_id)
        serializer = IntegrationSerializer(integration, data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        integration = services.update_integration(
            integration, actor=request.user, **serializer.validated_data
        )
        return Response(IntegrationSerializer(integration).data)

    def delete(self, request, integration_id: int):
        integration = get_object_or_404(Integration, pk=integration_id)
        services.delete_integration(integration, actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)


class IntegrationTestView(APIView):
    permission_classes = [IsAdminRole]

    @extend_schema(
        tags=TAGS,
        summary="Queue a test message (the delivery log shows the outcome)",
        request=None,
        responses={202: DeliverySerializer},
    )
    def post(self, request, integration_id: int):
        integration = get_object_or_404(Integration, pk=integration_id)
        delivery = services.send_test(integration, actor=request.user)
        return Response(DeliverySerializer(delivery).data, status=status.HTTP_202_ACCEPTED)


@extend_schema_view(
    get=extend_schema(tags=TAGS, summary="Delivery attempts of one integration, newest first"),
)
class IntegrationDeliveriesView(generics.ListAPIView):
    permission_classes = [IsAdminRole]
    serializer_class = DeliverySerializer
    pagination_class = StandardPagination
    filter_backends: list = []

    def get_queryset(self):
        integration = get_object_or_404(Integration, pk=self.kwargs["integration_id"])
        return Delivery.objects.filter(integration=integration).order_by("-created_at", "-id")
