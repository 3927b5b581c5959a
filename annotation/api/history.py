"""The labeler's own past work: what they submitted and skipped, newest first, paginated."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework.generics import GenericAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response

from annotation.api.output import output_data
from annotation.api.serializers_history import HistoryQuerySerializer, HistoryRowSerializer
from annotation.selectors.history import history_rows, labeler_history, labeler_history_project_validate


class LabelerHistoryApi(GenericAPIView):
    """The caller's submitted demonstrations and rankings and their skips, newest first; nobody else's."""

    permission_classes = [IsAuthenticated]
    serializer_class = HistoryRowSerializer

    # many=True: a GenericAPIView's GET is not known to be a list otherwise, and the schema would
    # show one bare row instead of the paginated envelope with its limit and offset.
    @extend_schema(
        operation_id="labeler_history",
        parameters=[HistoryQuerySerializer],
        responses=HistoryRowSerializer(many=True),
    )
    def get(self, request: Request) -> Response:
        query = HistoryQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        project_id = query.validated_data.get("project")
        if project_id is not None:
            labeler_history_project_validate(labeler=request.user, project_id=project_id)
        page = self.paginate_queryset(labeler_history(labeler=request.user, project_id=project_id))
        rows = history_rows(assignments=list(page or []))
        return self.get_paginated_response([output_data(HistoryRowSerializer, row) for row in rows])
