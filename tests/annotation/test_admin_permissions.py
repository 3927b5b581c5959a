"""The Django admin per project and per action: a staff user who administers project A only sees,
opens, chooses and acts on A's rows; each custom action needs its model permission; superusers do all.

Data comes from the services (prompts, rankings, leases, exports, runs); requests go through the
admin with Django's test client.
"""

from __future__ import annotations

import pytest
from django.contrib import admin
from django.contrib.auth.models import Permission
from django.contrib.messages.storage.fallback import FallbackStorage
from django.contrib.sessions.backends.signed_cookies import SessionStore
from django.test import RequestFactory
from django.urls import reverse

from annotation.models import (
    Assignment,
    Candidate,
    Comparison,
    Demonstration,
    ExportJob,
    Membership,
    Project,
    Prompt,
    Ranking,
)
from annotation.models.projects import Role
from annotation.services.assignments import assignment_lease
from annotation.services.exports import export_job_create
from annotation.services.prompts import prompt_create
from rewards.admin import retrain_now
from rewards.models import CandidateScore, RewardModel, RewardModelStatus
from tests.annotation.export_data import candidate_make, demonstration_make, ranked_prompt

REFUSED = "nothing was changed"
# Every admin that lists rows of projects, by URL name.
CHANGELISTS = {
    "annotation_project": Project,
    "annotation_membership": Membership,
    "annotation_prompt": Prompt,
    "annotation_demonstration": Demonstration,
    "annotation_candidate": Candidate,
    "annotation_assignment": Assignment,
    "annotation_ranking": Ranking,
    "annotation_comparison": Comparison,
    "annotation_exportjob": ExportJob,
    "rewards_rewardmodel": RewardModel,
    "rewards_candidatescore": CandidateScore,
}


def project_data(project: Project, labeler, tmp_path) -> dict:
    """One of each row the admin shows, in `project`, made by the services."""
    prompt, candidates = ranked_prompt(project, 0, [labeler], [[[0], [1], [2], [3]]])
    fresh = prompt_create(
        project=project, turns=[{"role": "user", "content": f"Unranked in {project.name}?"}]
    )
    fresh_candidates = [candidate_make(fresh, f"{project.name} draft {n}", source="model") for n in range(2)]
    demonstration_make(prompt, labeler, f"A demonstration in {project.name}.")
    assignment, _ = assignment_lease(labeler=labeler, project_id=project.pk, kind="demonstrate")
    export_job_create(
        project=project, requested_by=None, export_format="rankings", file_format="jsonl", filters=None
    )
    folder = tmp_path / f"version-{project.pk}"
    folder.mkdir()
    version = RewardModel.objects.create(
        project=project,
        trigger="admin",
        status=RewardModelStatus.SUCCEEDED,
        version=1,
        artifact_path=str(folder),
    )
    CandidateScore.objects.create(candidate=candidates[0], reward_model=version, score=0.5)
    return {
        "project": project,
        "prompt": prompt,
        "fresh": fresh,
        "fresh_candidates": fresh_candidates,
        "ranking": Ranking.objects.get(prompt=prompt),
        "assignment": assignment,
        "version": version,
    }


@pytest.fixture
def other_project(db, labeler, django_user_model) -> Project:
    """Project B: alice labels in A and B, carol in B only."""
    project = Project.objects.create(
        name="Project Bee", k=4, rankings_per_prompt=2, demonstrations_per_prompt=1
    )
    Membership.objects.create(project=project, user=labeler, role=Role.LABELER)
    carol = django_user_model.objects.create_user("carol", "carol@example.com", "pw")
    Membership.objects.create(project=project, user=carol, role=Role.LABELER)
    return project


@pytest.fixture
def data(project, other_project, labeler, tmp_path) -> dict:
    return {
        "a": project_data(project, labeler, tmp_path),
        "b": project_data(other_project, labeler, tmp_path),
    }


@pytest.fixture
def staff(db, django_user_model, project, other_project):
    """Staff with every model permission of both apps, admin of A only (and a reviewer of B)."""
    user = django_user_model.objects.create_user("ops", "ops@example.com", "pw", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(content_type__app_label__in=["annotation", "rewards"])
    )
    Membership.objects.create(project=project, user=user, role=Role.ADMIN)
    Membership.objects.create(project=other_project, user=user, role=Role.REVIEWER)
    return user


def permission_remove(user, codename: str):
    user.user_permissions.remove(Permission.objects.get(codename=codename))
    return type(user).objects.get(pk=user.pk)  # a fresh object: permissions are cached per instance


def listed_project_ids(response, model) -> set[int]:
    path = admin.site._registry[model].project_path
    return set(response.context["cl"].queryset.values_list(path or "pk", flat=True))


def run_action(client, model, action: str, rows) -> str:
    url = reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist")
    response = client.post(url, {"action": action, "_selected_action": [row.pk for row in rows]}, follow=True)
    assert response.status_code == 200
    return response.content.decode()


def offered_actions(client, model) -> set[str]:
    response = client.get(reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_changelist"))
    return {name for name, _label in response.context["action_form"].fields["action"].choices if name}


def test_changelists_list_only_the_projects_the_staff_user_administers(client, staff, data, admin_user):
    client.force_login(staff)
    for name, model in CHANGELISTS.items():
        response = client.get(reverse(f"admin:{name}_changelist"))
        assert response.status_code == 200, name
        assert listed_project_ids(response, model) == {data["a"]["project"].pk}, name
        # Not even as a filter choice: a relation's filter lists only what the rows refer to.
        assert "Project Bee" not in response.content.decode(), name

    client.force_login(admin_user)
    both = {data["a"]["project"].pk, data["b"]["project"].pk}
    for name, model in CHANGELISTS.items():
        response = client.get(reverse(f"admin:{name}_changelist"))
        assert listed_project_ids(response, model) == both, name


def test_another_projects_change_history_and_delete_pages_answer_404(client, staff, data, admin_user):
    client.force_login(staff)
    rows = {
        "annotation_project": "project",
        "annotation_prompt": "prompt",
        "annotation_ranking": "ranking",
        "annotation_assignment": "assignment",
        "rewards_rewardmodel": "version",
    }
    for name, key in rows.items():
        for page in ("change", "history", "delete"):
            own = client.get(reverse(f"admin:{name}_{page}", args=[data["a"][key].pk]))
            assert own.status_code == 200, (name, page)
            other = client.get(reverse(f"admin:{name}_{page}", args=[data["b"][key].pk]))
            assert other.status_code == 404, (name, page)
    prompt = data["b"]["prompt"]
    response = client.post(reverse("admin:annotation_prompt_change", args=[prompt.pk]), {"priority": 9})
    assert response.status_code == 404 and Prompt.objects.get(pk=prompt.pk).priority == prompt.priority

    client.force_login(admin_user)
    for name, key in rows.items():
        assert client.get(reverse(f"admin:{name}_change", args=[data["b"][key].pk])).status_code == 200


def test_an_action_over_another_projects_row_is_refused_whole(client, staff, data):
    client.force_login(staff)
    own, other = data["a"], data["b"]

    page = run_action(client, Ranking, "mark_gold", [own["ranking"], other["ranking"]])
    assert REFUSED in page
    assert not Ranking.objects.filter(is_gold=True).exists()  # not even the own one

    page = run_action(client, Prompt, "regenerate", [other["fresh"]])
    assert REFUSED in page and Candidate.objects.filter(prompt=other["fresh"]).count() == 2

    page = run_action(client, Project, "retrain_now", [other["project"]])
    assert (
        REFUSED in page and not RewardModel.objects.filter(project=other["project"], status="queued").exists()
    )

    page = run_action(client, RewardModel, "activate_version", [other["version"]])
    assert REFUSED in page and not RewardModel.objects.filter(is_active=True).exists()

    url = reverse("admin:annotation_prompt_changelist")
    client.post(url, {"action": "delete_selected", "_selected_action": [other["prompt"].pk], "post": "yes"})
    assert Prompt.objects.filter(pk=other["prompt"].pk).exists()

    # The same selection within the staff user's own project goes through.
    assert "Marked 1 ranking(s) as gold" in run_action(client, Ranking, "mark_gold", [own["ranking"]])
    assert Ranking.objects.get(is_gold=True).pk == own["ranking"].pk
    assert "Replacing the model candidates of 1" in run_action(client, Prompt, "regenerate", [own["fresh"]])
    assert not Candidate.objects.filter(prompt=own["fresh"]).exists()
    assert "Version 1 is now active" in run_action(client, RewardModel, "activate_version", [own["version"]])


def test_an_action_called_directly_checks_the_projects_too(staff, data):
    request = RequestFactory().post("/admin/")
    request.user = staff
    request.session = SessionStore()
    request._messages = FallbackStorage(request)
    model_admin = admin.site._registry[Project]
    retrain_now(model_admin, request, Project.objects.filter(pk=data["b"]["project"].pk))
    assert REFUSED in str(next(iter(request._messages)))
    assert not RewardModel.objects.filter(project=data["b"]["project"], status="queued").exists()


@pytest.mark.parametrize(
    ("model", "action", "codename"),
    [
        (Ranking, "mark_gold", "change_ranking"),
        (Prompt, "generate_now", "add_candidate"),
        (Prompt, "regenerate", "delete_candidate"),
        (Project, "retrain_now", "add_rewardmodel"),
        (RewardModel, "activate_version", "change_rewardmodel"),
        (RewardModel, "cancel_runs", "change_rewardmodel"),
    ],
)
def test_an_action_needs_its_model_permission(client, staff, data, model, action, codename):
    client.force_login(staff)
    assert action in offered_actions(client, model)
    client.force_login(permission_remove(staff, codename))
    assert action not in offered_actions(client, model)

    own = data["a"]
    row = {
        Ranking: own["ranking"],
        Prompt: own["fresh"],
        Project: own["project"],
        RewardModel: own["version"],
    }
    reward_models_before = list(RewardModel.objects.values_list("pk", "status", "is_active"))
    page = run_action(client, model, action, [row[model]])
    assert "No action selected" in page
    assert not Ranking.objects.filter(is_gold=True).exists()
    assert Candidate.objects.filter(prompt=own["fresh"]).count() == 2
    assert list(RewardModel.objects.values_list("pk", "status", "is_active")) == reward_models_before


def test_a_superuser_acts_in_every_project(client, admin_user, data):
    client.force_login(admin_user)
    other = data["b"]
    assert "Marked 1 ranking(s) as gold" in run_action(client, Ranking, "mark_gold", [other["ranking"]])
    assert "Replacing the model candidates of 1" in run_action(client, Prompt, "regenerate", [other["fresh"]])
    assert "queued reward-model run" in run_action(client, Project, "retrain_now", [other["project"]])
    assert Ranking.objects.get(is_gold=True).pk == other["ranking"].pk
    assert not Candidate.objects.filter(prompt=other["fresh"]).exists()
    assert RewardModel.objects.filter(project=other["project"], status="queued").exists()


def test_forms_offer_and_accept_only_the_staff_users_projects(client, staff, data, labeler, other_labeler):
    client.force_login(staff)
    own, other = data["a"]["project"], data["b"]["project"]
    form = client.get(reverse("admin:annotation_membership_add")).context["adminform"].form
    assert set(form.fields["project"].queryset) == {own}
    response = client.post(
        reverse("admin:annotation_membership_add"),
        {"project": other.pk, "user": staff.pk, "role": Role.ADMIN},
    )
    assert response.status_code == 200 and response.context["adminform"].form.errors.get("project")
    assert not Membership.objects.filter(project=other, user=staff, role=Role.ADMIN).exists()

    form = client.get(reverse("admin:annotation_demonstration_add")).context["adminform"].form
    # A's members, not carol of B (and each once, though alice is in both).
    assert list(form.fields["labeler"].queryset.order_by("username")) == [labeler, other_labeler, staff]

    preferences = client.get(reverse("admin:rewards_import_preferences")).context["form"]
    assert set(preferences.fields["project"].queryset) == {own}
    # A project made by a staff user would have no admin, so only superusers add projects.
    assert client.get(reverse("admin:annotation_project_add")).status_code == 403


def test_the_prompt_import_pages_need_the_project_and_the_permission_to_add_prompts(client, staff, data):
    own, other = data["a"]["project"], data["b"]["project"]
    client.force_login(staff)
    assert client.get(reverse("admin:annotation_project_import", args=[own.pk])).status_code == 200
    assert client.get(reverse("admin:annotation_project_import", args=[other.pk])).status_code == 404
    assert client.get(reverse("admin:annotation_project_import", args=[2**63])).status_code == 404
    assert client.get(reverse("admin:annotation_project_import_job", args=[other.pk, 1])).status_code == 404
    client.force_login(permission_remove(staff, "add_prompt"))
    assert client.get(reverse("admin:annotation_project_import", args=[own.pk])).status_code == 403
