"""Admin action on the Project changelist; the lead wires it into `ProjectAdmin.actions`."""

from __future__ import annotations

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.http import HttpRequest

from annotation.errors import DomainError
from annotation.models import Project
from rewards.models import RewardModelTrigger
from rewards.services.runs import reward_model_request


@admin.action(description="Retrain the reward model now")
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
