"""Fixtures for the fault tests: the reward-model fixtures, and folders the worker processes share."""

from __future__ import annotations

import pytest

from tests.faults.processes import redis_server_fixture  # noqa: F401
from tests.rewards.conftest import make_rankings, tiny_backbone, tiny_config  # noqa: F401


@pytest.fixture
def shared_dirs(settings, tmp_path) -> dict[str, str]:
    """Export and artifact folders, the same for this process and the workers it starts."""
    settings.EXPORT_DIR = tmp_path / "exports"
    settings.REWARD_MODEL_ARTIFACT_DIR = tmp_path / "reward_models"
    return {
        "EXPORT_DIR": str(settings.EXPORT_DIR),
        "REWARD_MODEL_ARTIFACT_DIR": str(settings.REWARD_MODEL_ARTIFACT_DIR),
    }
