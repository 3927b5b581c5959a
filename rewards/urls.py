"""Reward-model API under /api/projects/<id>/reward-models/, and the history the quality dashboard
draws, kept at its path under /quality/."""

from django.urls import path

from rewards.api import leaderboard, reward_models, triage

PREFIX = "api/projects/<int:project_id>/reward-models/"

urlpatterns = [
    path(PREFIX, reward_models.RewardModelListApi.as_view(), name="reward-model-list"),
    path(f"{PREFIX}retrain", reward_models.RewardModelRetrainApi.as_view(), name="reward-model-retrain"),
    path(
        f"{PREFIX}<int:reward_model_id>/",
        reward_models.RewardModelDetailApi.as_view(),
        name="reward-model-detail",
    ),
    path(
        f"{PREFIX}<int:reward_model_id>/activate",
        reward_models.RewardModelActivateApi.as_view(),
        name="reward-model-activate",
    ),
    path(
        f"{PREFIX}<int:reward_model_id>/cancel",
        reward_models.RewardModelCancelApi.as_view(),
        name="reward-model-cancel",
    ),
    # The dashboard finds these by name (reverse): annotation links to this app only by URL.
    path(
        "api/projects/<int:project_id>/prompts/<int:prompt_id>/reward-scores",
        reward_models.PromptRewardScoresApi.as_view(),
        name="prompt-reward-scores",
    ),
    path(
        "api/reward-models/active/",
        reward_models.ActiveRewardModelListApi.as_view(),
        name="reward-model-active-list",
    ),
    # The dashboard finds it by this name (reverse), so path and name stay as they were.
    path(
        "api/projects/<int:project_id>/quality/reward-models/",
        reward_models.RewardModelHistoryApi.as_view(),
        name="quality-reward-model-history",
    ),
    # The dashboard's leaderboard panel finds these by name (reverse in the template).
    path(
        "api/projects/<int:project_id>/leaderboard",
        leaderboard.LeaderboardApi.as_view(),
        name="project-leaderboard",
    ),
    path(
        "api/projects/<int:project_id>/leaderboard/refresh",
        leaderboard.LeaderboardRefreshApi.as_view(),
        name="project-leaderboard-refresh",
    ),
    # The triage page finds it by name (reverse in the template).
    path("api/projects/<int:project_id>/triage", triage.ProjectTriageApi.as_view(), name="project-triage"),
]
