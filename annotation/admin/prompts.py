"""Admin for prompts, their demonstrations and candidates, with the generation actions."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.safestring import SafeString

from annotation.admin.orders import candidate_excerpt_html
from annotation.models import Candidate, Demonstration, Prompt
from annotation.services.candidates import prompts_generate_now, prompts_regenerate


@admin.action(description="Generate candidates now")
def generate_now(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Prompt]) -> None:
    queued, already_full = prompts_generate_now(prompt_ids=list(queryset.values_list("pk", flat=True)))
    text = f"Queued candidate generation for {queued} prompt(s)."
    if already_full:
        text += f" {already_full} already had K candidates."
    modeladmin.message_user(request, text, messages.SUCCESS if queued else messages.INFO)


@admin.action(description="Regenerate model candidates (unranked prompts only)")
def regenerate(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Prompt]) -> None:
    done, skipped = prompts_regenerate(prompt_ids=list(queryset.values_list("pk", flat=True)))
    text = f"Replacing the model candidates of {done} prompt(s)."
    if skipped:
        text += f" Skipped {skipped} that are ranked or being ranked: their candidates are what labelers saw."
    modeladmin.message_user(request, text, messages.SUCCESS if done else messages.WARNING)


@admin.register(Prompt)
class PromptAdmin(admin.ModelAdmin):
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
class DemonstrationAdmin(admin.ModelAdmin):
    list_display = ["id", "prompt", "labeler", "seconds_spent", "created_at"]
    list_filter = ["prompt__project", "labeler"]
    search_fields = ["text", "labeler__username"]
    raw_id_fields = ["prompt", "assignment"]
    list_select_related = ["prompt", "labeler"]


@admin.register(Candidate)
class CandidateAdmin(admin.ModelAdmin):
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
