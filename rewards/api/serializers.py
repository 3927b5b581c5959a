"""Small output serializers for reward-model runs and their history; inputs are the URL alone."""

from __future__ import annotations

from rest_framework import serializers

from rewards.models import RewardModel
from rewards.selectors.reward_models import reward_model_curves, reward_model_validation_size


class RewardModelOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = RewardModel
        fields = [
            "id",
            "project",
            "version",
            "status",
            "trigger",
            "is_active",
            "progress",
            "progress_message",
            "validation_accuracy",
            "comparisons_seen",
            "data_cutoff",
            "error",
            "created_at",
            "started_at",
            "finished_at",
            "heartbeat_at",
        ]
        read_only_fields = fields


class RewardModelDetailOutputSerializer(RewardModelOutputSerializer):
    class Meta(RewardModelOutputSerializer.Meta):
        fields = [*RewardModelOutputSerializer.Meta.fields, "config", "data_summary", "metrics"]
        read_only_fields = fields


class RewardModelCurvesSerializer(serializers.Serializer):
    train_loss = serializers.ListField(child=serializers.FloatField(allow_null=True))
    val_loss = serializers.ListField(child=serializers.FloatField(allow_null=True))
    val_accuracy = serializers.ListField(child=serializers.FloatField(allow_null=True))
    steps = serializers.ListField(child=serializers.IntegerField(), help_text="Steps of step_train_loss.")
    step_train_loss = serializers.ListField(
        child=serializers.FloatField(), help_text="Training loss as logged during the run."
    )


class RewardModelHistorySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    version = serializers.IntegerField(allow_null=True)
    status = serializers.CharField()
    is_active = serializers.BooleanField()
    validation_accuracy = serializers.FloatField(allow_null=True)
    progress = serializers.FloatField()
    progress_message = serializers.CharField()
    error = serializers.CharField(help_text="Why the run failed; empty otherwise.")
    validation_pairs = serializers.SerializerMethodField()
    validation_prompts = serializers.SerializerMethodField()
    comparisons_seen = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    finished_at = serializers.DateTimeField(allow_null=True)
    curves = serializers.SerializerMethodField()

    def get_curves(self, reward_model: RewardModel) -> dict:
        return RewardModelCurvesSerializer(reward_model_curves(reward_model=reward_model)).data

    def get_validation_pairs(self, reward_model: RewardModel) -> int | None:
        return reward_model_validation_size(reward_model=reward_model)["validation_pairs"]

    def get_validation_prompts(self, reward_model: RewardModel) -> int | None:
        return reward_model_validation_size(reward_model=reward_model)["validation_prompts"]


class RewardModelSummarySerializer(serializers.Serializer):
    """A version in one line: which, and how well it agrees with held-out labelers, on how much."""

    id = serializers.IntegerField()
    project = serializers.IntegerField(source="project_id")
    version = serializers.IntegerField(allow_null=True)
    validation_accuracy = serializers.FloatField(allow_null=True)
    validation_pairs = serializers.SerializerMethodField()
    validation_prompts = serializers.SerializerMethodField()
    finished_at = serializers.DateTimeField(allow_null=True)

    def get_validation_pairs(self, reward_model: RewardModel) -> int | None:
        return reward_model_validation_size(reward_model=reward_model)["validation_pairs"]

    def get_validation_prompts(self, reward_model: RewardModel) -> int | None:
        return reward_model_validation_size(reward_model=reward_model)["validation_prompts"]


class CandidateScoreOutputSerializer(serializers.Serializer):
    candidate_id = serializers.IntegerField()
    score = serializers.FloatField()
    rank = serializers.IntegerField(
        help_text="By score among the prompt's candidates, 1 = highest; ties share."
    )


class PromptRewardScoresSerializer(serializers.Serializer):
    reward_model = RewardModelSummarySerializer(
        allow_null=True, help_text="The active version; null if none."
    )
    scores = CandidateScoreOutputSerializer(many=True, help_text="Best first; unscored candidates absent.")
