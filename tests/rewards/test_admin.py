"""The reward-model admin: runs with metrics and loss curve, activation, scores, import, retrain now."""

from __future__ import annotations

import json

from django.contrib import admin
from django.contrib.messages import get_messages
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import RequestFactory
from django.urls import reverse

from annotation.models import Project, Ranking
from rewards.admin import retrain_now
from rewards.models import CandidateScore, RewardModel, RewardModelStatus

METRICS = {
    "epochs": [
        {"epoch": 1, "train_loss": 0.69, "val_loss": 0.6, "val_accuracy": 0.7, "seconds": 3.0},
        {"epoch": 2, "train_loss": 0.5, "val_loss": 0.55, "val_accuracy": 0.75, "seconds": 3.0},
    ],
    "curve": [{"step": 1, "train_loss": 0.7}, {"step": 2, "train_loss": 0.6}, {"step": 4, "train_loss": 0.5}],
    "validation_pairs": 40,
}


def test_run_pages_show_agreement_and_the_loss_curve_and_activate_a_version(
    client, admin_user, project, tmp_path
):
    client.force_login(admin_user)
    v1 = RewardModel.objects.create(
        project=project,
        trigger="api",
        status=RewardModelStatus.SUCCEEDED,
        version=1,
        artifact_path=str(tmp_path),
        metrics=METRICS,
        validation_accuracy=0.75,
    )
    RewardModel.objects.create(
        project=project,
        trigger="api",
        status=RewardModelStatus.SUCCEEDED,
        version=2,
        artifact_path="/y",
        is_active=True,
    )
    changelist = client.get(reverse("admin:rewards_rewardmodel_changelist"))
    assert changelist.status_code == 200 and b"75.0% of 40 pairs" in changelist.content
    detail = client.get(reverse("admin:rewards_rewardmodel_change", args=[v1.pk]))
    assert detail.status_code == 200
    assert b"<svg" in detail.content and b"polyline" in detail.content and b"0.7500" in detail.content

    response = client.post(
        reverse("admin:rewards_rewardmodel_changelist"),
        {"action": "activate_version", "_selected_action": [v1.pk]},
        follow=True,
    )
    assert response.status_code == 200 and b"Version 1 is now active" in response.content
    assert RewardModel.objects.get(is_active=True).pk == v1.pk


def test_candidate_scores_show_beside_human_ranks(client, admin_user, project, labeler, make_rankings):
    client.force_login(admin_user)
    [ranking] = make_rankings(project, prompts=1, labeler=labeler)
    version = RewardModel.objects.create(
        project=project, trigger="api", status=RewardModelStatus.SUCCEEDED, version=1, artifact_path="/x"
    )
    best = ranking.order[0][0]
    score = CandidateScore.objects.create(
        candidate_id=best, reward_model=version, score=1.25, member_scores=[1.5, 0.75]
    )
    page = client.get(reverse("admin:rewards_candidatescore_changelist"))
    assert page.status_code == 200 and b"+1.250" in page.content and b"1/3" in page.content
    detail = client.get(reverse("admin:rewards_candidatescore_change", args=[score.pk]))
    assert detail.status_code == 200 and b"+1.500, +0.750" in detail.content


def test_preference_upload_through_the_admin(client, admin_user, project):
    client.force_login(admin_user)
    url = reverse("admin:rewards_import_preferences")
    assert client.get(url).status_code == 200
    content = json.dumps({"prompt": "Hi?", "chosen": "Hello!", "rejected": "Go away."}).encode() + b"\n"
    response = client.post(url, {"project": project.pk, "file": SimpleUploadedFile("prefs.jsonl", content)})
    assert response.status_code == 200 and b"Rankings imported: 1" in response.content
    assert Ranking.objects.filter(prompt__project=project, source="import").count() == 1


def test_retrain_now_action_queues_once_and_explains_a_refusal(admin_user, project):
    request = RequestFactory().post("/admin/")
    request.user = admin_user
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    model_admin = admin.site._registry[Project]
    retrain_now(model_admin, request, Project.objects.filter(pk=project.pk))
    retrain_now(model_admin, request, Project.objects.filter(pk=project.pk))
    texts = [str(message) for message in get_messages(request)]
    assert "queued reward-model run" in texts[0] and "already queued" in texts[1]
    run = RewardModel.objects.get(project=project)
    assert run.trigger == "admin" and run.requested_by == admin_user
