"""Admin for projects and their members, with the prompt upload page.

The reward-model app extends `ProjectAdmin` (its retrain action, the check of `reward_model_config`)
from its own admin module, so this app never imports it.
"""

from __future__ import annotations

from typing import cast
from urllib.parse import urlsplit

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import Count, QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import path, reverse
from django.utils.html import format_html

from annotation.admin.prompts import prompt_import_job_page, prompt_import_page
from annotation.admin.scoping import ProjectScopedAdminMixin
from annotation.generation.base import GenerationFailed
from annotation.models import Membership, MembershipEvent, Project
from annotation.models.projects import GenerationBackend, RankingLayout
from annotation.permissions import user_sees_every_project
from annotation.services.generation import generation_base_url_check, generation_model_path_check
from annotation.services.gold import membership_pause_lift
from config.errors import Conflict


class ProjectAdminForm(forms.ModelForm):
    # The key is write-only: the form never renders the stored value back into the page.
    generation_api_key = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=(
            "Write-only. Leave empty to keep the stored key, unless the base URL's server (scheme, "
            "host or port) changes: then the stored key is cleared, so that it is never sent to "
            "another server. Tick 'clear API key' to remove it."
        ),
    )
    clear_generation_api_key = forms.BooleanField(required=False, label="Clear API key")
    # Not required: a form posted without it (a script written before the field) keeps the stored layout.
    ranking_layout = forms.ChoiceField(
        choices=RankingLayout.choices,
        required=False,
        initial=RankingLayout.AUTO,
        help_text=Project._meta.get_field("ranking_layout").help_text,
    )

    class Meta:
        model = Project
        fields = "__all__"  # noqa: DJ007 - the admin fieldsets choose what shows

    def clean_stop_sequences(self):
        value = self.cleaned_data.get("stop_sequences") or []
        if not isinstance(value, list) or not all(isinstance(item, str) and item for item in value):
            raise forms.ValidationError('Give a JSON list of non-empty strings, e.g. ["\\nQuestion:"].')
        return value

    def clean_ranking_layout(self) -> str:
        return self.cleaned_data.get("ranking_layout") or self.instance.ranking_layout or RankingLayout.AUTO

    def clean(self):
        cleaned = super().clean()
        k = cleaned.get("k")  # absent when K itself is invalid: its own error says so
        if cleaned.get("ranking_layout") == RankingLayout.SIDE_BY_SIDE and k is not None and k != 2:
            # The database refuses it too, but as an IntegrityError: say what to change instead.
            self.add_error(
                "ranking_layout",
                f"Side by side shows exactly two answers: set K to 2, or choose 'list' or 'auto' (K is {k}).",
            )
        if cleaned.get("generation_backend") == GenerationBackend.OPENAI:
            # Refused here rather than discovered later as an error on every prompt.
            if not cleaned.get("generation_base_url"):
                self.add_error(
                    "generation_base_url", "An OpenAI-compatible backend needs the server's base URL."
                )
            if not cleaned.get("generation_model"):
                self.add_error("generation_model", "An OpenAI-compatible backend needs the model name.")
        elif cleaned.get("generation_backend") == GenerationBackend.EMBEDDED and cleaned.get(
            "generation_model"
        ):
            # The worker opens this file: only from the configured model folders.
            try:
                generation_model_path_check(path=cleaned["generation_model"])
            except GenerationFailed as error:
                self.add_error("generation_model", error.message)
        if cleaned.get("generation_base_url") and "generation_base_url" not in self.errors:
            # The worker would send requests (and the key) there from inside the deployment's network.
            try:
                generation_base_url_check(url=cleaned["generation_base_url"])
            except GenerationFailed as error:
                self.add_error("generation_base_url", error.message)
        return cleaned

    def save(self, commit: bool = True):
        project = super().save(commit=False)
        new_key = self.cleaned_data.get("generation_api_key")
        self.key_cleared_for_new_server = False
        if self.cleaned_data.get("clear_generation_api_key"):
            project.generation_api_key = ""
        elif not new_key and self.instance.pk:
            stored = Project.objects.get(pk=self.instance.pk)
            if _server(stored.generation_base_url) == _server(project.generation_base_url):
                project.generation_api_key = stored.generation_api_key
            else:  # a key given for one server is never sent to another
                project.generation_api_key = ""
                self.key_cleared_for_new_server = bool(stored.generation_api_key)
        if commit:
            project.save()
            self.save_m2m()
        return project


def _server(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) of a base URL: what decides where its key would be sent."""
    parts = urlsplit(url or "")
    try:
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        port = None
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


# Standing on attention checks is set by gold submissions and lifted by the action below, never typed in.
STANDING_FIELDS = ["qualification_status", "paused_at", "pause_reason", "pause_lifted_by", "pause_lifted_at"]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 1
    autocomplete_fields = ["user"]
    fields = ["user", "role", *STANDING_FIELDS]
    readonly_fields = STANDING_FIELDS


@admin.register(Project)
class ProjectAdmin(ProjectScopedAdminMixin, admin.ModelAdmin):
    project_path = ""
    form = ProjectAdminForm
    inlines = [MembershipInline]
    list_display = [
        "name",
        "is_active",
        "k",
        "rankings_per_prompt",
        "demonstrations_per_prompt",
        "prompt_count",
        "generation_backend",
        "import_link",
    ]
    list_filter = ["is_active", "generation_backend"]
    search_fields = ["name", "description"]
    fieldsets = [
        (None, {"fields": ["name", "description", "guidelines", "is_active"]}),
        (
            "Work per prompt",
            {
                "fields": [
                    "k",
                    "rankings_per_prompt",
                    "demonstrations_per_prompt",
                    "min_demonstration_chars",
                    "ratings_required",
                    "ranking_layout",
                    "lease_seconds",
                ]
            },
        ),
        (
            "Generation",
            {
                "fields": [
                    "generation_backend",
                    "generation_model",
                    "generation_base_url",
                    "generation_api_key",
                    "clear_generation_api_key",
                    "temperature",
                    "top_p",
                    "max_tokens",
                    "stop_sequences",
                    "demonstrations_as_candidates",
                    "low_water_mark",
                ]
            },
        ),
        (
            "Reward model",
            {"fields": ["retrain_enabled", "retrain_min_new_comparisons", "reward_model_config"]},
        ),
        (
            "Conversations with the model",
            {"fields": ["converse_per_prompt", "converse_max_turns", "converse_own_opening"]},
        ),
        ("Queue strategy", {"fields": ["queue_strategy", "exploration_share"]}),
        ("Dataset card of exports", {"fields": ["dataset_license", "dataset_source"]}),
        ("Review and adjudication", {"fields": ["review_sample_rate", "adjudication_threshold"]}),
        (
            "Attention checks and qualification",
            {
                "fields": [
                    "gold_share",
                    "qualification_tasks",
                    "qualification_accuracy",
                    "pause_accuracy",
                    "pause_window",
                ]
            },
        ),
        (
            "Bias and spam signals (a labeler whose signal passes its threshold is sent to review)",
            {
                "fields": [
                    "position_bias_threshold",
                    "repeated_order_threshold",
                    "speed_ratio_threshold",
                    "length_bias_threshold",
                    "duplicate_share_threshold",
                ]
            },
        ),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Project]:
        return super().get_queryset(request).annotate(prompt_total=Count("prompts", distinct=True))

    def has_add_permission(self, request: HttpRequest) -> bool:
        # A new project has no members, so one added by a staff user would vanish from their own
        # admin: superusers create projects and make someone their admin.
        return super().has_add_permission(request) and user_sees_every_project(request.user)

    def save_model(self, request: HttpRequest, obj: Project, form, change: bool) -> None:
        super().save_model(request, obj, form, change)
        if getattr(form, "key_cleared_for_new_server", False):
            self.message_user(
                request,
                "The base URL now names another server, so the stored API key was cleared: "
                "enter the key for the new server.",
                messages.WARNING,
            )

    @admin.display(description="Prompts", ordering="prompt_total")
    def prompt_count(self, project: Project) -> int:
        return project.prompt_total  # type: ignore[attr-defined]

    @admin.display(description="Import")
    def import_link(self, project: Project) -> str:
        return format_html(
            '<a href="{}">Import prompts</a>', reverse("admin:annotation_project_import", args=[project.pk])
        )

    def get_urls(self):
        return [
            path(
                "<int:project_id>/import/",
                self.admin_site.admin_view(self.import_prompts_view),
                name="annotation_project_import",
            ),
            path(
                "<int:project_id>/import/<int:job_id>/",
                self.admin_site.admin_view(self.import_job_view),
                name="annotation_project_import_job",
            ),
            *super().get_urls(),
        ]

    def import_prompts_view(self, request: HttpRequest, project_id: int) -> HttpResponse:
        return prompt_import_page(self, request, project_id)

    def import_job_view(self, request: HttpRequest, project_id: int, job_id: int) -> HttpResponse:
        return prompt_import_job_page(self, request, project_id, job_id)


class MembershipEventInline(admin.TabularInline):
    """Why the labeler's standing changed: qualification, pauses on gold accuracy, lifts."""

    model = MembershipEvent
    extra = 0
    can_delete = False
    fields = ["created_at", "action", "accuracy", "reason", "actor"]
    readonly_fields = ["created_at", "action", "accuracy", "reason", "actor"]

    def has_add_permission(self, request: HttpRequest, obj: Membership | None = None) -> bool:
        return False


@admin.register(Membership)
class MembershipAdmin(ProjectScopedAdminMixin, admin.ModelAdmin):
    list_display = [
        "user",
        "project",
        "role",
        "qualification_status",
        "paused_at",
        "pause_reason",
        "created_at",
    ]
    list_filter = ["role", "qualification_status", "project"]
    search_fields = ["user__username", "project__name"]
    autocomplete_fields = ["user"]
    readonly_fields = [*STANDING_FIELDS, "qualified_at"]
    inlines = [MembershipEventInline]
    actions = ["lift_pause"]

    @admin.action(description="Lift pause / waive failed qualification")
    def lift_pause(self, request: HttpRequest, queryset: QuerySet) -> None:
        lifted = 0
        for membership in queryset:
            try:
                membership_pause_lift(
                    membership_id=membership.pk, actor=cast(User, request.user), reason="admin action"
                )
            except Conflict:
                continue  # neither paused nor failed: nothing to lift
            lifted += 1
        self.message_user(request, f"Lifted {lifted} of {queryset.count()} selected.", messages.SUCCESS)
