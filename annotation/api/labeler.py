"""The labeler API: the same endpoints serve the pages (session + CSRF) and scripts (token).

One view per operation; each validates input, calls one service or selector, and shapes the output.
Every view needs only a signed-in user: the services decide what that user may touch (their own
assignments, active projects they belong to), and anything else is a 404.
"""

from __future__ import annotations

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import ValidationError
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.serializers import Serializer
from rest_framework.views import APIView

from annotation.api.output import output_data
from annotation.api.serializers_labeler import (
    DemonstrationOutputSerializer,
    DemonstrationSubmitInputSerializer,
    DraftInputSerializer,
    DraftOutputSerializer,
    LeaseInputSerializer,
    MeOutputSerializer,
    RankingOutputSerializer,
    RankingSubmitInputSerializer,
    SkipInputSerializer,
    SkipOutputSerializer,
    TaskOutputSerializer,
    WorkOutputSerializer,
)
from annotation.selectors.queue import (
    assignment_task_data,
    labeler_counts,
    live_assignments_for_labeler,
    work_available,
)
from annotation.services.assignments import (
    assignment_draft_save,
    assignment_get_for_labeler,
    assignment_lease,
    assignment_skip,
)
from annotation.services.demonstrations import demonstration_submit
from annotation.services.rankings import ItemInput, ranking_submit
from config.errors import ValidationFailed
from config.openapi import error_response


def _submitted(created: bool) -> int:
    # The first submission creates (201); a replay of it returns the same body with 200.
    return status.HTTP_201_CREATED if created else status.HTTP_200_OK


def _validated_for_owner(
    serializer_class: type[Serializer], *, request: Request, assignment_id: int
) -> Serializer:
    """Validate a body sent to an assignment; someone else's (or no) assignment is a 404 whatever it holds.

    The ownership query runs only when the body is invalid: on a valid body the service's own
    permission-checked fetch gives the same 404, so the hot path pays for one fetch, not two.
    """
    serializer = serializer_class(data=request.data)
    if not serializer.is_valid():
        assignment_get_for_labeler(assignment_id=assignment_id, labeler=request.user)
        raise ValidationError(serializer.errors)
    return serializer


class LabelerMeApi(APIView):
    """Who the caller is; scripts use it to check a token, the load benchmark as its latency floor."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=MeOutputSerializer)
    def get(self, request: Request) -> Response:
        return Response(
            output_data(MeOutputSerializer, {"id": request.user.pk, "username": request.user.get_username()})
        )


class LabelerWorkApi(APIView):
    """Work the caller could take now, per project and kind; tasks they hold; their own counts."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=WorkOutputSerializer)
    def get(self, request: Request) -> Response:
        data = {
            "projects": work_available(labeler=request.user),
            "held": live_assignments_for_labeler(labeler=request.user),
            "counts": labeler_counts(labeler=request.user),
        }
        return Response(output_data(WorkOutputSerializer, data))


class AssignmentLeaseApi(APIView):
    """Lease the next task (201), return the task already held (200), or say there is none (204)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=LeaseInputSerializer,
        responses={
            201: TaskOutputSerializer,
            200: TaskOutputSerializer,
            204: OpenApiResponse(description="No task of that kind is available now."),
            404: error_response("`project` names no active project the caller belongs to."),
        },
    )
    def post(self, request: Request) -> Response:
        serializer = LeaseInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        kind = serializer.validated_data["kind"]
        assignment, created = assignment_lease(
            labeler=request.user,
            kind=None if kind == "any" else kind,
            project_id=serializer.validated_data.get("project"),
        )
        if assignment is None:
            return Response(status=status.HTTP_204_NO_CONTENT)
        body = output_data(TaskOutputSerializer, assignment_task_data(assignment=assignment))
        return Response(body, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)


class AssignmentDetailApi(APIView):
    """One of the caller's own tasks; another labeler's is a 404."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=TaskOutputSerializer)
    def get(self, request: Request, assignment_id: int) -> Response:
        assignment = assignment_get_for_labeler(assignment_id=assignment_id, labeler=request.user)
        return Response(output_data(TaskOutputSerializer, assignment_task_data(assignment=assignment)))


class AssignmentDraftApi(APIView):
    """Save the work in progress of a task (the pages autosave here)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=DraftInputSerializer, responses=DraftOutputSerializer)
    def put(self, request: Request, assignment_id: int) -> Response:
        serializer = _validated_for_owner(DraftInputSerializer, request=request, assignment_id=assignment_id)
        saved_at = assignment_draft_save(
            assignment_id=assignment_id, labeler=request.user, draft=serializer.validated_data["draft"]
        )
        return Response(output_data(DraftOutputSerializer, {"draft_saved_at": saved_at}))


class AssignmentSkipApi(APIView):
    """Skip a task with a reason; that prompt is not offered to the caller again for this kind."""

    permission_classes = [IsAuthenticated]

    @extend_schema(request=SkipInputSerializer, responses=SkipOutputSerializer)
    def post(self, request: Request, assignment_id: int) -> Response:
        serializer = _validated_for_owner(SkipInputSerializer, request=request, assignment_id=assignment_id)
        assignment = assignment_skip(
            assignment_id=assignment_id, labeler=request.user, reason=serializer.validated_data["reason"]
        )
        return Response(output_data(SkipOutputSerializer, assignment))


class DemonstrationSubmitApi(APIView):
    """Submit the answer for a demonstrate task (201; a retry with the same key: 200, same body)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=DemonstrationSubmitInputSerializer,
        responses={201: DemonstrationOutputSerializer, 200: DemonstrationOutputSerializer},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        serializer = _validated_for_owner(
            DemonstrationSubmitInputSerializer, request=request, assignment_id=assignment_id
        )
        data = serializer.validated_data
        demonstration, created = demonstration_submit(
            assignment_id=assignment_id,
            labeler=request.user,
            text=data["text"],
            idempotency_key=data["idempotency_key"],
            seconds_spent=data["seconds_spent"],
        )
        return Response(output_data(DemonstrationOutputSerializer, demonstration), status=_submitted(created))


class RankingSubmitApi(APIView):
    """Submit the order of a rank task's candidates with ratings, flags and a comment.

    The comparisons the order implies are written in the same transaction. A retry with the same
    idempotency key returns the first ranking (200, same body) and stores nothing twice.
    """

    permission_classes = [IsAuthenticated]

    @extend_schema(
        request=RankingSubmitInputSerializer,
        responses={201: RankingOutputSerializer, 200: RankingOutputSerializer},
    )
    def post(self, request: Request, assignment_id: int) -> Response:
        serializer = _validated_for_owner(
            RankingSubmitInputSerializer, request=request, assignment_id=assignment_id
        )
        data = serializer.validated_data
        items: dict[int, ItemInput] = {}
        for item in data["items"]:
            if item["candidate"] in items:
                # Someone else's (or no) assignment is a 404 whatever the body holds.
                assignment_get_for_labeler(assignment_id=assignment_id, labeler=request.user)
                raise ValidationFailed(
                    f"candidate {item['candidate']} has more than one entry in items",
                    code="repeated_candidate",
                    details={"repeated": [item["candidate"]]},
                )
            items[item["candidate"]] = ItemInput(rating=item.get("rating"), flags=item["flags"])
        ranking, created = ranking_submit(
            assignment_id=assignment_id,
            labeler=request.user,
            order=data["order"],
            idempotency_key=data["idempotency_key"],
            items=items,
            comment=data["comment"],
            seconds_spent=data["seconds_spent"],
            none_acceptable=data["none_acceptable"],
        )
        return Response(output_data(RankingOutputSerializer, ranking), status=_submitted(created))
