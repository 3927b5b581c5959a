"""Admin for the work itself: assignments, rankings with their items and comparisons, export jobs.

Orders and candidates show the answers' text (annotation.admin.orders), never bare candidate ids.
"""

from __future__ import annotations

from django.contrib import admin
from django.db.models import Prefetch, QuerySet
from django.http import HttpRequest
from django.utils.safestring import SafeString

from annotation.admin.orders import candidate_excerpt_html, order_html
from annotation.admin.scoping import ProjectScopedAdminMixin, project_admin_action
from annotation.models import Assignment, Candidate, Comparison, ExportJob, Ranking, RankingItem


@admin.register(Assignment)
class AssignmentAdmin(ProjectScopedAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "prompt_id",
        "labeler",
        "kind",
        "status",
        "leased_at",
        "expires_at",
        "submitted_at",
    ]
    list_filter = ["status", "kind", "project"]
    search_fields = ["labeler__username", "skip_reason"]
    raw_id_fields = ["prompt"]
    list_select_related = ["project", "labeler"]
    readonly_fields = ["shown_order_display", "idempotency_key", "draft", "draft_saved_at"]
    exclude = ["shown_order"]

    @admin.display(description="Shown order")
    def shown_order_display(self, assignment: Assignment) -> SafeString | str:
        shown = assignment.shown_order or []
        if not shown:
            return "-"
        texts = dict(Candidate.objects.filter(pk__in=shown).values_list("pk", "text"))
        return order_html(order=[[candidate_id] for candidate_id in shown], texts=texts)


class RankingItemInline(admin.TabularInline):
    model = RankingItem
    extra = 0
    fields = ("candidate_display", "rank", "rating", "flags")
    readonly_fields = ("candidate_display", "rank", "rating", "flags")
    can_delete = False

    def get_queryset(self, request: HttpRequest) -> QuerySet[RankingItem]:
        return super().get_queryset(request).select_related("candidate")

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False  # items come with their ranking, from the ranking service

    @admin.display(description="Answer")
    def candidate_display(self, item: RankingItem) -> SafeString:
        return candidate_excerpt_html(candidate_id=item.candidate_id, text=item.candidate.text)


def _ranking_texts(ranking: Ranking) -> dict[int, str]:
    """Texts of the ranked candidates, from the items prefetched by RankingAdmin.get_queryset."""
    return {item.candidate_id: item.candidate.text for item in ranking.items.all()}


@admin.register(Ranking)
class RankingAdmin(ProjectScopedAdminMixin, admin.ModelAdmin):
    project_path = "prompt__project"
    list_display = [
        "id",
        "prompt_id",
        "labeler",
        "source",
        "order_display",
        "is_gold",
        "seconds_spent",
        "created_at",
    ]
    list_filter = ["source", "is_gold", "prompt__project", "labeler"]
    search_fields = ["comment", "labeler__username"]
    raw_id_fields = ["prompt", "assignment"]
    readonly_fields = ["order_display", "created_at"]
    exclude = ["order"]
    inlines = [RankingItemInline]
    list_select_related = ["labeler"]
    actions = ["mark_gold", "unmark_gold"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Ranking]:
        # One query for every listed ranking's answers, not one per row.
        items = Prefetch("items", queryset=RankingItem.objects.select_related("candidate"))
        return super().get_queryset(request).prefetch_related(items)

    @admin.display(description="Order (best first)")
    def order_display(self, ranking: Ranking) -> SafeString:
        return order_html(order=ranking.order, texts=_ranking_texts(ranking))

    @project_admin_action(description="Mark as gold (known-good) ranking", permissions=["change"])
    def mark_gold(self, request: HttpRequest, queryset: QuerySet[Ranking]) -> None:
        updated = queryset.update(is_gold=True)
        self.message_user(request, f"Marked {updated} ranking(s) as gold.")

    @project_admin_action(description="Unmark gold", permissions=["change"])
    def unmark_gold(self, request: HttpRequest, queryset: QuerySet[Ranking]) -> None:
        updated = queryset.update(is_gold=False)
        self.message_user(request, f"Unmarked {updated} ranking(s).")


@admin.register(Comparison)
class ComparisonAdmin(ProjectScopedAdminMixin, admin.ModelAdmin):
    project_path = "prompt__project"
    list_display = ["id", "prompt_id", "labeler", "better_display", "worse_display", "created_at"]
    list_filter = ["prompt__project"]
    list_select_related = ["labeler", "better", "worse"]
    fields = ["ranking", "prompt", "labeler", "better_display", "worse_display", "created_at"]
    readonly_fields = ["better_display", "worse_display"]
    raw_id_fields = ["ranking", "prompt"]

    @admin.display(description="Better answer")
    def better_display(self, comparison: Comparison) -> SafeString:
        return candidate_excerpt_html(candidate_id=comparison.better_id, text=comparison.better.text)

    @admin.display(description="Worse answer")
    def worse_display(self, comparison: Comparison) -> SafeString:
        return candidate_excerpt_html(candidate_id=comparison.worse_id, text=comparison.worse.text)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # comparisons only ever come from a ranking

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(ExportJob)
class ExportJobAdmin(ProjectScopedAdminMixin, admin.ModelAdmin):
    list_display = [
        "id",
        "project",
        "export_format",
        "file_format",
        "status",
        "rows_written",
        "created_at",
        "finished_at",
    ]
    list_filter = ["status", "export_format", "project"]
    readonly_fields = [field.name for field in ExportJob._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
