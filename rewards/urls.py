"""Reward-model API: runs, retraining, versions."""

urlpatterns: list = []
