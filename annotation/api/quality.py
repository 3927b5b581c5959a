"""Quality API: agreement, consensus, per-labeler statistics, dashboard series, gold rankings.

Reviewers and admins of a project read all of it; only admins mark gold.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.serializers_quality import (
    AgreementOverTimeSerializer,
    DaysQuerySerializer,
    LabelerStatsSerializer,
    PromptAgreementSerializer,
    PromptMoreRankingsInputSerializer,
    PromptMoreRankingsOutputSerializer,
    QualityReasonInputSerializer,
    QualitySummarySerializer,
    QueueDepthSerializer,
    RankingGoldInputSerializer,
    RankingGoldOutputSerializer,
    RankingQualityOutputSerializer,
    ThroughputSerializer,
)
from annotation.models import Prompt, Ranking
from annotation.models.projects import Role
from annotation.permissions import IsProjectReviewer, project_for_role
from annotation.selectors import stats
from annotation.services.quality import (
    prompt_more_rankings,
    ranking_exclude,
    ranking_gold_set,
    ranking_restore,
)
from config.errors import NotFound


def _days(request) -> int:
    query = DaysQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data["days"]


class QualitySummaryApi(APIView):
    """Project-wide agreement (pairwise and Kendall's tau), gold agreement and counts."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(operation_id="quality_summary", responses={200: QualitySummarySerializer})
    def get(self, request, project_id: int):
        return Response(QualitySummarySerializer(stats.project_quality_summary(project=self.project)).data)


class LabelerStatsListApi(GenericAPIView):
    """Per-labeler statistics: tasks, time, skips, agreement with others and with gold, flags."""

    permission_classes = [IsProjectReviewer]
    serializer_class = LabelerStatsSerializer

    @extend_schema(operation_id="quality_labelers", responses=LabelerStatsSerializer(many=True))
    def get(self, request, project_id: int):
        page = self.paginate_queryset(stats.labeler_stats(project=self.project))
        return self.get_paginated_response(LabelerStatsSerializer(page, many=True).data)


class PromptAgreementListApi(GenericAPIView):
    """Agreement and ranked-pairs consensus of each prompt ranked at least twice."""

    permission_classes = [IsProjectReviewer]
    serializer_class = PromptAgreementSerializer

    @extend_schema(operation_id="quality_prompts", responses=PromptAgreementSerializer(many=True))
    def get(self, request, project_id: int):
        page = self.paginate_queryset(stats.prompts_with_overlap(project=self.project))
        rows = stats.prompt_agreements(prompts=list(page))
        return self.get_paginated_response(PromptAgreementSerializer(rows, many=True).data)


class ThroughputApi(APIView):
    """Rankings and demonstrations per day."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(
        operation_id="quality_throughput",
        parameters=[DaysQuerySerializer],
        responses={200: ThroughputSerializer},
    )
    def get(self, request, project_id: int):
        data = stats.throughput(project=self.project, days=_days(request))
        return Response(ThroughputSerializer(data).data)


class AgreementOverTimeApi(APIView):
    """Pairwise agreement per day."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(
        operation_id="quality_agreement_over_time",
        parameters=[DaysQuerySerializer],
        responses={200: AgreementOverTimeSerializer},
    )
    def get(self, request, project_id: int):
        data = stats.agreement_over_time(project=self.project, days=_days(request))
        return Response(AgreementOverTimeSerializer(data).data)


class QueueDepthApi(APIView):
    """Prompts waiting for candidates, demonstrations and rankings."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(operation_id="quality_queue_depth", responses={200: QueueDepthSerializer})
    def get(self, request, project_id: int):
        return Response(QueueDepthSerializer(stats.queue_depth(project=self.project)).data)


class RankingGoldSetApi(APIView):
    """Mark or unmark a ranking as gold (project admins)."""

    @extend_schema(
        operation_id="ranking_gold_set",
        request=RankingGoldInputSerializer,
        responses={200: RankingGoldOutputSerializer},
    )
    def post(self, request, ranking_id: int):
        ranking = Ranking.objects.select_related("prompt").filter(pk=ranking_id).first()
        if ranking is None:
            raise NotFound("no such ranking", code="ranking_not_found")
        project_for_role(user=request.user, project_id=ranking.prompt.project_id, minimum=Role.ADMIN)
        data = RankingGoldInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ranking = ranking_gold_set(
            ranking=ranking, is_gold=data.validated_data["is_gold"], actor=request.user
        )
        return Response(RankingGoldOutputSerializer(ranking).data)


def _ranking_for_reviewer(*, request, ranking_id: int) -> Ranking:
    ranking = Ranking.objects.select_related("prompt").filter(pk=ranking_id).first()
    if ranking is None:
        raise NotFound("no such ranking", code="ranking_not_found")
    project_for_role(user=request.user, project_id=ranking.prompt.project_id, minimum=Role.REVIEWER)
    return ranking


class RankingExcludeApi(APIView):
    """Leave a ranking out of exports, agreement and training, with a reason (reviewers and admins).

    The ranking is kept; its slot returns to the queue; restore undoes it.
    """

    @extend_schema(
        operation_id="ranking_exclude",
        request=QualityReasonInputSerializer,
        responses={200: RankingQualityOutputSerializer},
    )
    def post(self, request, ranking_id: int):
        _ranking_for_reviewer(request=request, ranking_id=ranking_id)
        data = QualityReasonInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ranking = ranking_exclude(
            ranking_id=ranking_id, actor=request.user, reason=data.validated_data["reason"]
        )
        return Response(RankingQualityOutputSerializer(ranking).data)


class RankingRestoreApi(APIView):
    """Count an excluded or rejected ranking again (reviewers and admins)."""

    @extend_schema(
        operation_id="ranking_restore",
        request=QualityReasonInputSerializer,
        responses={200: RankingQualityOutputSerializer},
    )
    def post(self, request, ranking_id: int):
        _ranking_for_reviewer(request=request, ranking_id=ranking_id)
        data = QualityReasonInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        ranking = ranking_restore(
            ranking_id=ranking_id, actor=request.user, reason=data.validated_data["reason"]
        )
        return Response(RankingQualityOutputSerializer(ranking).data)


class PromptMoreRankingsApi(APIView):
    """Ask for more rankings of a prompt than the project's overlap (reviewers and admins)."""

    @extend_schema(
        operation_id="prompt_more_rankings",
        request=PromptMoreRankingsInputSerializer,
        responses={200: PromptMoreRankingsOutputSerializer},
    )
    def post(self, request, prompt_id: int):
        project_id = Prompt.objects.filter(pk=prompt_id).values_list("project_id", flat=True).first()
        if project_id is None:
            raise NotFound("no such prompt", code="prompt_not_found")
        project_for_role(user=request.user, project_id=project_id, minimum=Role.REVIEWER)
        data = PromptMoreRankingsInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        prompt = prompt_more_rankings(
            prompt_id=prompt_id,
            actor=request.user,
            extra=data.validated_data["extra"],
            reason=data.validated_data["reason"],
        )
        return Response(PromptMoreRankingsOutputSerializer(prompt).data)
