"""Triage API: where the active reward model confidently disagrees with the labelers (reviewers and admins)."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models.projects import Role
from annotation.permissions import project_for_role
from rewards.selectors.triage import CONFIDENT, project_triage


class TriageQuerySerializer(serializers.Serializer):
    confident = serializers.FloatField(
        required=False,
        default=CONFIDENT,
        min_value=0.5,
        max_value=0.999,
        help_text="The model's probability of the opposite order from which a disagreement is listed.",
    )


class TriagePairSerializer(serializers.Serializer):
    better = serializers.IntegerField(help_text="The candidate the labelers' consensus ranks higher.")
    worse = serializers.IntegerField()
    better_text = serializers.CharField()
    worse_text = serializers.CharField()
    model_probability = serializers.FloatField(help_text="The model's probability that `worse` is better.")


class TriageRankingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    labeler = serializers.CharField()
    order = serializers.JSONField()
    is_gold = serializers.BooleanField()


class TriagePromptSerializer(serializers.Serializer):
    prompt_id = serializers.IntegerField()
    title = serializers.CharField()
    confidence = serializers.FloatField()
    extra_rankings = serializers.IntegerField(help_text="Rankings asked for beyond the project's overlap.")
    consensus_order = serializers.JSONField()
    disagreements = TriagePairSerializer(many=True)
    rankings = TriageRankingSerializer(many=True)


class TriageLabelerSerializer(serializers.Serializer):
    labeler_id = serializers.IntegerField()
    username = serializers.CharField()
    model_agreement = serializers.FloatField(allow_null=True)
    model_pairs = serializers.IntegerField()
    peer_agreement = serializers.FloatField(allow_null=True)
    peer_pairs = serializers.IntegerField()


class TriageExcludedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    prompt_id = serializers.IntegerField()
    labeler = serializers.CharField()
    quality_state = serializers.CharField()


class TriageSerializer(serializers.Serializer):
    reward_model = serializers.IntegerField(allow_null=True)
    reward_model_version = serializers.IntegerField(allow_null=True)
    confident = serializers.FloatField()
    prompts = TriagePromptSerializer(many=True)
    labelers = TriageLabelerSerializer(many=True)
    excluded = TriageExcludedSerializer(many=True)


class ProjectTriageApi(APIView):
    """Prompts where the active reward model confidently disagrees with the labelers' consensus,
    labelers by lowest agreement with the model and with their peers, and excluded rankings."""

    @extend_schema(
        operation_id="project_triage", parameters=[TriageQuerySerializer], responses=TriageSerializer
    )
    def get(self, request, project_id: int) -> Response:
        project = project_for_role(user=request.user, project_id=project_id, minimum=Role.REVIEWER)
        query = TriageQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        return Response(
            TriageSerializer(
                project_triage(project=project, confident=query.validated_data["confident"])
            ).data
        )
