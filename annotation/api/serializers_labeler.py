"""Small input and output serializers of the labeler API, one pair per operation."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from annotation.models.assignments import TaskKind
from annotation.ranking_math import comparisons_from_order
from annotation.services.assignments import MAX_SKIP_REASON_CHARS


class LeaseInputSerializer(serializers.Serializer):
    project = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=2**63 - 1)
    kind = serializers.ChoiceField(
        choices=[*TaskKind.values, "any"],
        required=False,
        default="any",
        help_text="demonstrate, rank, converse, or any (the next rank or demonstrate task)",
    )


class ProjectWorkSerializer(serializers.Serializer):
    id = serializers.IntegerField(source="project.id")
    name = serializers.CharField(source="project.name")
    demonstrate = serializers.IntegerField(help_text="Demonstrate tasks this labeler could take now.")
    rank = serializers.IntegerField(help_text="Rank tasks this labeler could take now.")
    converse = serializers.IntegerField(
        help_text="Prompts this labeler could start a conversation with the model from (0 where the project has none)."
    )
    rank_generating = serializers.IntegerField(
        help_text="More rank tasks for this labeler whose answers the model is writing now."
    )
    generation_seconds = serializers.FloatField(
        allow_null=True,
        help_text="About how long one prompt's answers take to write, in seconds; null when none are being written.",
    )
    standing = serializers.ChoiceField(
        choices=["working", "qualifying", "not_qualified", "paused"],
        help_text="working; qualifying (qualification tasks first); not_qualified or paused (no tasks here).",
    )
    standing_message = serializers.CharField(
        help_text="Why the labeler is gated, plainly; empty while working."
    )


class HeldTaskSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    kind = serializers.CharField()
    project = serializers.IntegerField(source="project_id")
    expires_at = serializers.DateTimeField()


class WorkOutputSerializer(serializers.Serializer):
    projects = ProjectWorkSerializer(many=True)
    held = HeldTaskSerializer(many=True)
    counts = serializers.DictField(child=serializers.IntegerField())


class TaskProjectSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    guidelines_html = serializers.CharField(help_text="The project's Markdown guidelines, sanitised HTML.")
    k = serializers.IntegerField()
    min_demonstration_chars = serializers.IntegerField()
    ratings_required = serializers.BooleanField(help_text="Every answer must be rated 1-7 to submit.")
    layout = serializers.ChoiceField(
        choices=["list", "side_by_side"],
        help_text="How the answers are shown: a list to order, or two side by side.",
    )
    converse_max_turns = serializers.IntegerField(help_text="Assistant turns a conversation may reach.")
    converse_own_opening = serializers.BooleanField(help_text="Labelers may open a conversation themselves.")


class TaskPromptSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    turns = serializers.ListField(child=serializers.DictField(child=serializers.CharField()))


class TaskCandidateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField()
    cut_off = serializers.BooleanField(help_text="The answer stopped at the token limit, not where it ended.")


class FlagSerializer(serializers.Serializer):
    key = serializers.CharField()
    label = serializers.CharField()


class LiveSerializer(serializers.Serializer):
    status = serializers.ChoiceField(
        choices=["queued", "running", "done", "failed", "stalled"],
        help_text="stalled: nothing arrived for a while (its worker is gone); retry.",
    )
    texts = serializers.ListField(
        child=serializers.CharField(allow_blank=True), help_text="Per reply, so far."
    )
    finished = serializers.ListField(child=serializers.BooleanField())
    error = serializers.CharField(allow_blank=True)
    attempt = serializers.IntegerField()


class TaskConversationSerializer(serializers.Serializer):
    turn = serializers.IntegerField(help_text="This turn's number, from 1.")
    max_turns = serializers.IntegerField()
    can_continue = serializers.BooleanField(help_text="Another turn may follow this one.")
    previous_assignment = serializers.IntegerField(allow_null=True)
    live = LiveSerializer(allow_null=True)


class TaskOutputSerializer(serializers.Serializer):
    """One task as the labeler sees it: no model names, no provenance, nobody else's work."""

    id = serializers.IntegerField()
    kind = serializers.CharField()
    status = serializers.CharField()
    leased_at = serializers.DateTimeField()
    expires_at = serializers.DateTimeField()
    submitted_at = serializers.DateTimeField(allow_null=True)
    project = TaskProjectSerializer()
    prompt = TaskPromptSerializer()
    candidates = TaskCandidateSerializer(many=True, help_text="In the order shown to this labeler.")
    flags = FlagSerializer(many=True)
    draft = serializers.DictField()
    draft_saved_at = serializers.DateTimeField(allow_null=True)
    conversation = TaskConversationSerializer(
        allow_null=True, help_text="A converse task's turn: where it stands and its replies as they stream."
    )


@extend_schema_field(OpenApiTypes.OBJECT)  # the service refuses anything but an object
class DraftField(serializers.JSONField):
    pass


class DraftInputSerializer(serializers.Serializer):
    draft = DraftField(help_text="Any JSON object; the page stores its work in progress here.")


class DraftOutputSerializer(serializers.Serializer):
    draft_saved_at = serializers.DateTimeField()


# The schema says what the service accepts: some text that is not only whitespace, not too long.
@extend_schema_field({"type": "string", "pattern": r"\S", "maxLength": MAX_SKIP_REASON_CHARS})
class SkipReasonField(serializers.CharField):
    """Any string, blank too, goes on to the service, which refuses a blank reason or one over
    MAX_SKIP_REASON_CHARS with its own codes. (Blank is let through here rather than with
    allow_blank, which would document "" as a valid reason.)"""

    def run_validation(self, data=serializers.empty):
        if data == "":
            return ""
        return super().run_validation(data)


class SkipInputSerializer(serializers.Serializer):
    reason = SkipReasonField(trim_whitespace=False)


class SkipOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField()
    skip_reason = serializers.CharField()


class SubmitBaseInputSerializer(serializers.Serializer):
    idempotency_key = serializers.CharField(
        max_length=100, help_text="Chosen by the client; a retry with the same key returns the first result."
    )
    seconds_spent = serializers.FloatField(required=False, default=0.0)


class DemonstrationSubmitInputSerializer(SubmitBaseInputSerializer):
    # Blank allowed here so that the service answers an empty answer with its own clear message.
    text = serializers.CharField(allow_blank=True, trim_whitespace=False)


class DemonstrationOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    assignment = serializers.IntegerField(source="assignment_id")
    prompt = serializers.IntegerField(source="prompt_id")
    text = serializers.CharField()
    seconds_spent = serializers.FloatField()
    created_at = serializers.DateTimeField()


class RankingItemInputSerializer(serializers.Serializer):
    candidate = serializers.IntegerField()
    # No range here: the ranking service refuses a rating outside 1-7 naming the candidate.
    rating = serializers.IntegerField(required=False, allow_null=True)
    flags = serializers.ListField(child=serializers.CharField(max_length=100), required=False, default=list)


class RankingSubmitInputSerializer(SubmitBaseInputSerializer):
    order = serializers.JSONField(help_text="Tie groups of candidate ids, best first: [[3], [1, 4], [2]].")
    items = RankingItemInputSerializer(many=True, required=False, default=list)
    comment = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)
    none_acceptable = serializers.BooleanField(
        required=False, default=False, help_text="None of the answers is acceptable (the order still counts)."
    )


class RankingOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    assignment = serializers.IntegerField(source="assignment_id")
    prompt = serializers.IntegerField(source="prompt_id")
    order = serializers.JSONField()
    none_acceptable = serializers.BooleanField()
    comparisons = serializers.SerializerMethodField(help_text="How many (better, worse) pairs were stored.")
    seconds_spent = serializers.FloatField()
    created_at = serializers.DateTimeField()

    def get_comparisons(self, ranking) -> int:
        # The stored comparisons are exactly the pairs the stored order implies: no need to count rows.
        return len(comparisons_from_order(order=ranking.order))


class MeOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    username = serializers.CharField()
