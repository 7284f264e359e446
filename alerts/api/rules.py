"""Detection rules over REST: the list (filters), one rule with its text, its settings (admins),
its exceptions (admins write), and the ATT&CK coverage of the enabled rules.

Reads for every role, writes for admins only (`ReadRoleWriteAdmin`). Every write is one call
to `alerts.detection.services` (audited, and reloaded by every engine like enable/disable).
"""

from __future__ import annotations

from django.http import Http404
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.permissions import ReadRoleWriteAdmin
from alerts import attack, context
from alerts.api.serializers import TechniqueSerializer
from alerts.detection import rules as catalog
from alerts.detection import services
from alerts.detection.builtin import BUILTIN_BY_ID
from alerts.models import DetectionRule, RuleException, SigmaLevel, SigmaRule
from siem.api_common import StandardPagination
from siem.choices import Severity
from siem.strict_params import reject_unknown

TAGS = ["rules"]
LEVELS = SigmaLevel.values


# --- serializers -------------------------------------------------------------------------------
class HitsSerializer(serializers.Serializer):
    alerts_24h = serializers.IntegerField(help_text="Alerts raised, this hour and the 23 before.")
    events_24h = serializers.IntegerField(help_text="Events matched, this hour and the 23 before.")
    alerts_7d = serializers.IntegerField()
    events_7d = serializers.IntegerField()
    last_hit = serializers.DateTimeField(allow_null=True)


class ManagedRuleSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    source = serializers.CharField(help_text="`builtin` or `sigma`.")
    kind = serializers.CharField(help_text="`rule`, `correlation`, or `file` (a refused file).")
    enabled = serializers.BooleanField()
    loaded = serializers.BooleanField()
    error = serializers.CharField(help_text="Why a Sigma rule was not loaded.")
    level = serializers.CharField(help_text="The level its alerts are raised with now.")
    severity = serializers.IntegerField(allow_null=True, help_text="The same, 1–5.")
    default_level = serializers.CharField(help_text="The rule's own level.")
    level_override = serializers.CharField(help_text="The admin's override ('' if none).")
    threshold = serializers.IntegerField(allow_null=True)
    window_seconds = serializers.IntegerField(allow_null=True)
    path = serializers.CharField(help_text="A Sigma rule's file, in its rules directory.")
    techniques = TechniqueSerializer(many=True)
    exception_count = serializers.IntegerField()
    hits = HitsSerializer()


class RuleExceptionSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    conditions = serializers.JSONField(
        help_text='Field → value or list of values, all must hold: {"SubjectUserName": '
        '"svc_backup", "host": ["ws01", "ws02"]}. Exact, case-insensitive.'
    )

    class Meta:
        model = RuleException
        read_only_fields = ["id", "rule_id", "created_by", "created_at", "updated_at"]
        fields = [*read_only_fields[:2], "conditions", "comment", *read_only_fields[2:]]


class RuleDetailSerializer(ManagedRuleSerializer):
    text = serializers.CharField(help_text="The Sigma YAML, or a built-in rule's definition.")
    format = serializers.CharField(help_text="`yaml` (Sigma) or `text` (built-in).")
    exceptions = RuleExceptionSerializer(many=True)


class RuleFilterSerializer(serializers.Serializer):
    source = serializers.ChoiceField(choices=["builtin", "sigma"], required=False)
    enabled = serializers.BooleanField(required=False, allow_null=True, default=None)
    loaded = serializers.BooleanField(required=False, allow_null=True, default=None)
    level = serializers.ChoiceField(choices=LEVELS, required=False)
    technique = serializers.CharField(required=False, max_length=20)
    q = serializers.CharField(required=False, max_length=200)
    ordering = serializers.ChoiceField(
        choices=[*catalog.ORDERINGS, *(f"-{name}" for name in catalog.ORDERINGS)], required=False
    )

    def validate_technique(self, value: str) -> str:
        technique = attack.normalize(value)
        if technique is None:
            raise serializers.ValidationError("an ATT&CK technique id such as T1003 or T1003.001")
        return technique


class RuleUpdateSerializer(serializers.Serializer):
    """Built-in rules: enabled, threshold, window_seconds, severity (null: the default).
    Sigma rules: enabled, level (null or '': the rule's own)."""

    enabled = serializers.BooleanField(required=False)
    threshold = serializers.IntegerField(required=False, allow_null=True, min_value=1)
    window_seconds = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=7 * 86400
    )
    severity = serializers.ChoiceField(
        choices=Severity.values, required=False, allow_null=True, help_text="Built-in rules."
    )
    level = serializers.ChoiceField(
        choices=LEVELS, required=False, allow_null=True, allow_blank=True, help_text="Sigma rules."
    )


class RuleExceptionWriteSerializer(serializers.Serializer):
    conditions = serializers.JSONField()
    comment = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class TechniqueCoverageRuleSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    source = serializers.CharField()
    enabled = serializers.BooleanField()


class TechniqueCoverageSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    enabled = serializers.IntegerField(help_text="Enabled rules for this technique.")
    disabled = serializers.IntegerField()
    rules = TechniqueCoverageRuleSerializer(many=True)


class TacticCoverageSerializer(serializers.Serializer):
    tactic = serializers.CharField()
    covered = serializers.IntegerField(help_text="Techniques with at least one enabled rule.")
    techniques = TechniqueCoverageSerializer(many=True)


class CoverageSerializer(serializers.Serializer):
    techniques = serializers.IntegerField(help_text="Techniques some loaded rule names.")
    covered = serializers.IntegerField(help_text="Of those, with at least one enabled rule.")
    rules_enabled = serializers.IntegerField()
    rules_without_technique = serializers.IntegerField()
    tactics = TacticCoverageSerializer(many=True)


# --- views -------------------------------------------------------------------------------------
def _rule_or_404(rule_id: str) -> dict:
    rule = catalog.one_rule(rule_id)
    if rule is None:
        raise Http404("No such rule.")
    return rule


def _detail(rule_id: str) -> dict:
    rule = _rule_or_404(rule_id)
    document = context.rule_document(rule_id) or {}
    rule["text"] = document.get("text", "")
    rule["format"] = document.get("format", "yaml")
    rule["exceptions"] = RuleException.objects.filter(rule_id=rule_id).select_related("created_by")
    return RuleDetailSerializer(rule).data


_FILTERS = [
    OpenApiParameter("source", str, enum=["builtin", "sigma"]),
    OpenApiParameter("enabled", bool),
    OpenApiParameter("loaded", bool, description="Sigma rules that loaded (true) or not."),
    OpenApiParameter("level", str, enum=LEVELS, description="The level alerts are raised with."),
    OpenApiParameter("technique", str, description="T1003 (with sub-techniques) or T1003.001."),
    OpenApiParameter("q", str, description="Text in the id, name or file path."),
    OpenApiParameter(
        "ordering",
        str,
        description=f"One of {', '.join(catalog.ORDERINGS)}; `-` first for descending.",
    ),
]


class RuleListView(APIView):
    permission_classes = [ReadRoleWriteAdmin]
    pagination_class = StandardPagination

    @extend_schema(
        tags=TAGS,
        summary="Detection rules (built-in and Sigma) with settings, exceptions and hits",
        parameters=_FILTERS,
        responses={200: ManagedRuleSerializer(many=True)},
    )
    def get(self, request):
        paginator = self.pagination_class()
        known = {name for name in RuleFilterSerializer().fields}
        pages = {paginator.page_query_param, paginator.page_size_query_param, "format"}
        reject_unknown(request.query_params, known | pages)
        filters = RuleFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        data = filters.validated_data
        # Hits of every rule only to order by them; otherwise of the page's rules alone.
        by_hits = data.get("ordering", "").lstrip("-") in catalog.HIT_ORDERINGS
        rules = catalog.filter_rules(catalog.all_rules(with_hits=by_hits), data)
        page = paginator.paginate_queryset(rules, request, view=self)
        if not by_hits:
            catalog.attach_hits(page, only_these=True)
        return paginator.get_paginated_response(ManagedRuleSerializer(page, many=True).data)


class RuleCoverageView(APIView):
    permission_classes = [ReadRoleWriteAdmin]

    @extend_schema(
        tags=TAGS,
        summary="ATT&CK coverage: enabled and disabled rules per technique, by tactic",
        responses={200: CoverageSerializer},
    )
    def get(self, request):
        reject_unknown(request.query_params, {"format"})
        return Response(CoverageSerializer(catalog.coverage()).data)


class RuleDetailView(APIView):
    """GET /rules/{rule_id}/: a rule, its text (to read why an alert fired), its settings."""

    permission_classes = [ReadRoleWriteAdmin]

    @extend_schema(
        tags=TAGS,
        summary="A detection rule (built-in or Sigma) with its text, settings and exceptions",
        responses={200: RuleDetailSerializer, 404: None},
    )
    def get(self, request, rule_id: str):
        return Response(_detail(rule_id))

    @extend_schema(
        tags=TAGS,
        summary="Enable or disable a rule, override its level (admins)",
        request=RuleUpdateSerializer,
        responses={200: RuleDetailSerializer, 400: None, 404: None},
    )
    def patch(self, request, rule_id: str):
        _rule_or_404(rule_id)
        if not isinstance(request.data, dict):
            raise ValidationError({"detail": "a JSON object"})
        builtin = rule_id in BUILTIN_BY_ID
        allowed = (
            {"enabled", "threshold", "window_seconds", "severity"}
            if builtin
            else {"enabled", "level"}
        )
        unknown = sorted(set(request.data) - allowed)
        if unknown:
            kind = "a built-in" if builtin else "a Sigma"
            raise ValidationError({name: [f"not a setting of {kind} rule"] for name in unknown})
        serializer = RuleUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        if builtin:
            row = DetectionRule.objects.get(rule_id=rule_id)
            services.update_detection_rule(row, actor=request.user, **data)
        else:
            row = SigmaRule.objects.get(rule_id=rule_id)
            if "enabled" in data:
                services.set_sigma_rules_enabled([row], enabled=data["enabled"], actor=request.user)
            if "level" in data:
                services.set_sigma_rule_level(row, level=data["level"] or "", actor=request.user)
        return Response(_detail(rule_id))


class RuleExceptionListView(APIView):
    permission_classes = [ReadRoleWriteAdmin]

    @extend_schema(
        tags=TAGS,
        summary="A rule's exceptions",
        responses={200: RuleExceptionSerializer(many=True), 404: None},
    )
    def get(self, request, rule_id: str):
        _rule_or_404(rule_id)
        rows = RuleException.objects.filter(rule_id=rule_id).select_related("created_by")
        return Response(RuleExceptionSerializer(rows, many=True).data)

    @extend_schema(
        tags=TAGS,
        summary="Add an exception: events matching its conditions never alert for this rule",
        request=RuleExceptionWriteSerializer,
        responses={201: RuleExceptionSerializer, 400: None, 404: None},
    )
    def post(self, request, rule_id: str):
        _rule_or_404(rule_id)
        serializer = RuleExceptionWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        exception = services.add_rule_exception(
            rule_id, actor=request.user, **serializer.validated_data
        )
        return Response(RuleExceptionSerializer(exception).data, status=status.HTTP_201_CREATED)


class RuleExceptionDetailView(APIView):
    permission_classes = [ReadRoleWriteAdmin]

    def _get(self, rule_id: str, exception_id: int) -> RuleException:
        return get_object_or_404(RuleException, pk=exception_id, rule_id=rule_id)

    @extend_schema(tags=TAGS, summary="One exception", responses={200: RuleExceptionSerializer})
    def get(self, request, rule_id: str, exception_id: int):
        return Response(RuleExceptionSerializer(self._get(rule_id, exception_id)).data)

    @extend_schema(
        tags=TAGS,
        summary="Change an exception's conditions or comment",
        request=RuleExceptionWriteSerializer(partial=True),
        responses={200: RuleExceptionSerializer, 400: None, 404: None},
    )
    def patch(self, request, rule_id: str, exception_id: int):
        exception = self._get(rule_id, exception_id)
        serializer = RuleExceptionWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        extra = sorted(set(request.data) - set(serializer.fields))
        if extra:
            raise ValidationError({name: ["this field cannot be changed"] for name in extra})
        exception = services.update_rule_exception(
            exception, actor=request.user, **serializer.validated_data
        )
        return Response(RuleExceptionSerializer(exception).data)

    @extend_schema(tags=TAGS, summary="Remove an exception", responses={204: None, 404: None})
    def delete(self, request, rule_id: str, exception_id: int):
        services.delete_rule_exception(self._get(rule_id, exception_id), actor=request.user)
        return Response(status=status.HTTP_204_NO_CONTENT)
