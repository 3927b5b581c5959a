"""Output shapes of the quality API (agreement, consensus, statistics, dashboards)."""

from __future__ import annotations

from rest_framework import serializers

from annotation.selectors.stats import MAX_DAYS


class AgreementFieldsMixin(serializers.Serializer):
    agreement = serializers.FloatField(allow_null=True, help_text="Pairwise agreement, 0-1.")
    kendall_tau = serializers.FloatField(allow_null=True, help_text="Mean Kendall tau-b, -1 to 1.")
    pairs_agreed = serializers.IntegerField()
    pairs_compared = serializers.IntegerField()
    ranking_pairs = serializers.IntegerField()


class QualitySummarySerializer(AgreementFieldsMixin):
    project_id = serializers.IntegerField()
    prompts = serializers.IntegerField()
    rankings = serializers.IntegerField()
    gold_rankings = serializers.IntegerField()
    demonstrations = serializers.IntegerField()
    gold_agreement = serializers.FloatField(allow_null=True)
    krippendorff_alpha = serializers.FloatField(
        allow_null=True,
        help_text="Krippendorff's alpha (ordinal, midranks for ties) over the counted rankings; null when "
        "no candidate was ranked twice.",
    )


class LabelerSignalSerializer(serializers.Serializer):
    value = serializers.FloatField(allow_null=True, help_text="Null: nothing to measure yet.")
    samples = serializers.IntegerField(help_text="Observations the value rests on.")
    threshold = serializers.FloatField(help_text="The project's threshold for this signal.")
    fires = serializers.BooleanField(help_text="Beyond the threshold, on enough observations.")
    reason = serializers.CharField()


class LabelerStatsSerializer(serializers.Serializer):
    user_id = serializers.IntegerField()
    username = serializers.CharField()
    role = serializers.CharField(allow_null=True)
    rankings = serializers.IntegerField()
    demonstrations = serializers.IntegerField()
    tasks_done = serializers.IntegerField()
    seconds_per_task = serializers.FloatField(allow_null=True)
    skipped = serializers.IntegerField()
    skip_rate = serializers.FloatField(allow_null=True)
    agreement = serializers.FloatField(
        allow_null=True, help_text="Against other rankings of the same prompts."
    )
    kendall_tau = serializers.FloatField(allow_null=True)
    pairs_compared = serializers.IntegerField()
    gold_agreement = serializers.FloatField(allow_null=True)
    gold_pairs_compared = serializers.IntegerField()
    flags_raised = serializers.IntegerField()
    reliability = serializers.FloatField(
        allow_null=True,
        help_text="Estimated probability of ordering a pair as the truth does (one-coin Dawid-Skene EM); "
        "null without counted rankings.",
    )
    reliability_standard_error = serializers.FloatField(allow_null=True)
    adversarial = serializers.BooleanField(help_text="Reliability significantly below 0.5: orders reversed.")
    signals = serializers.DictField(
        child=LabelerSignalSerializer(),
        help_text="position_bias, repeated_order, speed, length_bias (rankings), near_duplicates "
        "(demonstrations): whichever can be measured.",
    )
    signals_firing = serializers.ListField(child=serializers.CharField())


class PromptRankingSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    labeler = serializers.CharField(allow_null=True, help_text="Null for imported rankings.")
    order = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))
    is_gold = serializers.BooleanField()


class PromptCandidateSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    text = serializers.CharField(help_text="The answer, so that orders can be shown as text.")


class PromptAgreementSerializer(AgreementFieldsMixin):
    prompt_id = serializers.IntegerField()
    title = serializers.CharField()
    ranking_count = serializers.IntegerField()
    rankings = PromptRankingSerializer(many=True)
    candidates = PromptCandidateSerializer(many=True, help_text="Every candidate the orders name.")
    consensus_order = serializers.ListField(child=serializers.ListField(child=serializers.IntegerField()))
    cycles_broken = serializers.IntegerField(help_text="Majorities the ranked-pairs consensus dropped.")
    weighted_consensus_order = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="Consensus with each labeler's vote weighted by their estimated reliability.",
    )


class DaysQuerySerializer(serializers.Serializer):
    days = serializers.IntegerField(required=False, default=30, min_value=1, max_value=MAX_DAYS)


class ThroughputPointSerializer(serializers.Serializer):
    day = serializers.DateField()
    rankings = serializers.IntegerField()
    demonstrations = serializers.IntegerField()


class ThroughputSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    points = ThroughputPointSerializer(many=True)


class AgreementPointSerializer(serializers.Serializer):
    day = serializers.DateField()
    agreement = serializers.FloatField(allow_null=True)
    kendall_tau = serializers.FloatField(allow_null=True)
    pairs_compared = serializers.IntegerField()


class AgreementOverTimeSerializer(serializers.Serializer):
    days = serializers.IntegerField()
    points = AgreementPointSerializer(many=True)


class QueueDepthSerializer(serializers.Serializer):
    project_id = serializers.IntegerField()
    waiting_for_candidates = serializers.IntegerField()
    waiting_for_demonstrations = serializers.IntegerField()
    waiting_for_rankings = serializers.IntegerField()
    leased = serializers.IntegerField()


class RankingGoldInputSerializer(serializers.Serializer):
    is_gold = serializers.BooleanField()


class RankingGoldOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    prompt = serializers.IntegerField(source="prompt_id")
    is_gold = serializers.BooleanField()


class QualityReasonInputSerializer(serializers.Serializer):
    # Blank allowed here so that the service answers a missing reason with its own message.
    reason = serializers.CharField(required=False, allow_blank=True, default="", trim_whitespace=False)


class RankingQualityOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    prompt = serializers.IntegerField(source="prompt_id")
    quality_state = serializers.CharField(help_text="counted, under_review, rejected or excluded.")


class PromptMoreRankingsInputSerializer(QualityReasonInputSerializer):
    extra = serializers.IntegerField(
        help_text="Rankings wanted beyond the project's overlap (0 takes it back)."
    )


class PromptMoreRankingsOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    extra_rankings = serializers.IntegerField()
