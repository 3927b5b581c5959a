"""Gold API: each labeler's standing on attention checks in a project (reviewers and admins read),
and lifting a pause or a failed qualification (admins)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.output import output_data
from annotation.models import Membership
from annotation.permissions import IsProjectReviewer
from annotation.selectors.gold import gold_standings
from annotation.services.gold import MAX_LIFT_REASON_CHARS, membership_pause_lift
from config.errors import NotFound


class StandingEventSerializer(serializers.Serializer):
    action = serializers.CharField()
    actor = serializers.CharField(allow_null=True)
    accuracy = serializers.FloatField(allow_null=True)
    reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class GoldStandingSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    standing = serializers.CharField(help_text="working, qualifying, not_qualified or paused.")
    qualification_status = serializers.CharField()
    qualification_done = serializers.IntegerField(help_text="Scored qualification tasks done.")
    qualified_at = serializers.DateTimeField(allow_null=True)
    gold_checks = serializers.IntegerField(help_text="Scored gold tasks done in all.")
    gold_accuracy = serializers.FloatField(
        allow_null=True, help_text="Pairwise agreement with gold over every scored gold task."
    )
    rolling_accuracy = serializers.FloatField(
        allow_null=True, help_text="The same over the latest pause_window gold tasks since the last lift."
    )
    rolling_checks = serializers.IntegerField()
    paused_at = serializers.DateTimeField(allow_null=True)
    pause_reason = serializers.CharField()
    pause_lifted_by = serializers.CharField(allow_null=True)
    pause_lifted_at = serializers.DateTimeField(allow_null=True)
    events = StandingEventSerializer(many=True)


class PauseLiftInputSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=MAX_LIFT_REASON_CHARS)


class GoldStandingListApi(GenericAPIView):
    """Per labeler: standing, gold accuracy (all and rolling), qualification, why they are paused.
    Paginated like every list."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(operation_id="gold_standing_list", responses={200: GoldStandingSerializer(many=True)})
    def get(self, request, project_id: int):
        page = self.paginate_queryset(gold_standings(project=self.project))
        return self.get_paginated_response([output_data(GoldStandingSerializer, row) for row in page or []])


class MembershipPauseLiftApi(APIView):
    """Let a paused or unqualified labeler back to real work (admins); recorded with who and why."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(
        operation_id="membership_pause_lift",
        request=PauseLiftInputSerializer,
        responses={200: GoldStandingSerializer},
    )
    def post(self, request, project_id: int, user_id: int):
        data = PauseLiftInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        membership = Membership.objects.filter(project=self.project, user_id=user_id).first()
        if membership is None:
            raise NotFound("no such member of this project", code="member_not_found")
        membership_pause_lift(
            membership_id=membership.pk, actor=request.user, reason=data.validated_data.get("reason", "")
        )
        row = next(row for row in gold_standings(project=self.project) if row["user_id"] == user_id)
        return Response(output_data(GoldStandingSerializer, row))
