"""Admin for reward models: runs with progress, per-version agreement and loss curve, activation;
and candidate scores beside the human ranks."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from annotation.admin.orders import candidate_excerpt_html
from annotation.admin.projects import ProjectAdmin, ProjectAdminForm
from annotation.admin.scoping import ProjectScopedAdminMixin, project_admin_action
from annotation.models import Project
from annotation.permissions import queryset_for_project_admin
from config.errors import DomainError, ValidationFailed
from rewards.models import CandidateScore, RewardModel, RewardModelTrigger
from rewards.selectors.reward_models import reward_model_validation_size
from rewards.services.imports import preferences_import
from rewards.services.runs import (
    reward_model_activate,
    reward_model_cancel,
    reward_model_request,
    train_config_validate,
)

MAX_UPLOAD_BYTES = 200 * 1024 * 1024


class PreferenceImportForm(forms.Form):
    project = forms.ModelChoiceField(queryset=Project.objects.all())
    file = forms.FileField(help_text="A .jsonl file: TRL preference pairs or HH-RLHF transcripts.")
    skip_invalid = forms.BooleanField(required=False, label="Skip invalid lines")

    def clean_file(self):
        upload = self.cleaned_data["file"]
        if upload.size > MAX_UPLOAD_BYTES:
            raise forms.ValidationError("The file is larger than 200 MB; use manage.py import_preferences.")
        return upload


# ---- The project admin, extended with what belongs to the reward model -------------------------------
# The annotation app owns Project and its admin but knows nothing of reward models: this app adds
# the check of `reward_model_config` and the retrain action by registering a subclass in its place.


class RewardProjectAdminForm(ProjectAdminForm):
    def clean_reward_model_config(self):
        value = self.cleaned_data.get("reward_model_config") or {}
        try:
            train_config_validate(overrides=value)
        except ValidationFailed as error:
            raise forms.ValidationError(error.message) from None
        return value


@project_admin_action(description="Retrain the reward model now", permissions=["retrain"])
def retrain_now(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[Project]) -> None:
    for project in queryset:
        try:
            run = reward_model_request(
                project=project,
                trigger=RewardModelTrigger.ADMIN,
                requested_by=request.user if isinstance(request.user, User) else None,
            )
        except DomainError as error:
            modeladmin.message_user(request, f"{project}: {error.message}", messages.WARNING)
            continue
        modeladmin.message_user(request, f"{project}: queued reward-model run {run.pk}.", messages.SUCCESS)


admin.site.unregister(Project)


@admin.register(Project)
class RewardProjectAdmin(ProjectAdmin):
    form = RewardProjectAdminForm
    actions = [*(ProjectAdmin.actions or ()), retrain_now]  # type: ignore[misc]  # a class attribute here

    def has_retrain_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("rewards.add_rewardmodel")  # a retrain adds a run


# ---- Reward models and scores ---------------------------------------------------------------------

CURVE_WIDTH, CURVE_HEIGHT, CURVE_PAD = 480, 160, 24


def _polyline(values: list[tuple[float, float]], *, x_max: float, y_min: float, y_max: float) -> str:
    span = (y_max - y_min) or 1.0
    points = []
    for x, y in values:
        px = CURVE_PAD + (CURVE_WIDTH - 2 * CURVE_PAD) * (x / (x_max or 1.0))
        py = CURVE_HEIGHT - CURVE_PAD - (CURVE_HEIGHT - 2 * CURVE_PAD) * ((y - y_min) / span)
        points.append(f"{px:.1f},{py:.1f}")
    return " ".join(points)


def loss_curve_svg(metrics: dict) -> SafeString | str:
    """Training loss per step (blue) and validation loss per epoch (orange), as an inline SVG."""
    curve = [(float(p["step"]), float(p["train_loss"])) for p in metrics.get("curve", [])]
    epochs = metrics.get("epochs", [])
    if not curve:
        return "-"
    steps_total = curve[-1][0]
    steps_per_epoch = steps_total / max(1, len(epochs))
    validation = [
        (steps_per_epoch * epoch["epoch"], float(epoch["val_loss"]))
        for epoch in epochs
        if epoch.get("val_loss") is not None
    ]
    values = [y for _, y in curve + validation]
    y_min, y_max = min(values), max(values)
    validation_points = format_html_join(
        "",
        '<circle cx="{}" cy="{}" r="3" fill="#d9822b"/>',
        (
            (point.split(",")[0], point.split(",")[1])
            for point in _polyline(validation, x_max=steps_total, y_min=y_min, y_max=y_max).split()
        ),
    )
    return format_html(
        '<svg width="{w}" height="{h}" role="img" aria-label="loss curve" style="background:#fff">'
        '<polyline fill="none" stroke="#2b6cb0" stroke-width="2" points="{train}"/>{val}'
        '<text x="4" y="14" font-size="11">loss {y_max}</text>'
        '<text x="4" y="{bottom}" font-size="11">{y_min} (blue: train per step; orange: validation per epoch)</text>'
        "</svg>",
        w=CURVE_WIDTH,
        h=CURVE_HEIGHT,
        train=_polyline(curve, x_max=steps_total, y_min=y_min, y_max=y_max),
        val=validation_points,
        y_max=f"{y_max:.3f}",
        y_min=f"{y_min:.3f}",
        bottom=CURVE_HEIGHT - 4,
    )


def epochs_table(metrics: dict) -> SafeString | str:
    epochs = metrics.get("epochs", [])
    if not epochs:
        return "-"

    def cell(value) -> str:
        return "-" if value is None else f"{value:.4f}"

    rows = format_html_join(
        "",
        "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
        (
            (
                e["epoch"],
                cell(e.get("train_loss")),
                cell(e.get("val_loss")),
                cell(e.get("val_accuracy")),
                e.get("seconds"),
            )
            for e in epochs
        ),
    )
    return format_html(
        "<table><tr><th>Epoch</th><th>Train loss</th><th>Validation loss</th>"
        "<th>Validation accuracy</th><th>Seconds</th></tr>{}</table>",
        rows,
    )


@project_admin_action(
    description="Make the selected version active (and score candidates with it)", permissions=["activate"]
)
def activate_version(
    modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[RewardModel]
) -> None:
    if queryset.count() != 1:
        modeladmin.message_user(request, "Select exactly one version to activate.", messages.ERROR)
        return
    try:
        reward_model = reward_model_activate(reward_model=queryset.get())
    except DomainError as error:
        modeladmin.message_user(request, error.message, messages.ERROR)
        return
    modeladmin.message_user(request, f"Version {reward_model.version} is now active.", messages.SUCCESS)


@project_admin_action(description="Cancel the selected queued or running runs", permissions=["cancel"])
def cancel_runs(modeladmin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet[RewardModel]) -> None:
    for reward_model in queryset:
        try:
            reward_model_cancel(reward_model=reward_model)
            modeladmin.message_user(request, f"Run {reward_model.pk} cancelled.", messages.SUCCESS)
        except DomainError as error:
            modeladmin.message_user(request, error.message, messages.WARNING)


@admin.register(RewardModel)
class RewardModelAdmin(ProjectScopedAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "version",
        "status",
        "is_active",
        "trigger",
        "progress_percent",
        "validation_accuracy_display",
        "comparisons_seen",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "is_active", "trigger", "project"]
    list_select_related = ["project"]
    actions = [activate_version, cancel_runs]
    readonly_fields = (
        "project",
        "version",
        "status",
        "trigger",
        "requested_by",
        "is_active",
        "progress_percent",
        "progress_message",
        "heartbeat_at",
        "validation_accuracy_display",
        "epochs_display",
        "loss_curve",
        "data_summary",
        "data_cutoff",
        "comparisons_seen",
        "config",
        "artifact_path",
        "error",
        "celery_task_id",
        "created_at",
        "started_at",
        "finished_at",
    )
    fields = readonly_fields

    # The change form is read-only (has_change_permission below), so the actions that change a run
    # name the model permission themselves.
    def has_activate_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("rewards.change_rewardmodel")

    def has_cancel_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("rewards.change_rewardmodel")

    def get_urls(self):
        return [
            path(
                "import-preferences/",
                self.admin_site.admin_view(self.import_preferences_view),
                name="rewards_import_preferences",
            ),
            *super().get_urls(),
        ]

    def import_preferences_view(self, request: HttpRequest) -> HttpResponse:
        """Upload preference data into a project as imported rankings (the import service)."""
        if not request.user.has_perm("annotation.add_ranking"):
            return HttpResponse(status=403)
        report = None
        form = PreferenceImportForm(request.POST or None, request.FILES or None)
        form.fields["project"].queryset = queryset_for_project_admin(  # type: ignore[attr-defined]
            user=request.user, queryset=Project.objects.order_by("name"), project_path=""
        )
        if request.method == "POST" and form.is_valid():
            try:
                report = preferences_import(
                    project=form.cleaned_data["project"],
                    content=form.cleaned_data["file"].read(),
                    source=form.cleaned_data["file"].name,
                    skip_invalid=form.cleaned_data["skip_invalid"],
                )
            except DomainError as error:
                form.add_error("file", error.message)
        context = {**self.admin_site.each_context(request), "form": form, "report": report}
        context["title"] = "Import preference data"
        return TemplateResponse(request, "admin/rewards/import_preferences.html", context)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # runs start from "retrain now", the API or the schedule, never a blank form

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="Progress")
    def progress_percent(self, reward_model: RewardModel) -> str:
        return f"{reward_model.progress * 100:.0f}%"

    @admin.display(description="Agreement with labelers (held out)", ordering="validation_accuracy")
    def validation_accuracy_display(self, reward_model: RewardModel) -> str:
        if reward_model.validation_accuracy is None:
            return "-"
        size = reward_model_validation_size(reward_model=reward_model)
        suffix = f" of {size['validation_pairs']} pairs" if size["validation_pairs"] else ""
        if suffix and size["validation_prompts"]:
            suffix += f" from {size['validation_prompts']} prompts"
        return f"{reward_model.validation_accuracy * 100:.1f}%{suffix}"

    @admin.display(description="Metrics per epoch")
    def epochs_display(self, reward_model: RewardModel):
        return epochs_table(reward_model.metrics or {})

    @admin.display(description="Loss curve")
    def loss_curve(self, reward_model: RewardModel):
        return loss_curve_svg(reward_model.metrics or {})


@admin.register(CandidateScore)
class CandidateScoreAdmin(ProjectScopedAdminMixin, admin.ModelAdmin):
    project_path = "reward_model__project"
    list_display = ["candidate_display", "prompt", "reward_model", "score_display", "human_ranks"]
    list_filter = ["reward_model__project", "reward_model"]
    list_select_related = ["candidate", "reward_model", "reward_model__project"]
    search_fields = ["candidate__text"]
    ordering = ["candidate__prompt_id", "-score"]
    fields = ("candidate_display", "reward_model", "score", "member_scores_display", "created_at")
    readonly_fields = ("candidate_display", "reward_model", "score", "member_scores_display", "created_at")

    def get_queryset(self, request: HttpRequest) -> QuerySet[CandidateScore]:
        return super().get_queryset(request).prefetch_related("candidate__ranking_items__ranking")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    @admin.display(description="Answer")
    def candidate_display(self, score: CandidateScore) -> SafeString:
        return candidate_excerpt_html(candidate_id=score.candidate_id, text=score.candidate.text)

    @admin.display(description="Prompt", ordering="candidate__prompt_id")
    def prompt(self, score: CandidateScore) -> int:
        return score.candidate.prompt_id

    @admin.display(description="Score", ordering="score")
    def score_display(self, score: CandidateScore) -> str:
        return f"{score.score:+.3f}"

    @admin.display(description="Uncertainty heads' scores")
    def member_scores_display(self, score: CandidateScore) -> str:
        if not score.member_scores:
            return "- (this version has no uncertainty heads)"
        return ", ".join(f"{value:+.3f}" for value in score.member_scores)

    @admin.display(description="Human ranks (1 = best, of groups)")
    def human_ranks(self, score: CandidateScore) -> str:
        items = score.candidate.ranking_items.all()
        if not items:
            return "-"
        return ", ".join(f"{item.rank + 1}/{len(item.ranking.order)}" for item in items)
