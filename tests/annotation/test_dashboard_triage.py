"""The triage page: reviewers and admins of the project get it (labelers 403, outsiders 404), with a
configuration whose URLs are the live triage API and quality actions; the project page links to it.
The page's behaviour in a browser is in tests/browser/test_dashboard_triage.py."""

from __future__ import annotations

import json
import re

import pytest
from django.utils import timezone

from annotation.models import Membership, Prompt, Ranking
from annotation.models.projects import Role
from annotation.models.quality import QualityState
from annotation.services.rankings import ranking_record
from rewards.models import CandidateScore, RewardModel, RewardModelStatus, RewardModelTrigger
from tests.annotation.queue_helpers import candidates_add

pytestmark = pytest.mark.django_db

CONFIG = re.compile(r'<script id="triage-config" type="application/json">(.*?)</script>', re.S)


def disputed_prompt_make(project, labelers, *, active_model: bool = True) -> Prompt:
    """One prompt every labeler ranks best-first by candidate id; the active model (when there is one)
    scores it the other way round, 2 points a place, as tests/rewards/test_triage.py builds it."""
    project.rankings_per_prompt = len(labelers)
    project.save()
    prompt = Prompt.objects.create(
        project=project,
        turns=[{"role": "user", "content": "Which answer is kinder?"}],
        content_hash="triage-1",
    )
    candidates = candidates_add(prompt, project.k)
    ids = [candidate.pk for candidate in candidates]
    for user in labelers:
        ranking_record(prompt=prompt, candidate_ids=ids, order=[[i] for i in ids], labeler=user)
    if active_model:
        model = RewardModel.objects.create(
            project=project,
            version=1,
            status=RewardModelStatus.SUCCEEDED,
            trigger=RewardModelTrigger.ADMIN,
            is_active=True,
            finished_at=timezone.now(),
        )
        for rank, candidate in enumerate(candidates):
            CandidateScore.objects.create(candidate=candidate, reward_model=model, score=2.0 * rank)
    return prompt


def member_make(project, django_user_model, password, username: str, role: str):
    user = django_user_model.objects.create_user(username, f"{username}@example.com", password)
    Membership.objects.create(project=project, user=user, role=role)
    return user


def _config(response) -> dict:
    match = CONFIG.search(response.content.decode())
    assert match, "the page carries its configuration as a json_script"
    return json.loads(match.group(1))


def test_a_reviewer_gets_the_page_whose_urls_are_the_live_api(
    client, project, labeler, other_labeler, django_user_model, password
):
    prompt = disputed_prompt_make(project, [labeler, other_labeler])
    reviewer = member_make(project, django_user_model, password, "rita", Role.REVIEWER)
    client.force_login(reviewer)
    response = client.get(f"/dashboard/projects/{project.pk}/triage/")
    assert response.status_code == 200
    page = response.content.decode()
    config = _config(response)
    assert config["is_admin"] is False and config["overlap"] == 2
    # Scripts come from files only (CSP): the one inline <script> is the JSON configuration.
    scripts = re.findall(r"<script([^>]*)>", page)
    assert all("src=" in attrs or 'type="application/json"' in attrs for attrs in scripts), scripts
    assert "js/dashboard_triage.js" in page and "Triage is not available" not in page

    # The configured URLs are the ones that answer: the triage lists, then an action on a ranking.
    urls = config["urls"]
    assert urls["triage"] == f"/api/projects/{project.pk}/triage"
    lists = client.get(urls["triage"]).json()
    assert [row["prompt_id"] for row in lists["prompts"]] == [prompt.pk]
    ranking = Ranking.objects.get(prompt=prompt, labeler=labeler)
    excluded = client.post(
        urls["exclude_template"].replace("/0/", f"/{ranking.pk}/"),
        {"reason": "clicked through"},
        content_type="application/json",
    )
    assert excluded.status_code == 200
    ranking.refresh_from_db()
    assert ranking.quality_state == QualityState.EXCLUDED
    restored = client.post(
        urls["restore_template"].replace("/0/", f"/{ranking.pk}/"), {}, content_type="application/json"
    )
    assert restored.json()["quality_state"] == QualityState.COUNTED
    more = client.post(
        urls["more_rankings_template"].replace("/0/", f"/{prompt.pk}/"),
        {"extra": 1},
        content_type="application/json",
    )
    assert more.json() == {"id": prompt.pk, "extra_rankings": 1}
    # A reviewer may not mark gold: the URL is right, the role is not.
    gold = client.post(
        urls["gold_template"].replace("/0/", f"/{ranking.pk}/"),
        {"is_gold": True},
        content_type="application/json",
    )
    assert gold.status_code == 403
    prompt_page = urls["prompt_template"].replace("/prompts/0/", f"/prompts/{prompt.pk}/")
    assert client.get(prompt_page).status_code == 200


def test_an_admin_is_told_so_and_the_project_page_links_to_triage(
    client, project, django_user_model, password
):
    admin = member_make(project, django_user_model, password, "boss", Role.ADMIN)
    client.force_login(admin)
    assert _config(client.get(f"/dashboard/projects/{project.pk}/triage/"))["is_admin"] is True
    project_page = client.get(f"/dashboard/projects/{project.pk}/").content.decode()
    assert f'href="/dashboard/projects/{project.pk}/triage/"' in project_page


def test_labelers_outsiders_and_strangers_do_not_get_the_page(
    client, project, labeler, other_labeler, django_user_model, password
):
    disputed_prompt_make(project, [labeler, other_labeler])
    url = f"/dashboard/projects/{project.pk}/triage/"
    anonymous = client.get(url)
    assert anonymous.status_code == 302 and "/accounts/login/" in anonymous["Location"]
    client.force_login(labeler)
    assert client.get(url).status_code == 403
    outsider = django_user_model.objects.create_user("olga", "olga@example.com", password)
    client.force_login(outsider)
    assert client.get(url).status_code == 404
    assert client.get("/dashboard/projects/999999/triage/").status_code == 404
    reviewer = member_make(project, django_user_model, password, "rita", Role.REVIEWER)
    client.force_login(reviewer)
    assert client.post(url).status_code == 405  # a page to read; the actions are the API's
