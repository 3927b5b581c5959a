"""Server-rendered labeler pages. They read through selectors; every write goes through the JSON API."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.api.output import output_data
from annotation.api.serializers_labeler import TaskOutputSerializer
from annotation.models.assignments import TaskKind
from annotation.rendering import answer_safe_html
from annotation.selectors.queue import (
    assignment_task_data,
    labeler_counts,
    live_assignments_for_labeler,
    work_available,
)
from annotation.services.assignments import assignment_get_for_labeler
from config.errors import NotFound

SKIP_REASONS = [
    "The prompt is unclear or makes no sense",
    "I lack the knowledge to judge it",
    "The content is harmful or disturbing to me",
    "The answers are broken or unreadable",
]


@login_required
@require_GET
def labeler_home(request: HttpRequest) -> HttpResponse:
    """Available work per project and kind, the labeler's counts, and buttons that lease a task."""
    labeler = cast(User, request.user)  # login_required: never anonymous here
    context = {
        "work": work_available(labeler=labeler),
        "held": live_assignments_for_labeler(labeler=labeler),
        "counts": labeler_counts(labeler=labeler),
    }
    return render(request, "labeler/home.html", context)


@login_required
@require_GET
def labeler_task(request: HttpRequest, assignment_id: int) -> HttpResponse:
    """One task page: demonstrate or rank. Another labeler's assignment is a 404."""
    try:
        assignment = assignment_get_for_labeler(assignment_id=assignment_id, labeler=cast(User, request.user))
    except NotFound as error:
        raise Http404(error.message) from None
    task = output_data(TaskOutputSerializer, assignment_task_data(assignment=assignment))
    # The page shows answers formatted (the API gives scripts the text alone): rendered here, on a
    # page load, rather than in every lease's response.
    for candidate in task["candidates"]:
        candidate["html"] = answer_safe_html(candidate["text"])
    template = "labeler/rank.html" if assignment.kind == TaskKind.RANK else "labeler/demonstrate.html"
    context = {
        "task": task,
        "assignment": assignment,
        "skip_reasons": SKIP_REASONS,
        "guidelines_html": task["project"]["guidelines_html"],
        "counts": labeler_counts(labeler=cast(User, request.user)),
    }
    return render(request, template, context)
