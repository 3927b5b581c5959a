"""Prompt import API: upload a file of any size, then poll its background job."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.generics import GenericAPIView
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.serializers_imports import (
    PromptImportJobOutputSerializer,
    PromptImportStartInputSerializer,
)
from annotation.permissions import IsProjectAdmin
from annotation.selectors.prompt_imports import (
    prompt_import_job_get_for_admin,
    prompt_import_jobs_for_project,
)
from annotation.services.prompt_imports import prompt_import_job_create


class PromptImportStartApi(APIView):
    """Queue the import of a JSONL or CSV file, all or nothing; poll the job for its progress."""

    permission_classes = [IsProjectAdmin]
    parser_classes = [MultiPartParser]

    @extend_schema(
        operation_id="prompt_import_start",
        request={"multipart/form-data": PromptImportStartInputSerializer},
        responses={202: PromptImportJobOutputSerializer},
    )
    def post(self, request, project_id: int):
        data = PromptImportStartInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        upload = data.validated_data["file"]
        job = prompt_import_job_create(
            project=self.project,  # set by IsProjectAdmin
            requested_by=request.user,
            upload=upload,
            filename=upload.name,
            source=data.validated_data["source"],
        )
        job.refresh_from_db()  # the task was sent on commit; a broker that was down failed the job
        return Response(PromptImportJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class PromptImportJobListApi(GenericAPIView):
    """A project's prompt imports, newest first."""

    permission_classes = [IsProjectAdmin]
    serializer_class = PromptImportJobOutputSerializer

    @extend_schema(operation_id="prompt_import_list", responses=PromptImportJobOutputSerializer(many=True))
    def get(self, request, project_id: int):
        page = self.paginate_queryset(prompt_import_jobs_for_project(project=self.project))
        return self.get_paginated_response(PromptImportJobOutputSerializer(page, many=True).data)


class PromptImportJobDetailApi(APIView):
    """One prompt import: status, rows read, imported, duplicates, bad lines."""

    @extend_schema(operation_id="prompt_import_detail", responses={200: PromptImportJobOutputSerializer})
    def get(self, request, import_id: int):
        job = prompt_import_job_get_for_admin(user=request.user, job_id=import_id)
        return Response(PromptImportJobOutputSerializer(job).data)
