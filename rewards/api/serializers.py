"""Small output serializers for reward-model runs and their history; inputs are the URL alone."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from rewards.models import RewardModel
from rewards.selectors.evaluation import reward_model_evaluation
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


class AgreementSerializer(serializers.Serializer):
    agreement = serializers.FloatField(
        allow_null=True, help_text="Pairs ordered the same way / pairs both order strictly; null if none."
    )
    pairs_agreed = serializers.IntegerField()
    pairs_compared = serializers.IntegerField()
    prompts = serializers.IntegerField(help_text="Evaluation prompts ranked at least twice.")


class RmLabelerAgreementSerializer(AgreementSerializer):
    rankings = serializers.IntegerField(help_text="Rankings the model's order was compared with.")


class LabelerLabelerAgreementSerializer(AgreementSerializer):
    kendall_tau = serializers.FloatField(allow_null=True)
    ranking_pairs = serializers.IntegerField(help_text="Pairs of rankings of one prompt compared.")


class CalibrationBinSerializer(serializers.Serializer):
    lower = serializers.FloatField()
    upper = serializers.FloatField()
    count = serializers.IntegerField(
        help_text="Points in the bin (each pair gives two, one per orientation)."
    )
    mean_predicted = serializers.FloatField(
        allow_null=True, help_text="Mean sigmoid(r_a - r_b); null if empty."
    )
    observed = serializers.FloatField(allow_null=True, help_text="Share of points where a was better.")


class CalibrationSerializer(serializers.Serializer):
    bins = CalibrationBinSerializer(many=True, help_text="The reliability diagram, lowest bin first.")
    ece = serializers.FloatField(allow_null=True, help_text="Expected calibration error; null without pairs.")
    pairs = serializers.IntegerField()


class ScoreHistogramSerializer(serializers.Serializer):
    edges = serializers.ListField(child=serializers.FloatField(), help_text="Bin edges, one more than bins.")
    counts = serializers.ListField(child=serializers.IntegerField())
    count = serializers.IntegerField(help_text="Distinct answers scored.")
    mean = serializers.FloatField(allow_null=True)
    std = serializers.FloatField(allow_null=True)
    min = serializers.FloatField(allow_null=True)
    max = serializers.FloatField(allow_null=True)


class RewardModelEvaluationSerializer(serializers.Serializer):
    """A version measured on the project's frozen evaluation set (never trained on), as of its cut-off."""

    evaluation_set_id = serializers.IntegerField()
    share = serializers.FloatField(help_text="Share of the project's prompts in the set.")
    set_prompts = serializers.IntegerField(help_text="Prompts in the set at the cut-off.")
    ranked_prompts = serializers.IntegerField(help_text="Of them, prompts with a ranking.")
    rankings = serializers.IntegerField()
    pairs = serializers.IntegerField(help_text="Comparisons the rankings imply.")
    cutoff = serializers.DateTimeField()
    accuracy = serializers.FloatField(
        allow_null=True, help_text="Comparisons the model orders correctly (a tie counts as wrong)."
    )
    rm_labeler = RmLabelerAgreementSerializer(
        help_text="The model against each ranking, on the prompts labeler_labeler covers."
    )
    labeler_labeler = LabelerLabelerAgreementSerializer(
        allow_null=True, help_text="Labelers against each other on the set's prompts."
    )
    calibration = CalibrationSerializer()
    scores = ScoreHistogramSerializer(help_text="Scores of the set's distinct answers.")


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
    validation_source = serializers.SerializerMethodField(
        help_text="What validation_accuracy was measured on: evaluation_set (the frozen set, the same "
        "comparisons for every version), held_out (prompts held out of this run's data, while the set "
        "had no ranking), or null (not recorded)."
    )
    evaluation = serializers.SerializerMethodField(
        help_text="Measures on the frozen evaluation set; null for a run without them."
    )

    def get_curves(self, reward_model: RewardModel) -> dict:
        return RewardModelCurvesSerializer(reward_model_curves(reward_model=reward_model)).data

    @extend_schema_field(serializers.ChoiceField(choices=["evaluation_set", "held_out"], allow_null=True))
    def get_validation_source(self, reward_model: RewardModel) -> str | None:
        return (reward_model.metrics or {}).get("validation_source")

    @extend_schema_field(RewardModelEvaluationSerializer(allow_null=True))
    def get_evaluation(self, reward_model: RewardModel) -> dict | None:
        evaluation = reward_model_evaluation(reward_model=reward_model)
        return None if evaluation is None else RewardModelEvaluationSerializer(evaluation).data

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
