"""Input and output shapes of the export API."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from annotation.exports.formats import FORMATS
from annotation.exports.writers import FILE_FORMATS
from annotation.selectors.exports import export_job_progress


class ExportFiltersSerializer(serializers.Serializer):
    """Filters; the service checks ranges and combinations and answers with a domain error."""

    date_from = serializers.CharField(required=False, help_text="ISO date or date-time, inclusive.")
    date_to = serializers.CharField(
        required=False, help_text="ISO date (through the end of that day) or date-time, exclusive."
    )
    labelers = serializers.ListField(child=serializers.IntegerField(), required=False, help_text="User ids.")
    min_agreement = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    consensus_only = serializers.BooleanField(required=False, default=False)
    exclude_flagged = serializers.BooleanField(required=False, default=False)
    anonymise = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Labelers as pseudonyms, keyed by a server secret per project.",
    )

    def to_internal_value(self, data):
        # DRF drops keys it does not declare; a misspelt filter would then export everything.
        if isinstance(data, dict):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError({key: ["unknown filter"] for key in unknown})
        return super().to_internal_value(data)


class ExportStartInputSerializer(serializers.Serializer):
    export_format = serializers.ChoiceField(choices=sorted(FORMATS))
    file_format = serializers.ChoiceField(choices=sorted(FILE_FORMATS), default="jsonl")
    filters = ExportFiltersSerializer(required=False)


class ExportStreamQuerySerializer(ExportStartInputSerializer):
    """Query parameters of a direct download: the start input with filters flattened."""

    filters = None  # type: ignore[assignment]

    def to_internal_value(self, data):
        # A seed in a URL would land in access logs; and ignored, it would export real names.
        if "anonymise_seed" in data:
            raise serializers.ValidationError(
                {"anonymise_seed": ["no longer accepted: pass anonymise=true (keyed by a server secret)"]}
            )
        return super().to_internal_value(data)

    date_from = serializers.CharField(required=False)
    date_to = serializers.CharField(required=False)
    labelers = serializers.CharField(required=False, help_text="Comma-separated user ids.")
    min_agreement = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    consensus_only = serializers.BooleanField(required=False, default=False)
    exclude_flagged = serializers.BooleanField(required=False, default=False)
    anonymise = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Labelers as pseudonyms, keyed by a server secret per project.",
    )


class ExportCountQuerySerializer(ExportStreamQuerySerializer):
    """Query parameters of a row count: those of a direct download, so the form sends the same."""

    file_format = serializers.ChoiceField(
        choices=sorted(FILE_FORMATS), default="jsonl", help_text="Accepted and ignored: rows are the same."
    )


class ExportCountOutputSerializer(serializers.Serializer):
    export_format = serializers.CharField()
    rows = serializers.IntegerField(
        help_text="Rows the export will hold: pairs, one per prompt for rankings, or demonstrations."
    )
    row_kind = serializers.CharField(
        help_text="What one row is: pairs, rankings (one prompt) or demonstrations."
    )
    filters = serializers.DictField(help_text="The filters as parsed, as a job would store them.")


class ExportJobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    export_format = serializers.CharField()
    file_format = serializers.CharField()
    filters = serializers.DictField()
    status = serializers.CharField()
    rows_written = serializers.IntegerField()
    rows_total = serializers.IntegerField(allow_null=True)
    progress = serializers.SerializerMethodField()
    error = serializers.CharField()
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    download_url = serializers.SerializerMethodField()

    def get_progress(self, job) -> float:
        return export_job_progress(job=job)

    def get_download_url(self, job) -> str | None:
        if job.status != "succeeded":
            return None
        return reverse("export-job-download", kwargs={"job_id": job.pk})
