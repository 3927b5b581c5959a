"""Generator leaderboard API: the latest result with the state of its run, and refresh.

Reviewers and admins of the project read it, as the rest of the quality dashboard. Asking is enough
to start a run when the data have changed (the result is cached per data cut-off), so refreshing,
which only recomputes derived figures, is open to the same people.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.models.projects import Role
from annotation.permissions import IsProjectReviewer
from rewards.api.serializers_leaderboard import LeaderboardOutputSerializer
from rewards.services.leaderboard_runs import leaderboard_request


class IsProjectReviewerToRefresh(IsProjectReviewer):
    write_role = Role.REVIEWER


class LeaderboardApi(APIView):
    """The newest leaderboard and its run; queues a run when the data changed since the last one."""

    permission_classes = [IsProjectReviewer]

    @extend_schema(operation_id="leaderboard_get", responses={200: LeaderboardOutputSerializer})
    def get(self, request, project_id: int):
        state = leaderboard_request(project=self.project, requested_by=request.user)
        return Response(LeaderboardOutputSerializer(state).data)


class LeaderboardRefreshApi(APIView):
    """Compute the leaderboard again, even on unchanged data (a failed run is retried); while a run
    is in flight that run is the answer."""

    permission_classes = [IsProjectReviewerToRefresh]

    @extend_schema(
        operation_id="leaderboard_refresh", request=None, responses={202: LeaderboardOutputSerializer}
    )
    def post(self, request, project_id: int):
        state = leaderboard_request(project=self.project, requested_by=request.user, refresh=True)
        return Response(LeaderboardOutputSerializer(state).data, status=status.HTTP_202_ACCEPTED)
