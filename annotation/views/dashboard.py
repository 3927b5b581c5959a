"""Admin and reviewer dashboard pages: charts of throughput, queue depth, agreement and reward models;
the export page (direct download or background job). Thin: permission checks live in
annotation.permissions, numbers in the selectors, and the charts fetch the quality API."""

from __future__ import annotations

import functools
from typing import cast

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseBase, QueryDict
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.views.decorators.http import require_GET, require_POST

from annotation.api.exports import streaming_download
from annotation.exports.formats import FORMATS
from annotation.exports.writers import FILE_FORMATS
from annotation.models import Membership
from annotation.models.projects import Role
from annotation.permissions import can_administer, project_for_role, projects_for_role
from annotation.rendering import answer_safe_html
from annotation.selectors.exports import export_job_file, export_job_get_for_admin, export_jobs_for_project
from annotation.selectors.overview import project_overviews
from annotation.selectors.prompt_review import prompt_review_get
from annotation.services.exports import export_job_create, export_request_validate
from config.errors import DomainError, Forbidden, NotFound

FILTER_FIELDS = (
    "date_from",
    "date_to",
    "min_agreement",
    # the export options (annotation/exports/options.py)
    "pair_policy",
    "tie_policy",
    "kto_from",
    "desirable_rating",
    "undesirable_rating",
    "test_fraction",
    "split_output",
    "edit_pairs",
    "consensus_weighting",
    "min_labeler_reliability",
)
FLAG_FIELDS = ("consensus_only", "exclude_flagged", "exclude_none_acceptable", "anonymise", "margin")


def _domain_errors_as_http(view):
    """NotFound -> 404 and Forbidden -> 403 pages, like the API's status codes."""

    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except NotFound as error:
            raise Http404(error.message) from None
        except Forbidden as error:
            raise PermissionDenied(error.message) from None

    return wrapper


def _filters_from_query(query) -> dict:
    filters = {key: query.get(key) for key in FILTER_FIELDS if query.get(key)}
    filters.update({key: True for key in FLAG_FIELDS if query.get(key) in ("on", "true", "1")})
    labelers = [value for value in query.getlist("labelers") if value]
    if labelers:
        filters["labelers"] = labelers
    return filters


def _retrain_url(project_id: int) -> str | None:
    """The reward-model app's retrain endpoint, when that app provides it."""
    for kwargs in ({"project_id": project_id}, {"pk": project_id}):
        try:
            return reverse("reward-model-retrain", kwargs=kwargs)
        except NoReverseMatch:
            continue
    return None


def _optional_url(name: str, **kwargs) -> str | None:
    """A URL another app (the reward models) provides, or None when it is not installed: the pages
    then leave its column out instead of failing."""
    try:
        return reverse(name, kwargs=kwargs)
    except NoReverseMatch:
        return None


@require_GET
@login_required
def dashboard_home(request: HttpRequest) -> HttpResponse:
    """Every project the user reviews, with its figures at a glance and links into its pages."""
    projects = projects_for_role(user=request.user, minimum=Role.REVIEWER).order_by("name")
    home_config = {"urls": {"active_reward_models": _optional_url("reward-model-active-list")}}
    return render(
        request,
        "dashboard/home.html",
        {"overviews": project_overviews(projects=projects), "home_config": home_config},
    )


@require_GET
@login_required
@_domain_errors_as_http
def dashboard_project(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_for_role(user=request.user, project_id=project_id, minimum=Role.REVIEWER)
    urls = {
        "throughput": reverse("quality-throughput", kwargs={"project_id": project.pk}),
        "queue_depth": reverse("quality-queue-depth", kwargs={"project_id": project.pk}),
        "agreement": reverse("quality-agreement-over-time", kwargs={"project_id": project.pk}),
        "summary": reverse("quality-summary", kwargs={"project_id": project.pk}),
        "labelers": reverse("quality-labelers", kwargs={"project_id": project.pk}),
        "prompts": reverse("quality-prompts", kwargs={"project_id": project.pk}),
        # The gold endpoint for ranking 0; the page substitutes the real id.
        "gold_template": reverse("ranking-gold-set", kwargs={"ranking_id": 0}),
        "reward_models": reverse("quality-reward-model-history", kwargs={"project_id": project.pk}),
        "retrain": _retrain_url(project.pk),
        # A prompt's page for prompt 0; the page substitutes the real id.
        "prompt_template": reverse("dashboard-prompt", kwargs={"project_id": project.pk, "prompt_id": 0}),
    }
    return render(
        request,
        "dashboard/project.html",
        {
            "project": project,
            "urls": urls,
            "dashboard_config": {
                "urls": urls,
                "days": 30,
                "is_admin": can_administer(user=request.user, project=project),
            },
            "is_admin": can_administer(user=request.user, project=project),
        },
    )


@require_GET
@login_required
@_domain_errors_as_http
def dashboard_prompt(request: HttpRequest, project_id: int, prompt_id: int) -> HttpResponse:
    """One prompt side by side: answers, each ranking's rank and rating, consensus, reward scores."""
    project = project_for_role(user=request.user, project_id=project_id, minimum=Role.REVIEWER)
    review = prompt_review_get(project=project, prompt_id=prompt_id)
    answers = [(candidate, answer_safe_html(candidate.text)) for candidate in review.candidates]
    scores_url = _optional_url("prompt-reward-scores", project_id=project.pk, prompt_id=prompt_id)
    return render(
        request,
        "dashboard/prompt.html",
        {
            "project": project,
            "review": review,
            "answers": answers,
            "prompt_config": {"urls": {"scores": scores_url}},
            # A turn of a conversation, or a prompt someone continued: its tree has a page.
            "in_conversation": review.prompt.parent_id is not None or review.prompt.children.exists(),
        },
    )


def _form_query(data: QueryDict) -> QueryDict:
    """The export form's choices alone (no CSRF token), as the page's query string keeps them."""
    kept = QueryDict(mutable=True)
    for key in ("export_format", "file_format", *FILTER_FIELDS, *FLAG_FIELDS, "labelers"):
        values = [value for value in data.getlist(key) if value]
        if values:
            kept.setlist(key, values)
    return kept


def _exports_page(
    request: HttpRequest, project, *, query: QueryDict, error: str | None = None, status: int = 200
) -> HttpResponse:
    """The export form filled in from `query` (the URL's, or a refused POST's), and the recent jobs."""
    members = Membership.objects.filter(project=project).select_related("user").order_by("user__username")
    return render(
        request,
        "dashboard/exports.html",
        {
            "project": project,
            "formats": FORMATS.values(),
            "file_formats": FILE_FORMATS,
            "members": members,
            "jobs": export_jobs_for_project(project=project)[:20],
            "error": error,
            "query": query,
            "selected_labelers": query.getlist("labelers"),
        },
        status=status,
    )


@require_GET
@login_required
@_domain_errors_as_http
def dashboard_exports(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_for_role(user=request.user, project_id=project_id, minimum=Role.ADMIN)
    return _exports_page(request, project, query=request.GET)


@require_GET
@login_required
@_domain_errors_as_http
def dashboard_export_download(request: HttpRequest, project_id: int) -> HttpResponseBase:
    project = project_for_role(user=request.user, project_id=project_id, minimum=Role.ADMIN)
    try:
        export_request = export_request_validate(
            project=project,
            export_format=request.GET.get("export_format", ""),
            file_format=request.GET.get("file_format", "jsonl"),
            filters=_filters_from_query(request.GET),
        )
    except DomainError as error:
        return _exports_page(request, project, query=request.GET, error=error.message, status=400)
    return streaming_download(request_obj=export_request)


@require_POST
@login_required
@_domain_errors_as_http
def dashboard_export_start(request: HttpRequest, project_id: int) -> HttpResponse:
    project = project_for_role(user=request.user, project_id=project_id, minimum=Role.ADMIN)
    try:
        job = export_job_create(
            project=project,
            requested_by=cast(User, request.user),  # login_required: never anonymous here
            export_format=request.POST.get("export_format", ""),
            file_format=request.POST.get("file_format", "jsonl"),
            filters=_filters_from_query(request.POST),
        )
    except DomainError as error:
        return _exports_page(request, project, query=request.POST, error=error.message, status=400)
    messages.info(request, f"Export {job.pk} queued; it appears below with its progress.")
    # Back to the form with the admin's choices in the URL, so they survive this and any reload.
    page = reverse("dashboard-exports", kwargs={"project_id": project.pk})
    return redirect(f"{page}?{_form_query(request.POST).urlencode()}")


@require_GET
@login_required
@_domain_errors_as_http
def dashboard_export_file(request: HttpRequest, job_id: int) -> HttpResponseBase:
    job = export_job_get_for_admin(user=request.user, job_id=job_id)
    path = export_job_file(job=job)
    return FileResponse(open(path, "rb"), as_attachment=True, filename=path.name)  # noqa: SIM115
