"""Admin actions on the Prompt changelist; the lead wires them into `PromptAdmin.actions`."""

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from annotation.models import Prompt
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
