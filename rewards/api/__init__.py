"""Reward-model API: runs, retraining, versions."""
