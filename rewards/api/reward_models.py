"""Reward-model API: list runs, retrain now, a run with its progress, activate or cancel a version,
and the history with loss curves that the quality dashboard draws.

Reviewers and admins of the project read; admins start, activate and cancel (IsProjectReviewer).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models.projects import Role
from annotation.permissions import IsProjectReviewer, projects_for_role
from rewards.api.serializers import (
    PromptRewardScoresSerializer,
    RewardModelDetailOutputSerializer,
    RewardModelHistorySerializer,
    RewardModelOutputSerializer,
    RewardModelSummarySerializer,
)
from rewards.models import RewardModelTrigger
from rewards.selectors.reward_models import (
    prompt_reward_scores,
    reward_model_get,
    reward_model_history,
    reward_model_list,
    reward_models_active_for,
)
from rewards.services.runs import reward_model_activate, reward_model_cancel, reward_model_request


class RewardModelListApi(GenericAPIView):
    """Every run of the project, newest first, paginated."""

    permission_classes = [IsProjectReviewer]
    serializer_class = RewardModelOutputSerializer

    @extend_schema(operation_id="reward_model_list", responses={200: RewardModelOutputSerializer(many=True)})
    def get(self, request, project_id: int):
        page = self.paginate_queryset(reward_model_list(project=self.project))
        return self.get_paginated_response(RewardModelOutputSerializer(page, many=True).data)


class RewardModelRetrainApi(APIView):
    """Queue a training run now; 409 while another run of the project is queued or running."""

    permission_classes = [IsProjectReviewer]
    throttle_scope = "retrain"  # a training run holds the training worker (settings: API_THROTTLE_RETRAIN)

    @extend_schema(
        operation_id="reward_model_retrain", request=None, responses={202: RewardModelOutputSerializer}
    )
    def post(self, request, project_id: int):
        reward_model = reward_model_request(
            project=self.project, trigger=RewardModelTrigger.API, requested_by=request.user
        )
        return Response(RewardModelOutputSerializer(reward_model).data, status=status.HTTP_202_ACCEPTED)


class RewardModelDetailApi(APIView):
    """One run: status, progress, data it saw, metrics per epoch (the loss curve)."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(operation_id="reward_model_detail", responses={200: RewardModelDetailOutputSerializer})
    def get(self, request, project_id: int, reward_model_id: int):
        reward_model = reward_model_get(project=self.project, reward_model_id=reward_model_id)
        return Response(RewardModelDetailOutputSerializer(reward_model).data)


class RewardModelActivateApi(APIView):
    """Make a succeeded version the active one (rescoring follows)."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(
        operation_id="reward_model_activate", request=None, responses={200: RewardModelOutputSerializer}
    )
    def post(self, request, project_id: int, reward_model_id: int):
        reward_model = reward_model_get(project=self.project, reward_model_id=reward_model_id)
        return Response(RewardModelOutputSerializer(reward_model_activate(reward_model=reward_model)).data)


class RewardModelCancelApi(APIView):
    """Cancel a queued or running run; a running one stops at its next training step."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(
        operation_id="reward_model_cancel", request=None, responses={200: RewardModelOutputSerializer}
    )
    def post(self, request, project_id: int, reward_model_id: int):
        reward_model = reward_model_get(project=self.project, reward_model_id=reward_model_id)
        return Response(RewardModelOutputSerializer(reward_model_cancel(reward_model=reward_model)).data)


class RewardModelHistoryApi(GenericAPIView):
    """Reward-model runs with validation accuracy and per-epoch loss curves, for the dashboard."""

    permission_classes = [IsProjectReviewer]
    serializer_class = RewardModelHistorySerializer

    # The operation id (and the path and url name in rewards/urls.py) predate the move from the
    # quality API; clients and the dashboard know it by them.
    @extend_schema(
        operation_id="quality_reward_model_history", responses=RewardModelHistorySerializer(many=True)
    )
    def get(self, request, project_id: int):
        page = self.paginate_queryset(reward_model_history(project=self.project))
        return self.get_paginated_response(RewardModelHistorySerializer(page, many=True).data)


class PromptRewardScoresApi(APIView):
    """The active version's score and rank-by-score of each candidate of one prompt, for the
    dashboard's prompt page (which annotation renders without importing this app)."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(operation_id="prompt_reward_scores", responses={200: PromptRewardScoresSerializer})
    def get(self, request, project_id: int, prompt_id: int):
        scores = prompt_reward_scores(project=self.project, prompt_id=prompt_id)
        return Response(PromptRewardScoresSerializer(scores).data)


class ActiveRewardModelListApi(GenericAPIView):
    """The active version of every project the user reviews or administers, for the dashboard home."""

    serializer_class = RewardModelSummarySerializer

    @extend_schema(operation_id="reward_model_active_list", responses=RewardModelSummarySerializer(many=True))
    def get(self, request):
        projects = projects_for_role(user=request.user, minimum=Role.REVIEWER)
        page = self.paginate_queryset(reward_models_active_for(projects=projects))
        return self.get_paginated_response(RewardModelSummarySerializer(page, many=True).data)
