"""Admin for the work itself: assignments, rankings with their items and comparisons, export jobs."""

from __future__ import annotations

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from annotation.models import Assignment, Comparison, ExportJob, Ranking, RankingItem


@admin.register(Assignment)
class AssignmentAdmin(admin.ModelAdmin):
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
    readonly_fields = ["shown_order", "idempotency_key", "draft", "draft_saved_at"]


class RankingItemInline(admin.TabularInline):
    model = RankingItem
    extra = 0
    raw_id_fields = ["candidate"]
    readonly_fields = ["candidate", "rank", "rating", "flags"]
    can_delete = False


@admin.register(Ranking)
class RankingAdmin(admin.ModelAdmin):
    list_display = ["id", "prompt_id", "labeler", "source", "order", "is_gold", "seconds_spent", "created_at"]
    list_filter = ["source", "is_gold", "prompt__project", "labeler"]
    search_fields = ["comment", "labeler__username"]
    raw_id_fields = ["prompt", "assignment"]
    readonly_fields = ["order", "created_at"]
    inlines = [RankingItemInline]
    list_select_related = ["labeler"]
    actions = ["mark_gold", "unmark_gold"]

    @admin.action(description="Mark as gold (known-good) ranking")
    def mark_gold(self, request: HttpRequest, queryset: QuerySet[Ranking]) -> None:
        updated = queryset.update(is_gold=True)
        self.message_user(request, f"Marked {updated} ranking(s) as gold.")

    @admin.action(description="Unmark gold")
    def unmark_gold(self, request: HttpRequest, queryset: QuerySet[Ranking]) -> None:
        updated = queryset.update(is_gold=False)
        self.message_user(request, f"Unmarked {updated} ranking(s).")


@admin.register(Comparison)
class ComparisonAdmin(admin.ModelAdmin):
    list_display = ["id", "prompt_id", "labeler", "better_id", "worse_id", "created_at"]
    list_filter = ["prompt__project"]
    raw_id_fields = ["ranking", "prompt", "better", "worse"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # comparisons only ever come from a ranking

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(ExportJob)
class ExportJobAdmin(admin.ModelAdmin):
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
