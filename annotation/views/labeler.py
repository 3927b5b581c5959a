"""Server-rendered labeler pages. They read through selectors; every write goes through the JSON API."""

from __future__ import annotations

from typing import cast

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from annotation.api.output import output_data
from annotation.api.serializers_history import HistoryQuerySerializer
from annotation.api.serializers_labeler import TaskOutputSerializer
from annotation.models.assignments import TaskKind
from annotation.rendering import answer_safe_html
from annotation.selectors.history import (
    history_rows,
    labeler_history,
    labeler_history_project_validate,
    labeler_history_projects,
)
from annotation.selectors.queue import (
    assignment_task_data,
    labeler_counts,
    live_assignments_for_labeler,
    work_available,
)
from annotation.services.assignments import assignment_get_for_labeler
from config.errors import NotFound, ValidationFailed

SKIP_REASONS = [
    "The prompt is unclear or makes no sense",
    "I lack the knowledge to judge it",
    "The content is harmful or disturbing to me",
    "The answers are broken or unreadable",
]
HISTORY_PAGE_SIZE = 25
TEMPLATES: dict[str, str] = {
    TaskKind.DEMONSTRATE: "labeler/demonstrate.html",
    TaskKind.RANK: "labeler/rank.html",
    TaskKind.CONVERSE: "labeler/converse.html",
}


@login_required
@require_GET
def labeler_home(request: HttpRequest) -> HttpResponse:
    """Available work per project and kind, the labeler's counts, buttons that lease a task, and
    where a project allows it, a form that opens a conversation with the labeler's own first message."""
    labeler = cast(User, request.user)  # login_required: never anonymous here
    work = work_available(labeler=labeler)
    converse_projects = [row["project"] for row in work if row["project"].converse_per_prompt > 0]
    context = {
        "work": work,
        "held": live_assignments_for_labeler(labeler=labeler),
        "counts": labeler_counts(labeler=labeler),
        # The conversation column and its opening form show only where some project has them.
        "converse_any": bool(converse_projects),
        "own_openings": [project for project in converse_projects if project.converse_own_opening],
    }
    return render(request, "labeler/home.html", context)


@login_required
@require_GET
def labeler_task(request: HttpRequest, assignment_id: int) -> HttpResponse:
    """One task page: demonstrate, rank or converse. Another labeler's assignment is a 404."""
    try:
        assignment = assignment_get_for_labeler(assignment_id=assignment_id, labeler=cast(User, request.user))
    except NotFound as error:
        raise Http404(error.message) from None
    task = output_data(TaskOutputSerializer, assignment_task_data(assignment=assignment))
    # The page shows answers formatted (the API gives scripts the text alone): rendered here, on a
    # page load, rather than in every lease's response.
    for candidate in task["candidates"]:
        candidate["html"] = answer_safe_html(candidate["text"])
    template = TEMPLATES[assignment.kind]
    context = {
        "task": task,
        "assignment": assignment,
        "skip_reasons": SKIP_REASONS,
        "guidelines_html": task["project"]["guidelines_html"],
        "counts": labeler_counts(labeler=cast(User, request.user)),
    }
    return render(request, template, context)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    whole = round(seconds)
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole // 60 % 60:02d} min"


@login_required
@require_GET
def labeler_history_page(request: HttpRequest) -> HttpResponse:
    """The labeler's own submitted and skipped tasks, newest first, optionally of one project."""
    labeler = cast(User, request.user)
    query = HistoryQuerySerializer(data=request.GET)
    project_id: int | None = None
    error = ""
    if not query.is_valid():
        error = "Choose a project from the list."
    else:
        project_id = query.validated_data.get("project")
        if project_id is not None:
            try:
                labeler_history_project_validate(labeler=labeler, project_id=project_id)
            except ValidationFailed as refused:
                error, project_id = refused.message.capitalize() + ".", None
    rows: list = []
    page = None
    if not error:
        page = Paginator(labeler_history(labeler=labeler, project_id=project_id), HISTORY_PAGE_SIZE).get_page(
            request.GET.get("page")
        )
        rows = history_rows(assignments=list(page.object_list))
        for row in rows:
            row["time_spent"] = _duration(row["seconds_spent"])
    context = {
        "rows": rows,
        "page": page,
        "projects": labeler_history_projects(labeler=labeler),
        "project_id": project_id,
        "error": error,
    }
    return render(request, "labeler/history.html", context, status=400 if error else 200)
