"""Small output serializers for reward-model runs; inputs are the URL alone."""

from __future__ import annotations

from rest_framework import serializers

from rewards.models import RewardModel


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
