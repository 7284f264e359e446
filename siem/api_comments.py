"""GET, POST <alerts|incidents>/{id}/comments/: one view for both apps' comments."""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_view
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import ReadRoleWriteTriage
from alerts.api.serializers import CommentInputSerializer, CommentSerializer


class CommentsView(APIView):
    """Subclasses name the commented model and the service that comments on it."""

    permission_classes = [ReadRoleWriteTriage]
    model: type
    add_comment = None  # services.add_comment(owner, *, actor, text)

    def get(self, request, **kwargs):
        owner = get_object_or_404(self.model, pk=next(iter(kwargs.values())))
        return Response(CommentSerializer(owner.comments.all(), many=True).data)

    def post(self, request, **kwargs):
        owner = get_object_or_404(self.model, pk=next(iter(kwargs.values())))
        serializer = CommentInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        comment = type(self).add_comment(
            owner, actor=request.user, text=serializer.validated_data["text"]
        )
        return Response(CommentSerializer(comment).data, status=status.HTTP_201_CREATED)


def comments_view(model: type, add_comment, tag: str) -> type[CommentsView]:
    """The comments view of `model`, documented under `tag`."""
    view = type(
        f"{model.__name__}CommentsView",
        (CommentsView,),
        {"model": model, "add_comment": staticmethod(add_comment)},
    )
    return extend_schema_view(
        get=extend_schema(
            tags=[tag], summary="Comments, oldest first", responses=CommentSerializer(many=True)
        ),
        post=extend_schema(
            tags=[tag],
            summary="Comment (broadcast as commented)",
            request=CommentInputSerializer,
            responses={201: CommentSerializer},
        ),
    )(view)
