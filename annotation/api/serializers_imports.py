from __future__ import annotations

from rest_framework import serializers

from annotation.selectors.prompt_imports import prompt_import_job_progress


class PromptImportStartInputSerializer(serializers.Serializer):
    file = serializers.FileField(
        allow_empty_file=False,
        help_text="JSONL or CSV (by extension): each line or row a `prompt` text or a `messages` list.",
    )
    source = serializers.CharField(
        required=False, allow_blank=True, default="", max_length=200, help_text="Default: the file's name."
    )


class PromptImportLineErrorSerializer(serializers.Serializer):
    line = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField()


class PromptImportJobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    filename = serializers.CharField()
    source = serializers.CharField()
    status = serializers.ChoiceField(choices=["queued", "checking", "importing", "succeeded", "failed"])
    size_bytes = serializers.IntegerField()
    rows_read = serializers.IntegerField(help_text="Lines or rows checked so far.")
    imported = serializers.IntegerField(help_text="Prompts added, once the job succeeded.")
    duplicates = serializers.IntegerField(help_text="Skipped: already in the project or earlier in the file.")
    error_count = serializers.IntegerField(help_text="Bad lines found so far; any one imports nothing.")
    errors = PromptImportLineErrorSerializer(many=True, help_text="The first bad lines with their reasons.")
    error = serializers.CharField(help_text="Why the job failed.")
    progress = serializers.SerializerMethodField()
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, default=None)
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_progress(self, job) -> float:
        return prompt_import_job_progress(job=job)
