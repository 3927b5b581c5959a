"""Which projects and tasks a user can see: one rule each, read the same way by every caller."""

from __future__ import annotations

import random

import pytest
from django.utils import timezone

from annotation.models import Assignment, Membership, Project
from annotation.models.projects import Role
from annotation.permissions import projects_for_labeler, projects_for_role
from annotation.services.assignments import assignment_get_for_labeler, assignment_lease
from annotation.sql.queue import projects_for_labeler_list
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db


def test_assignment_comes_with_its_project_and_prompt_and_only_to_its_labeler(
    project, labeler, other_labeler, make_prompts, django_assert_num_queries
):
    (prompt,) = make_prompts(project, 1)
    candidates_add(prompt, 4)
    leased, _ = assignment_lease(labeler=labeler, kind="rank")
    Assignment.objects.filter(pk=leased.pk).update(
        draft={"order": [[1], [2]], "note": "é"}, draft_saved_at=timezone.now()
    )
    with django_assert_num_queries(1):
        read = assignment_get_for_labeler(assignment_id=leased.pk, labeler=labeler, lock=True)
        assert read.project.name == project.name and read.prompt.turns == prompt.turns
    assert read.leased_at.tzinfo is not None and read.draft == {"order": [[1], [2]], "note": "é"}
    assert isinstance(read.shown_order, list) and len(read.shown_order) == 4
    for assignment_id, user in ((leased.pk, other_labeler), (2**63, labeler), (0, labeler)):
        with pytest.raises(Exception) as raised:
            assignment_get_for_labeler(assignment_id=assignment_id, labeler=user)
        assert raised.value.code == "assignment_not_found"


def test_labelers_see_their_active_projects_and_staff_every_active_one(project, labeler, admin_user):
    Project.objects.create(name="Nobody's project", k=2)
    Project.objects.create(name="Closed", k=2, is_active=False)
    assert [p.name for p in projects_for_labeler(user=labeler)] == [project.name]
    everything = [p.name for p in projects_for_labeler(user=admin_user)]
    assert everything == sorted(everything) and "Closed" not in everything and len(everything) == 2
    assert list(projects_for_labeler(user=labeler, project_id=project.pk)) == [project]
    assert not projects_for_labeler(user=labeler, project_id=project.pk + 1000).exists()
    assert not projects_for_labeler(user=labeler, project_id=2**63).exists()  # beyond any id


def test_roles_decide_which_projects_a_member_sees(project, labeler):
    reviewed = Project.objects.create(name="Reviewed", k=2)
    Membership.objects.create(project=reviewed, user=labeler, role=Role.REVIEWER)
    assert [p.name for p in projects_for_role(user=labeler, minimum=Role.LABELER)] == sorted(
        [project.name, "Reviewed"]
    )
    assert [p.name for p in projects_for_role(user=labeler, minimum=Role.REVIEWER)] == ["Reviewed"]
    assert not projects_for_role(user=labeler, minimum=Role.ADMIN).exists()


def test_the_leases_project_query_matches_the_visibility_rule(django_user_model):
    """annotation.sql.queue.projects_for_labeler_list is a fast copy of permissions.projects_for_labeler:
    on generated memberships, roles, closed projects and staff users, both list the same projects."""
    rng = random.Random(11)
    users = [django_user_model.objects.create_user(f"seen-{n}") for n in range(6)]
    users.append(django_user_model.objects.create_user("seen-staff", is_staff=True))
    users.append(django_user_model.objects.create_superuser("seen-root", "root@example.com", "pw"))
    projects = [
        Project.objects.create(
            name=rng.choice(["Alpha", "Beta", "Gamma"]) + f" {n}", k=2, is_active=rng.random() < 0.7
        )
        for n in range(9)
    ]
    for user in users[:6]:
        for project in rng.sample(projects, rng.randint(0, 5)):
            Membership.objects.create(project=project, user=user, role=rng.choice(list(Role)))
    for user in users:
        for project_id in [None, *(p.pk for p in projects)]:
            rule = [p.pk for p in projects_for_labeler(user=user, project_id=project_id)]
            fast = [p.pk for p in projects_for_labeler_list(user=user, project_id=project_id)]
            assert fast == rule, (user.username, project_id)
    assert any(projects_for_labeler(user=user).exists() for user in users[:6])
