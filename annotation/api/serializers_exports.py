"""Input and output shapes of the export API."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from annotation.exports.formats import FORMATS
from annotation.exports.options import (
    CONSENSUS_WEIGHTINGS,
    EDIT_PAIRS,
    KTO_SOURCES,
    PAIR_POLICIES,
    SPLIT_OUTPUTS,
    TIE_POLICIES,
)
from annotation.exports.writers import FILE_FORMATS
from annotation.selectors.exports import export_job_progress


class ExportOptionsSerializer(serializers.Serializer):
    """The export options (annotation/exports/options.py), the same in a job's filters and a query;
    the service checks which fit the format and refuses the rest with a 400."""

    pair_policy = serializers.ChoiceField(
        choices=PAIR_POLICIES,
        required=False,
        help_text="Pair formats: all pairs of a ranking, adjacent tie groups only, or the best "
        "group against each of the rest.",
    )
    tie_policy = serializers.ChoiceField(
        choices=TIE_POLICIES,
        required=False,
        help_text="Pair formats: drop tied answers, or keep them as rows with tie=true.",
    )
    margin = serializers.BooleanField(
        required=False,
        help_text="Pair formats: a margin column, the rating difference when both answers are rated "
        "and agree with the order, else how many tie groups apart they are.",
    )
    kto_from = serializers.ChoiceField(
        choices=KTO_SOURCES,
        required=False,
        help_text="KTO formats: labels from rankings (top group desirable, bottom undesirable, the "
        "middle dropped) or from ratings (the two thresholds).",
    )
    desirable_rating = serializers.IntegerField(
        required=False, min_value=1, max_value=7, help_text="kto_from=ratings: rating >= this is desirable."
    )
    undesirable_rating = serializers.IntegerField(
        required=False, min_value=1, max_value=7, help_text="kto_from=ratings: rating <= this is undesirable."
    )
    test_fraction = serializers.FloatField(
        required=False,
        min_value=0.0,
        max_value=0.5,
        help_text="Share of prompts held out as test, by a salted hash of the prompt's content: "
        "stable across re-exports and added data. 0: no split.",
    )
    split_output = serializers.ChoiceField(
        choices=SPLIT_OUTPUTS,
        required=False,
        help_text="A split column, or separate train/test files (background jobs: a zip).",
    )
    edit_pairs = serializers.ChoiceField(
        choices=EDIT_PAIRS,
        required=False,
        help_text="conversation_pairs: every pair; none holding a labeler's edit; or the edited > chosen > "
        "rejected chain (per ranking that puts an edit above the reply it rewrote: the edit over that reply, "
        "and that reply over each answer ranked below it).",
    )
    consensus_weighting = serializers.ChoiceField(
        choices=CONSENSUS_WEIGHTINGS,
        required=False,
        help_text="consensus_only: every ranking's vote weighs 1 (unweighted), or its labeler's "
        "estimated reliability (reliability), so careful labelers decide where the votes split.",
    )


class ExportFiltersSerializer(ExportOptionsSerializer):
    """Filters; the service checks ranges and combinations and answers with a domain error."""

    date_from = serializers.CharField(required=False, help_text="ISO date or date-time, inclusive.")
    date_to = serializers.CharField(
        required=False, help_text="ISO date (through the end of that day) or date-time, exclusive."
    )
    labelers = serializers.ListField(child=serializers.IntegerField(), required=False, help_text="User ids.")
    min_agreement = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    consensus_only = serializers.BooleanField(required=False, default=False)
    min_labeler_reliability = serializers.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        help_text="Drop the rankings (and their pairs) of labelers whose estimated reliability is below "
        "this (0-1); imports and labelers without an estimate are kept.",
    )
    exclude_flagged = serializers.BooleanField(required=False, default=False)
    exclude_none_acceptable = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Drop the rankings (and their pairs) whose labeler found no answer acceptable; "
        "by default they are kept.",
    )
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


class ExportStreamQuerySerializer(ExportStartInputSerializer, ExportOptionsSerializer):
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
    min_labeler_reliability = serializers.FloatField(
        required=False,
        min_value=0.0,
        max_value=1.0,
        help_text="Drop the rankings (and their pairs) of labelers whose estimated reliability is below "
        "this (0-1); imports and labelers without an estimate are kept.",
    )
    exclude_flagged = serializers.BooleanField(required=False, default=False)
    exclude_none_acceptable = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Drop the rankings (and their pairs) whose labeler found no answer acceptable.",
    )
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
        help_text="Rows the export will hold: pairs, one per prompt for rankings, demonstrations, or one "
        "per conversation tree."
    )
    row_kind = serializers.CharField(
        help_text="What one row is: pairs, kto (one labelled answer), rankings (one prompt), "
        "demonstrations, prompts, conversation_pairs (a pair of one conversation turn) or trees (one "
        "conversation tree)."
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
    card_url = serializers.SerializerMethodField(
        help_text="The dataset card (README.md, Hugging Face format) written beside the export."
    )

    def get_progress(self, job) -> float:
        return export_job_progress(job=job)

    def get_download_url(self, job) -> str | None:
        if job.status != "succeeded":
            return None
        return reverse("export-job-download", kwargs={"job_id": job.pk})

    def get_card_url(self, job) -> str | None:
        if job.status != "succeeded":
            return None
        return reverse("export-job-card", kwargs={"job_id": job.pk})
