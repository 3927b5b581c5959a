"""Reviewer pages: the review queue (one submission at a time, accept or reject with a reason) and
adjudication (prompts whose labelers disagree, and one prompt's rankings side by side with the rank
widget for the adjudicated order).

Thin: the item and lists come from annotation.selectors.review, rendered on the server; the page
scripts (static/js/review.js, review_adjudicate.js) only post to the review API and reload.
"""

from __future__ import annotations

from typing import Any, cast

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from annotation.models.projects import Role
from annotation.permissions import project_for_role
from annotation.rendering import answer_safe_html
from annotation.selectors.review import (
    adjudication_detail,
    adjudication_prompts,
    review_item,
    review_next,
    review_waiting_count,
)
from annotation.views.dashboard import _domain_errors_as_http


def _with_html(answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    # Markdown rendered and sanitised here, as on the rank page: nothing in an answer can run.
    return [dict(answer, html=answer_safe_html(answer["text"])) for answer in answers]


@require_GET
@login_required
@_domain_errors_as_http
def review_queue_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """The next submission this reviewer judges (reviewers and admins), or word that none waits."""
    project = project_for_role(user=request.user, project_id=project_id, minimum=Role.REVIEWER)
    reviewer = cast(User, request.user)  # login_required: never anonymous here
    found = review_next(project=project, reviewer=reviewer)
    item = review_item(project=project, kind=found[0], item_id=found[1]) if found else None
    if item and item["ranking"]:
        ranking = item["ranking"]
        letters = {answer["id"]: answer["letter"] for answer in ranking["answers"]}
        ranking["answers"] = _with_html(ranking["answers"])
        ranking["groups"] = [[letters.get(cid, "?") for cid in group] for group in ranking["order"]]
    return render(
        request,
        "review/queue.html",
        {
            "project": project,
            "item": item,
            "waiting": review_waiting_count(project=project, reviewer=reviewer),
            "review_config": {"decide": reverse("api-review-decide", kwargs={"project_id": project.pk})},
        },
    )


@require_GET
@login_required
@_domain_errors_as_http
def adjudication_list_page(request: HttpRequest, project_id: int) -> HttpResponse:
    """Prompts waiting for adjudication, lowest agreement first (reviewers and admins)."""
    project = project_for_role(user=request.user, project_id=project_id, minimum=Role.REVIEWER)
    return render(
        request,
        "review/adjudication_list.html",
        {"project": project, "prompts": adjudication_prompts(project=project)},
    )


@require_GET
@login_required
@_domain_errors_as_http
def adjudication_page(request: HttpRequest, project_id: int, prompt_id: int) -> HttpResponse:
    """One prompt's counted labeler rankings side by side, and the rank widget for the adjudicated
    order (reviewers and admins)."""
    project = project_for_role(user=request.user, project_id=project_id, minimum=Role.REVIEWER)
    detail = adjudication_detail(project=project, prompt_id=prompt_id)
    letters = {answer["id"]: answer["letter"] for answer in detail["answers"]}
    for ranking in detail["rankings"]:
        ranking["groups"] = [[letters.get(cid, "?") for cid in group] for group in ranking["order"]]
    if detail["adjudicated"]:
        adjudicated = detail["adjudicated"]
        adjudicated["groups"] = [[letters.get(cid, "?") for cid in group] for group in adjudicated["order"]]
    answers = _with_html(detail["answers"])
    return render(
        request,
        "review/adjudicate.html",
        {
            "project": project,
            "detail": detail,
            "answers": answers,
            "adjudication_config": {
                "submit": reverse(
                    "api-adjudication-detail", kwargs={"project_id": project.pk, "prompt_id": prompt_id}
                ),
                "list": reverse("review-adjudication-list", kwargs={"project_id": project.pk}),
                "candidates": [
                    {"id": a["id"], "text": a["text"], "html": a["html"], "cut_off": a["cut_off"]}
                    for a in answers
                ],
                # Flags and ratings belong to labelers' work; an adjudicated order is only an order.
                "flags": [],
                "done": detail["adjudicated"] is not None,
            },
        },
    )
