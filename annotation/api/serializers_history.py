"""Shapes of the labeler's history API: the query it takes and one row of past work."""

from __future__ import annotations

from rest_framework import serializers

from annotation.models.assignments import TaskKind
from annotation.permissions import MAX_ID
from annotation.selectors.history import HistoryKind


class HistoryQuerySerializer(serializers.Serializer):
    project = serializers.IntegerField(
        required=False, min_value=1, max_value=MAX_ID, help_text="Only work in this project."
    )


class HistoryProjectSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class HistoryAnswerSerializer(serializers.Serializer):
    letter = serializers.CharField(
        allow_null=True, help_text="The letter the answer was shown under: A, B, ..."
    )
    excerpt = serializers.CharField(allow_blank=True)
    rating = serializers.IntegerField(allow_null=True, help_text="1-7, if given.")
    flags = serializers.ListField(child=serializers.CharField())


class HistoryRankingSerializer(serializers.Serializer):
    order = serializers.ListField(
        child=HistoryAnswerSerializer(many=True), help_text="Tie groups of answers, best first."
    )
    comment = serializers.CharField(allow_blank=True)
    none_acceptable = serializers.BooleanField(
        help_text="You found none of the answers acceptable (the order still ranks them)."
    )


class HistoryDemonstrationSerializer(serializers.Serializer):
    excerpt = serializers.CharField(allow_blank=True)


class HistorySkipSerializer(serializers.Serializer):
    reason = serializers.CharField()


class HistoryReviewSerializer(serializers.Serializer):
    outcome = serializers.ChoiceField(
        choices=["pending", "accepted", "rejected"], help_text="The latest review of this submission."
    )
    note = serializers.CharField(allow_blank=True, help_text="The reviewer's note (empty while pending).")
    at = serializers.DateTimeField()


class HistoryRowSerializer(serializers.Serializer):
    """One task the labeler closed. Exactly the part named by `kind` is set; the others are null."""

    id = serializers.IntegerField(help_text="The task (assignment).")
    kind = serializers.ChoiceField(choices=[HistoryKind.DEMONSTRATION, HistoryKind.RANKING, HistoryKind.SKIP])
    task_kind = serializers.ChoiceField(choices=TaskKind.choices)
    project = HistoryProjectSerializer()
    prompt_excerpt = serializers.CharField(allow_blank=True, help_text="The first user turn, shortened.")
    at = serializers.DateTimeField(help_text="When it was submitted or skipped.")
    seconds_spent = serializers.FloatField(
        allow_null=True, help_text="For a skip, as last autosaved; null if never saved."
    )
    demonstration = HistoryDemonstrationSerializer(allow_null=True)
    ranking = HistoryRankingSerializer(allow_null=True)
    skip = HistorySkipSerializer(allow_null=True)
    review = HistoryReviewSerializer(allow_null=True, help_text="Null when it was never reviewed.")
