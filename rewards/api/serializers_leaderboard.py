"""Output serializers of the leaderboard API: the run's state and the stored result it serves."""

from __future__ import annotations

from rest_framework import serializers

from rewards.models import LeaderboardRun


class LeaderboardRunSerializer(serializers.ModelSerializer):
    class Meta:
        model = LeaderboardRun
        fields = [
            "id",
            "status",
            "progress",
            "cutoff",
            "resamples",
            "error",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields


class GeneratorSamplingSerializer(serializers.Serializer):
    """The sampling settings that tell generators of one model apart (absent: not recorded)."""

    temperature = serializers.FloatField(required=False)
    top_p = serializers.FloatField(required=False)
    max_tokens = serializers.IntegerField(required=False)


class LeaderboardGeneratorSerializer(serializers.Serializer):
    name = serializers.CharField(help_text="backend:model (sampling), or demonstration, edit, import.")
    source = serializers.CharField(help_text="The candidates' source: model, demonstration, edit, import.")
    backend = serializers.CharField(allow_blank=True)
    model_name = serializers.CharField(allow_blank=True)
    sampling = GeneratorSamplingSerializer()
    strength = serializers.FloatField(
        allow_null=True, help_text="Davidson-Bradley-Terry log strength, mean zero; null: never compared."
    )
    ci_low = serializers.FloatField(allow_null=True, help_text="Bootstrap confidence interval, low end.")
    ci_high = serializers.FloatField(allow_null=True)
    wins = serializers.IntegerField()
    losses = serializers.IntegerField()
    ties = serializers.IntegerField()
    comparisons = serializers.IntegerField()
    reward_model_mean_score = serializers.FloatField(
        allow_null=True, help_text="The reward-model version's mean score over the generator's candidates."
    )
    reward_model_scored = serializers.IntegerField(help_text="Candidates the version scored.")


class LeaderboardMatrixSerializer(serializers.Serializer):
    generators = serializers.ListField(child=serializers.CharField(), help_text="Rows and columns, by name.")
    win_rate = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(allow_null=True)),
        help_text="Row's (wins + ties / 2) / comparisons against the column; null: never compared.",
    )
    comparisons = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))


class RewardModelRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField(allow_null=True)


class LeaderboardResultSerializer(serializers.Serializer):
    run_id = serializers.IntegerField(source="id")
    cutoff = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    generators = LeaderboardGeneratorSerializer(many=True, source="result.generators")
    matrix = LeaderboardMatrixSerializer(source="result.matrix")
    outcomes = serializers.IntegerField(source="result.outcomes", help_text="Pairs of different generators.")
    rankings = serializers.IntegerField(source="result.rankings", help_text="Rankings with such a pair.")
    tie_strength = serializers.FloatField(source="result.tie_strength", allow_null=True)
    resamples = serializers.IntegerField(source="result.resamples")
    confidence = serializers.FloatField(source="result.confidence", allow_null=True)
    reward_model = RewardModelRefSerializer(source="result.reward_model", allow_null=True)


class LeaderboardOutputSerializer(serializers.Serializer):
    run = LeaderboardRunSerializer(help_text="The run on the current data, or the one in flight.")
    leaderboard = LeaderboardResultSerializer(
        source="latest", allow_null=True, help_text="The newest finished result; null before the first."
    )
    up_to_date = serializers.BooleanField(help_text="The leaderboard is on the current data.")
