"""The reward-model API through real HTTP: list, retrain now (409 when busy), detail, activate."""

from __future__ import annotations

from django.urls import reverse

from annotation.models import Membership
from annotation.models.projects import Role
from rewards.models import RewardModel, RewardModelStatus


def _url(name: str, project, **kwargs) -> str:
    return reverse(name, kwargs={"project_id": project.pk, **kwargs})


def test_retrain_now_queues_one_run_and_refuses_a_second(api_client, admin_user, project):
    api_client.force_authenticate(admin_user)
    response = api_client.post(_url("reward-model-retrain", project))
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] == "queued" and body["trigger"] == "api" and body["progress"] == 0.0

    again = api_client.post(_url("reward-model-retrain", project))
    assert again.status_code == 409
    error = again.json()["error"]
    assert error["code"] == "run_in_progress" and error["details"]["reward_model_id"] == body["id"]
    assert "already queued" in error["message"]
    assert RewardModel.objects.filter(project=project).count() == 1

    listing = api_client.get(_url("reward-model-list", project)).json()
    assert [run["id"] for run in listing["results"]] == [body["id"]]
    detail = api_client.get(_url("reward-model-detail", project, reward_model_id=body["id"])).json()
    assert detail["progress_message"] == "waiting for a training worker"
    assert {"metrics", "config", "data_summary"} <= set(detail)


def test_activate_switches_versions_and_refuses_failed_runs(api_client, admin_user, project, tmp_path):
    api_client.force_authenticate(admin_user)
    v1 = RewardModel.objects.create(
        project=project,
        trigger="api",
        status=RewardModelStatus.SUCCEEDED,
        version=1,
        artifact_path=str(tmp_path),
    )
    v2 = RewardModel.objects.create(
        project=project,
        trigger="api",
        status=RewardModelStatus.SUCCEEDED,
        version=2,
        artifact_path="/x/2",
        is_active=True,
    )
    failed = RewardModel.objects.create(project=project, trigger="api", status=RewardModelStatus.FAILED)
    response = api_client.post(_url("reward-model-activate", project, reward_model_id=v1.pk))
    assert response.status_code == 200 and response.json()["is_active"] is True
    v2.refresh_from_db()
    assert not v2.is_active
    refused = api_client.post(_url("reward-model-activate", project, reward_model_id=failed.pk))
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "conflict"
    # A version whose files are gone cannot be made active: scoring with it would fail forever.
    gone = api_client.post(_url("reward-model-activate", project, reward_model_id=v2.pk))
    assert gone.status_code == 409 and gone.json()["error"]["code"] == "artifact_missing"
    assert RewardModel.objects.get(is_active=True).pk == v1.pk


def test_labelers_cannot_retrain_and_reviewers_only_read(api_client, labeler, other_labeler, project):
    api_client.force_authenticate(labeler)
    assert api_client.post(_url("reward-model-retrain", project)).status_code == 403
    assert api_client.get(_url("reward-model-list", project)).status_code == 403
    Membership.objects.filter(project=project, user=other_labeler).update(role=Role.REVIEWER)
    api_client.force_authenticate(other_labeler)
    assert api_client.get(_url("reward-model-list", project)).status_code == 200
    assert api_client.post(_url("reward-model-retrain", project)).status_code == 403
    api_client.force_authenticate(None)
    assert api_client.get(_url("reward-model-list", project)).status_code in (401, 403)


def test_unknown_run_is_404(api_client, admin_user, project):
    api_client.force_authenticate(admin_user)
    response = api_client.get(_url("reward-model-detail", project, reward_model_id=999999))
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


def test_history_for_the_dashboard_keeps_its_path_and_draws_curves(
    api_client, labeler, other_labeler, project
):
    url = _url("quality-reward-model-history", project)
    assert url == f"/api/projects/{project.pk}/quality/reward-models/"
    v1 = RewardModel.objects.create(
        project=project,
        trigger="api",
        status=RewardModelStatus.SUCCEEDED,
        version=1,
        metrics={"epochs": [{"epoch": 1, "loss": 0.7, "val_loss": 0.69, "val_accuracy": 0.5}]},
    )
    v2 = RewardModel.objects.create(
        project=project,
        trigger="api",
        status=RewardModelStatus.SUCCEEDED,
        version=2,
        metrics={"train_loss": [0.6, 0.5], "val_loss": [0.65, "n/a"], "val_accuracy": [0.6, 0.7]},
    )
    running = RewardModel.objects.create(project=project, trigger="api", status=RewardModelStatus.RUNNING)

    api_client.force_authenticate(labeler)
    assert api_client.get(url).status_code == 403
    Membership.objects.filter(project=project, user=other_labeler).update(role=Role.REVIEWER)
    api_client.force_authenticate(other_labeler)
    body = api_client.get(url).json()

    # The run without a version yet comes first, then versions newest first.
    assert [run["id"] for run in body["results"]] == [running.pk, v2.pk, v1.pk]
    curves = {run["id"]: run["curves"] for run in body["results"]}
    no_steps = {"steps": [], "step_train_loss": []}  # none of these runs logged a step curve
    assert curves[v1.pk] == {"train_loss": [0.7], "val_loss": [0.69], "val_accuracy": [0.5], **no_steps}
    assert curves[v2.pk] == {
        "train_loss": [0.6, 0.5],
        "val_loss": [0.65, None],
        "val_accuracy": [0.6, 0.7],
        **no_steps,
    }
    assert curves[running.pk] == {"train_loss": [], "val_loss": [], "val_accuracy": [], **no_steps}
