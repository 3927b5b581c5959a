"""Input and output shapes of the review API: the next submission to review, decisions, adjudication."""

from __future__ import annotations

from rest_framework import serializers

from annotation.models.quality import QualityState
from annotation.permissions import MAX_ID
from annotation.services.quality import MAX_REASON_CHARS
from annotation.services.review import ReviewDecision, ReviewKind

KINDS = [ReviewKind.RANKING, ReviewKind.DEMONSTRATION]
# Plain text with the choices in the help, not an enum: "kind" already names other choice sets in the
# schema (history, tasks), and one more would make drf-spectacular invent an enum name.
KIND_HELP = "ranking or demonstration"


def _kind_validate(value: str) -> str:
    if value not in KINDS:
        raise serializers.ValidationError(f"must be one of {KINDS}")
    return value


class ReviewTurnSerializer(serializers.Serializer):
    role = serializers.CharField()
    content = serializers.CharField(allow_blank=True)


class ReviewPromptSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    turns = ReviewTurnSerializer(many=True, help_text="The conversation so far; the last turn is the user's.")


class ReviewAnswerSerializer(serializers.Serializer):
    id = serializers.IntegerField(help_text="The candidate.")
    letter = serializers.CharField(help_text="The letter it was shown under: A, B, ...")
    text = serializers.CharField(allow_blank=True)
    cut_off = serializers.BooleanField(help_text="The answer stopped at the token limit.")


class ReviewRankedAnswerSerializer(ReviewAnswerSerializer):
    rating = serializers.IntegerField(allow_null=True, help_text="1-7, if the labeler gave one.")
    flags = serializers.ListField(child=serializers.CharField())


class ReviewRankingPartSerializer(serializers.Serializer):
    answers = ReviewRankedAnswerSerializer(many=True, help_text="In the order the labeler was shown them.")
    order = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="The labeler's tie groups of candidate ids, best first.",
    )
    comment = serializers.CharField(allow_blank=True)
    none_acceptable = serializers.BooleanField()


class ReviewDemonstrationPartSerializer(serializers.Serializer):
    text = serializers.CharField()


class ReviewRequestSerializer(serializers.Serializer):
    reason = serializers.CharField(
        help_text='"sample" (the project\'s sample rate) or the signal that sent it.'
    )
    at = serializers.DateTimeField()


class ReviewItemSerializer(serializers.Serializer):
    """One submission under review. Exactly the part named by `kind` is set; the other is null."""

    kind = serializers.CharField(help_text=KIND_HELP)
    id = serializers.IntegerField()
    labeler = serializers.CharField(allow_null=True)
    quality_state = serializers.ChoiceField(choices=QualityState.choices)
    created_at = serializers.DateTimeField()
    seconds_spent = serializers.FloatField()
    prompt = ReviewPromptSerializer()
    requests = ReviewRequestSerializer(many=True, help_text="Why it was sent to review, oldest first.")
    ranking = ReviewRankingPartSerializer(allow_null=True)
    demonstration = ReviewDemonstrationPartSerializer(allow_null=True)


class ReviewNextOutputSerializer(serializers.Serializer):
    item = ReviewItemSerializer(allow_null=True, help_text="Null when nothing waits for this reviewer.")
    waiting = serializers.IntegerField(help_text="Submissions under review this reviewer may judge.")


class ReviewDecideInputSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text=KIND_HELP, validators=[_kind_validate])
    id = serializers.IntegerField(min_value=1, max_value=MAX_ID)
    decision = serializers.ChoiceField(choices=[ReviewDecision.ACCEPT, ReviewDecision.REJECT])
    reason = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        max_length=MAX_REASON_CHARS,
        help_text="Required to reject; the labeler reads it on their history page.",
    )


class ReviewDecideOutputSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text=KIND_HELP)
    id = serializers.IntegerField()
    quality_state = serializers.ChoiceField(choices=QualityState.choices)


class AdjudicationPromptSerializer(serializers.Serializer):
    prompt_id = serializers.IntegerField()
    title = serializers.CharField(allow_blank=True)
    agreement = serializers.FloatField(help_text="Pairwise agreement of its counted labeler rankings, 0-1.")
    ranking_count = serializers.IntegerField()


class AdjudicationListOutputSerializer(serializers.Serializer):
    threshold = serializers.FloatField(help_text="The project's adjudication threshold (0: off).")
    prompts = AdjudicationPromptSerializer(many=True, help_text="Lowest agreement first.")


class AdjudicationRankingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    labeler = serializers.CharField(allow_null=True)
    order = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))
    none_acceptable = serializers.BooleanField()
    comment = serializers.CharField(allow_blank=True)


class AdjudicatedSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    order = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))
    is_gold = serializers.BooleanField()


class AdjudicationDetailSerializer(serializers.Serializer):
    prompt = ReviewPromptSerializer()
    answers = ReviewAnswerSerializer(
        many=True, help_text="Every answer the rankings name, first shown first."
    )
    rankings = AdjudicationRankingSerializer(many=True, help_text="The counted labeler rankings.")
    agreement = serializers.FloatField(allow_null=True)
    threshold = serializers.FloatField()
    adjudicated = AdjudicatedSerializer(allow_null=True, help_text="The adjudicated gold ranking, once made.")


class AdjudicateInputSerializer(serializers.Serializer):
    order = serializers.JSONField(help_text="Tie groups of candidate ids, best first: [[3], [1, 4], [2]].")
    reason = serializers.CharField(required=False, allow_blank=True, default="", max_length=MAX_REASON_CHARS)
