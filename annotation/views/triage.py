"""The reviewer's triage page: where the active reward model confidently disagrees with the labelers'
consensus, the labelers who agree least with the model and with their peers, and the excluded rankings,
with the actions (exclude, restore, mark gold, ask for one more ranking).

Thin: the lists come from the reward-model app's triage API, found by URL name so that annotation
never imports rewards; the actions are the quality API's; the roles come from annotation.permissions.
"""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from annotation.models.projects import Role
from annotation.permissions import can_administer, project_for_role
from annotation.views.dashboard import _domain_errors_as_http, _optional_url


@require_GET
@login_required
@_domain_errors_as_http
def dashboard_triage(request: HttpRequest, project_id: int) -> HttpResponse:
    """The triage page of a project (reviewers and admins); its script fetches the lists."""
    project = project_for_role(user=request.user, project_id=project_id, minimum=Role.REVIEWER)
    is_admin = can_administer(user=request.user, project=project)
    urls = {
        # None when the reward-model app is not installed: the page says so instead of failing.
        "triage": _optional_url("project-triage", project_id=project.pk),
        # The endpoints for ranking or prompt 0; the page substitutes the real id.
        "exclude_template": reverse("ranking-exclude", kwargs={"ranking_id": 0}),
        "restore_template": reverse("ranking-restore", kwargs={"ranking_id": 0}),
        "gold_template": reverse("ranking-gold-set", kwargs={"ranking_id": 0}),
        "more_rankings_template": reverse("prompt-more-rankings", kwargs={"prompt_id": 0}),
        "prompt_template": reverse("dashboard-prompt", kwargs={"project_id": project.pk, "prompt_id": 0}),
    }
    return render(
        request,
        "dashboard/triage.html",
        {
            "project": project,
            "is_admin": is_admin,
            "triage_config": {
                "urls": urls,
                "is_admin": is_admin,
                # "One more ranking" is relative to the overlap: the API sets the extra wanted, not a delta.
                "overlap": project.rankings_per_prompt,
            },
        },
    )
