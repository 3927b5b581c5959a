"""Input and output serializers of the converse API (a conversation with the model, turn by turn)."""

from __future__ import annotations

from rest_framework import serializers

from annotation.api.serializers_labeler import (
    LiveSerializer,
    RankingOutputSerializer,
    RankingSubmitInputSerializer,
)
from annotation.services.converse import MAX_TURN_CHARS


class ConverseOpenInputSerializer(serializers.Serializer):
    project = serializers.IntegerField(min_value=1, max_value=2**63 - 1)
    # Blank allowed here so that the service answers with its own clear message.
    opening = serializers.CharField(
        allow_blank=True, trim_whitespace=False, help_text="The user's first turn."
    )


class TurnEditInputSerializer(serializers.Serializer):
    candidate = serializers.IntegerField(help_text="The reply that was edited (one shown in this turn).")
    text = serializers.CharField(allow_blank=True, trim_whitespace=False, help_text="The edited reply.")


class TurnSubmitInputSerializer(RankingSubmitInputSerializer):
    reply = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        help_text="With none_acceptable: your own reply, which the conversation continues with.",
    )
    edit = TurnEditInputSerializer(
        required=False,
        allow_null=True,
        default=None,
        help_text="Your rewrite of one reply; it ranks just above it.",
    )
    continue_with = serializers.IntegerField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Which of the best-ranked replies to continue with.",
    )
    next_user_turn = serializers.CharField(
        required=False,
        allow_blank=True,
        default="",
        trim_whitespace=False,
        max_length=MAX_TURN_CHARS,
        help_text="What the user says next; empty ends the conversation.",
    )


class TurnOutputSerializer(serializers.Serializer):
    ranking = RankingOutputSerializer()
    next_assignment = serializers.IntegerField(
        allow_null=True,
        source="next_assignment.pk",
        help_text="The next turn's task; null when the conversation ended.",
    )


class LiveOutputSerializer(LiveSerializer):
    pass
