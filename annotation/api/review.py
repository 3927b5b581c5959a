"""Review API: the next submission a reviewer judges and their decision, and adjudication of prompts
whose labelers disagree beyond the project's threshold.

Reviewers and admins of the project read and act (project_for_role, as the triage actions do); a
reviewer never judges their own work.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.serializers_review import (
    AdjudicateInputSerializer,
    AdjudicationDetailSerializer,
    AdjudicationListOutputSerializer,
    ReviewDecideInputSerializer,
    ReviewDecideOutputSerializer,
    ReviewNextOutputSerializer,
)
from annotation.models import Project
from annotation.models.projects import Role
from annotation.permissions import project_for_role
from annotation.selectors.review import (
    adjudication_detail,
    adjudication_prompts,
    review_item,
    review_next,
    review_waiting_count,
)
from annotation.services.adjudication import prompt_adjudicate
from annotation.services.review import review_decide


def _project(request, project_id: int) -> Project:
    return project_for_role(user=request.user, project_id=project_id, minimum=Role.REVIEWER)


class ReviewNextApi(APIView):
    """The oldest submission under review that this reviewer may judge, held for them for a while
    (another reviewer asking meanwhile gets the next one); null when none waits."""

    @extend_schema(operation_id="review_next", responses={200: ReviewNextOutputSerializer})
    def get(self, request, project_id: int):
        project = _project(request, project_id)
        found = review_next(project=project, reviewer=request.user)
        item = review_item(project=project, kind=found[0], item_id=found[1]) if found else None
        waiting = review_waiting_count(project=project, reviewer=request.user)
        return Response(ReviewNextOutputSerializer({"item": item, "waiting": waiting}).data)


class ReviewDecideApi(APIView):
    """Accept a submission under review (it counts again) or reject it with a reason (it stops
    counting and its slot returns to the queue). 409 when it is no longer under review; 403 for
    the reviewer's own work."""

    @extend_schema(
        operation_id="review_decide",
        request=ReviewDecideInputSerializer,
        responses={200: ReviewDecideOutputSerializer},
    )
    def post(self, request, project_id: int):
        project = _project(request, project_id)
        data = ReviewDecideInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        item = review_decide(
            project=project,
            reviewer=request.user,
            kind=data.validated_data["kind"],
            item_id=data.validated_data["id"],
            decision=data.validated_data["decision"],
            reason=data.validated_data["reason"],
        )
        body = {"kind": data.validated_data["kind"], "id": item.pk, "quality_state": item.quality_state}
        return Response(ReviewDecideOutputSerializer(body).data)


class AdjudicationListApi(APIView):
    """Prompts waiting for adjudication: ranked at least twice, agreement below the threshold, not
    adjudicated yet."""

    @extend_schema(operation_id="adjudication_list", responses={200: AdjudicationListOutputSerializer})
    def get(self, request, project_id: int):
        project = _project(request, project_id)
        body = {"threshold": project.adjudication_threshold, "prompts": adjudication_prompts(project=project)}
        return Response(AdjudicationListOutputSerializer(body).data)


class AdjudicationDetailApi(APIView):
    """One prompt's counted labeler rankings side by side (GET), and its adjudicated order (POST):
    stored as a gold ranking that takes no labeler's slot; 409 if it was adjudicated already."""

    @extend_schema(operation_id="adjudication_detail", responses={200: AdjudicationDetailSerializer})
    def get(self, request, project_id: int, prompt_id: int):
        project = _project(request, project_id)
        return Response(
            AdjudicationDetailSerializer(adjudication_detail(project=project, prompt_id=prompt_id)).data
        )

    @extend_schema(
        operation_id="adjudication_submit",
        request=AdjudicateInputSerializer,
        responses={201: AdjudicationDetailSerializer},
    )
    def post(self, request, project_id: int, prompt_id: int):
        project = _project(request, project_id)
        data = AdjudicateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        prompt_adjudicate(
            project=project,
            prompt_id=prompt_id,
            reviewer=request.user,
            order=data.validated_data["order"],
            reason=data.validated_data["reason"],
        )
        detail = adjudication_detail(project=project, prompt_id=prompt_id)
        return Response(AdjudicationDetailSerializer(detail).data, status=201)
