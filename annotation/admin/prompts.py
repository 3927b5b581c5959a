"""Admin for prompts, their demonstrations and candidates, with the generation actions, and the
prompt upload page with its background imports' progress."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from annotation.admin.orders import candidate_excerpt_html
from annotation.admin.scoping import ProjectScopedAdminMixin, project_admin_action
from annotation.models import Candidate, Demonstration, Project, Prompt, PromptImportJob
from annotation.permissions import MAX_ID, queryset_for_project_admin
from annotation.selectors.prompt_imports import prompt_import_job_progress, prompt_import_jobs_for_project
from annotation.services.candidates import prompts_generate_now, prompts_regenerate
from annotation.services.prompt_imports import (
    MAX_IMPORT_BYTES,
    prompt_import_is_large,
    prompt_import_job_create,
)
from annotation.services.prompts import prompts_import
from config.errors import ValidationFailed


@project_admin_action(description="Generate candidates now", permissions=["generate"])
def generate_now(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Prompt]) -> None:
    queued, already_full = prompts_generate_now(prompt_ids=list(queryset.values_list("pk", flat=True)))
    text = f"Queued candidate generation for {queued} prompt(s)."
    if already_full:
        text += f" {already_full} already had K candidates."
    modeladmin.message_user(request, text, messages.SUCCESS if queued else messages.INFO)


@project_admin_action(
    description="Regenerate model candidates (unranked prompts only)", permissions=["regenerate"]
)
def regenerate(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Prompt]) -> None:
    done, skipped = prompts_regenerate(prompt_ids=list(queryset.values_list("pk", flat=True)))
    text = f"Replacing the model candidates of {done} prompt(s)."
    if skipped:
        text += f" Skipped {skipped} that are ranked or being ranked: their candidates are what labelers saw."
    modeladmin.message_user(request, text, messages.SUCCESS if done else messages.WARNING)


@admin.register(Prompt)
class PromptAdmin(ProjectScopedAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "title_display",
        "project",
        "priority",
        "demonstration_count",
        "candidate_count",
        "ranking_count",
        "generation_state",
        "created_at",
    ]
    list_filter = ["project", "source"]
    search_fields = ["turns", "source", "content_hash"]
    readonly_fields = [
        "content_hash",
        "created_at",
        "generation_queued_at",
        "generation_error",
        "generation_error_at",
    ]
    list_select_related = ["project"]
    actions = [generate_now, regenerate]

    def has_generate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("annotation.add_candidate")

    def has_regenerate_permission(self, request: HttpRequest) -> bool:
        # Regenerating deletes the prompts' model candidates and makes new ones.
        return request.user.has_perms(["annotation.add_candidate", "annotation.delete_candidate"])

    def get_queryset(self, request: HttpRequest) -> QuerySet[Prompt]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                demonstration_total=Count("demonstrations", distinct=True),
                candidate_total=Count("candidates", distinct=True),
                ranking_total=Count("rankings", distinct=True),
            )
        )

    @admin.display(description="Prompt")
    def title_display(self, prompt: Prompt) -> str:
        return prompt.title

    @admin.display(description="Demos", ordering="demonstration_total")
    def demonstration_count(self, prompt: Prompt) -> int:
        return prompt.demonstration_total  # type: ignore[attr-defined]

    @admin.display(description="Candidates", ordering="candidate_total")
    def candidate_count(self, prompt: Prompt) -> int:
        return prompt.candidate_total  # type: ignore[attr-defined]

    @admin.display(description="Rankings", ordering="ranking_total")
    def ranking_count(self, prompt: Prompt) -> int:
        return prompt.ranking_total  # type: ignore[attr-defined]

    @admin.display(description="Generation")
    def generation_state(self, prompt: Prompt) -> str:
        if prompt.generation_error:
            return format_html('<span style="color:#b3261e" title="{}">error</span>', prompt.generation_error)
        if prompt.generation_queued_at:
            return "queued"
        return ""


@admin.register(Demonstration)
class DemonstrationAdmin(ProjectScopedAdminMixin, admin.ModelAdmin):
    project_path = "prompt__project"
    list_display = ["id", "prompt", "labeler", "seconds_spent", "created_at"]
    list_filter = ["prompt__project", "labeler"]
    search_fields = ["text", "labeler__username"]
    raw_id_fields = ["prompt", "assignment"]
    list_select_related = ["prompt", "labeler"]


@admin.register(Candidate)
class CandidateAdmin(ProjectScopedAdminMixin, admin.ModelAdmin):
    project_path = "prompt__project"
    list_display = [
        "id",
        "prompt_id",
        "text_display",
        "source",
        "backend",
        "model_name",
        "seed",
        "completion_tokens",
        "created_at",
    ]
    list_filter = ["source", "backend", "prompt__project"]
    search_fields = ["text", "model_name"]
    raw_id_fields = ["prompt", "demonstration"]
    readonly_fields = ["content_hash"]

    @admin.display(description="Answer")
    def text_display(self, candidate: Candidate) -> SafeString:
        return candidate_excerpt_html(candidate_id=candidate.pk, text=candidate.text)


# --- the upload page of a project's prompts (routed by ProjectAdmin) ---------------------------


class PromptImportForm(forms.Form):
    file = forms.FileField(
        help_text="JSONL or CSV: a 'prompt' text or a 'messages' list; optional tags, priority, source."
    )
    source = forms.CharField(
        required=False, max_length=200, help_text="Recorded on each prompt (default: the file name)."
    )


def _project_to_import_into(request: HttpRequest, project_id: int) -> Project:
    """The project, if the user administers it (else 404, as for any row of another project) and may
    add prompts (else 403)."""
    if not 0 < project_id <= MAX_ID:
        raise Http404("no such project")  # and SQLite would overflow on the id
    projects = queryset_for_project_admin(user=request.user, queryset=Project.objects.all(), project_path="")
    project = get_object_or_404(projects, pk=project_id)
    if not request.user.has_perm("annotation.add_prompt"):
        raise PermissionDenied("importing prompts needs the permission to add prompts")
    return project


def prompt_import_page(model_admin: admin.ModelAdmin, request: HttpRequest, project_id: int) -> HttpResponse:
    """Upload a prompt file. A small one is imported here and now; one past the background bounds
    (prompt_import_is_large) becomes a job, and the page moves to its progress."""
    project = _project_to_import_into(request, project_id)
    report = None
    form = PromptImportForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        upload = form.cleaned_data["file"]
        try:
            if upload.size > MAX_IMPORT_BYTES:
                raise ValidationFailed(f"The file is larger than {MAX_IMPORT_BYTES // (1024 * 1024)} MB.")
            if prompt_import_is_large(upload=upload, size=upload.size):
                job = prompt_import_job_create(
                    project=project,
                    requested_by=request.user if request.user.is_authenticated else None,
                    upload=upload,
                    filename=upload.name,
                    source=form.cleaned_data["source"],
                )
                return HttpResponseRedirect(
                    reverse("admin:annotation_project_import_job", args=[project.pk, job.pk])
                )
            report = prompts_import(
                project=project,
                content=upload.read(),
                filename=upload.name,
                source=form.cleaned_data["source"],
            )
        except ValidationFailed as error:
            form.add_error("file", error.message)
        else:
            if report.ok:
                model_admin.message_user(
                    request,
                    f"Imported {report.imported} prompt(s); skipped {report.duplicates} duplicate(s).",
                    messages.SUCCESS,
                )
                return HttpResponseRedirect(
                    reverse("admin:annotation_prompt_changelist") + f"?project__id__exact={project.pk}"
                )
            model_admin.message_user(
                request, f"{len(report.errors)} bad line(s): nothing was imported.", messages.ERROR
            )
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Import prompts into {project.name}",
        "project": project,
        "form": form,
        "report": report,
        "jobs": prompt_import_jobs_for_project(project=project)[:10],
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "admin/annotation/project/import_prompts.html", context)


def prompt_import_job_page(
    model_admin: admin.ModelAdmin, request: HttpRequest, project_id: int, job_id: int
) -> HttpResponse:
    """A background import's progress; the page reloads itself until the job has finished."""
    project = _project_to_import_into(request, project_id)
    job = get_object_or_404(PromptImportJob, pk=job_id, project=project)
    context = {
        **model_admin.admin_site.each_context(request),
        "title": f"Importing {job.filename} into {project.name}",
        "project": project,
        "job": job,
        "progress_percent": round(prompt_import_job_progress(job=job) * 100),
        "opts": model_admin.model._meta,
    }
    return TemplateResponse(request, "admin/annotation/project/import_job.html", context)
