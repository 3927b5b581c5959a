"""Export API: stream a dataset directly, or run it as a background job and download its file."""

from __future__ import annotations

from django.http import FileResponse, StreamingHttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import NotAcceptable
from rest_framework.generics import GenericAPIView
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.response import Response
from rest_framework.views import APIView

from annotation.api.serializers_exports import (
    ExportCountOutputSerializer,
    ExportCountQuerySerializer,
    ExportJobOutputSerializer,
    ExportStartInputSerializer,
    ExportStreamQuerySerializer,
)
from annotation.exports.filters import FILTER_KEYS
from annotation.exports.writers import FILE_FORMATS
from annotation.permissions import IsProjectAdmin
from annotation.selectors.exports import (
    export_job_card,
    export_job_content_type,
    export_job_file,
    export_job_get_for_admin,
    export_jobs_for_project,
    export_rows_count,
)
from annotation.services.exports import export_job_create, export_request_validate, export_stream

# One response per file format, each under its own media type: the Content-Type the file is sent with.
_FILE_RESPONSES = {
    (200, media_type): OpenApiResponse(
        response=OpenApiTypes.BINARY, description="The dataset, in the file format asked for."
    )
    for media_type, _extension in FILE_FORMATS.values()
}
# A job's download may also be a zip: train and test files with the card (split_output=files).
_JOB_FILE_RESPONSES = {
    **_FILE_RESPONSES,
    (200, "application/zip"): OpenApiResponse(
        response=OpenApiTypes.BINARY, description="split_output=files: train, test and README.md."
    ),
}


class FileContentNegotiation(DefaultContentNegotiation):
    """A download answers with its file whatever the Accept header asks for, and errors as JSON.

    DRF's negotiation picks among the view's renderers (JSON) and would refuse a client that asks
    for the file's own type, e.g. `Accept: application/x-ndjson`, with a 406.
    """

    refuses_unacceptable = False  # config.openapi documents no 406 for these views

    def select_renderer(self, request, renderers, format_suffix=None):
        try:
            return super().select_renderer(request, renderers, format_suffix)
        except NotAcceptable:
            return renderers[0], renderers[0].media_type


def streaming_download(*, request_obj) -> StreamingHttpResponse:
    """A StreamingHttpResponse for an export; shared with the dashboard download."""
    response = StreamingHttpResponse(
        export_stream(request=request_obj), content_type=request_obj.content_type
    )
    response["Content-Disposition"] = f'attachment; filename="{request_obj.filename}"'
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _export_request_from_query(*, request, project, serializer_class, streamed: bool = True):
    """The export a GET's query asks for, checked as every export route checks it (400 if not)."""
    query = serializer_class(data=request.query_params)
    query.is_valid(raise_exception=True)
    data = dict(query.validated_data)
    filters = {key: data.pop(key) for key in list(data) if key in FILTER_KEYS}
    return export_request_validate(
        project=project,
        export_format=data["export_format"],
        file_format=data["file_format"],
        filters=filters,
        streamed=streamed,
    )


class ExportStreamApi(APIView):
    """Stream a dataset export straight to the client (constant memory on the server)."""

    permission_classes = [IsProjectAdmin]
    content_negotiation_class = FileContentNegotiation

    @extend_schema(
        operation_id="export_stream",
        parameters=[ExportStreamQuerySerializer],
        responses=_FILE_RESPONSES,
    )
    def get(self, request, project_id: int):
        export_request = _export_request_from_query(
            request=request, project=self.project, serializer_class=ExportStreamQuerySerializer
        )  # self.project: set by IsProjectAdmin
        return streaming_download(request_obj=export_request)


class ExportCountApi(APIView):
    """How many rows an export with these filters would hold, counted by the database instead of
    written: the export form's preview. Bad filters are refused as the stream refuses them (400)."""

    permission_classes = [IsProjectAdmin]

    @extend_schema(
        operation_id="export_count",
        parameters=[ExportCountQuerySerializer],
        responses={200: ExportCountOutputSerializer},
    )
    def get(self, request, project_id: int):
        export_request = _export_request_from_query(
            request=request,
            project=self.project,  # set by IsProjectAdmin
            serializer_class=ExportCountQuerySerializer,
            streamed=False,  # a count is the same whatever files the export would be written to
        )
        rows = export_rows_count(
            project=self.project, export_format=export_request.export_format, filters=export_request.filters
        )
        output = {
            "export_format": export_request.export_format.name,
            "rows": rows,
            "row_kind": export_request.export_format.kind,
            "filters": export_request.filters.as_json(),
        }
        return Response(ExportCountOutputSerializer(output).data)


class ExportJobStartApi(APIView):
    """Queue a background export; poll the job for progress and download its file when done."""

    permission_classes = [IsProjectAdmin]
    throttle_scope = "export_start"  # each job reads the whole project (settings: API_THROTTLE_EXPORT_START)

    @extend_schema(
        operation_id="export_job_start",
        request=ExportStartInputSerializer,
        responses={202: ExportJobOutputSerializer},
    )
    def post(self, request, project_id: int):
        data = ExportStartInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        job = export_job_create(
            project=self.project,
            requested_by=request.user,
            export_format=data.validated_data["export_format"],
            file_format=data.validated_data["file_format"],
            filters=dict(data.validated_data.get("filters") or {}),
        )
        return Response(ExportJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class ExportJobListApi(GenericAPIView):
    """A project's export jobs, newest first."""

    permission_classes = [IsProjectAdmin]
    serializer_class = ExportJobOutputSerializer

    @extend_schema(operation_id="export_job_list", responses=ExportJobOutputSerializer(many=True))
    def get(self, request, project_id: int):
        page = self.paginate_queryset(export_jobs_for_project(project=self.project))
        return self.get_paginated_response(ExportJobOutputSerializer(page, many=True).data)


class ExportJobDetailApi(APIView):
    """One export job: status, progress, error, download link."""

    @extend_schema(operation_id="export_job_detail", responses={200: ExportJobOutputSerializer})
    def get(self, request, job_id: int):
        job = export_job_get_for_admin(user=request.user, job_id=job_id)
        return Response(ExportJobOutputSerializer(job).data)


class ExportJobDownloadApi(APIView):
    """The finished export's file, streamed from disk."""

    content_negotiation_class = FileContentNegotiation

    @extend_schema(operation_id="export_job_download", responses=_JOB_FILE_RESPONSES)
    def get(self, request, job_id: int):
        job = export_job_get_for_admin(user=request.user, job_id=job_id)
        path = export_job_file(job=job)
        return FileResponse(
            open(path, "rb"),  # noqa: SIM115 - FileResponse closes it
            as_attachment=True,
            filename=path.name,
            # The format's own type, as the stream sends it; guessed from the name, .jsonl and
            # .parquet would be application/octet-stream.
            content_type=export_job_content_type(job=job, path=path),
        )


class ExportJobCardApi(APIView):
    """The dataset card (README.md in Hugging Face's format) written beside a finished export."""

    @extend_schema(
        operation_id="export_job_card",
        responses={
            (200, "text/markdown"): OpenApiResponse(
                response=OpenApiTypes.STR, description="The dataset card: YAML header, then Markdown."
            )
        },
    )
    def get(self, request, job_id: int):
        job = export_job_get_for_admin(user=request.user, job_id=job_id)
        path = export_job_card(job=job)
        return FileResponse(
            open(path, "rb"),  # noqa: SIM115 - FileResponse closes it
            as_attachment=True,
            filename="README.md",
            content_type="text/markdown; charset=utf-8",
        )
