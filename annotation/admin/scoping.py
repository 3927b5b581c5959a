"""What a staff user may see and do in the Django admin: the rows of the projects they administer.

Superusers see and do everything. Other staff users need, as everywhere in the admin, Django's model
permissions, and on top of them the admin role in a row's project (annotation/permissions.py): every
list, change page, choice of a related row and filter of a `ProjectScopedAdminMixin` admin holds only
those projects' rows; a row of another project answers 404, as a project they are not a member of
does in the app's own pages. Actions that change rows (`project_admin_action`) also need their own
model permissions, and refuse the whole selection, changing nothing, when one row is out of reach.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import get_fields_from_path
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest, HttpResponseRedirect

from annotation.models import Assignment, Candidate, Demonstration, Project, Prompt, Ranking
from annotation.permissions import (
    MAX_ID,
    project_ids_not_administered,
    queryset_for_project_admin,
    user_sees_every_project,
)

# The lookup from a row of each model that admin forms choose (foreign keys) to its project, so
# that a form offers, and accepts, only rows of the user's projects. Users: members of those projects.
FOREIGN_KEY_PROJECT_PATHS: dict[type[Model], str] = {
    Project: "",
    Prompt: "project",
    Assignment: "project",
    Candidate: "prompt__project",
    Demonstration: "prompt__project",
    Ranking: "prompt__project",
}
USER_PROJECT_PATH = "memberships__project"


def _project_id_of(obj: Model, project_path: str) -> int:
    """The id of the project `obj` belongs to, following `project_path` ("" for a project)."""
    if not project_path:
        return obj.pk
    *hops, last = project_path.split("__")
    for hop in hops:
        obj = getattr(obj, hop)
    return getattr(obj, f"{last}_id")


class ProjectScopedAdminMixin:
    """Limits a ModelAdmin to the rows of projects the staff user administers (superusers: all).

    `project_path` is the lookup from a row to its project ("" when the rows are projects). Put it
    before `admin.ModelAdmin` in the bases.
    """

    project_path: str = "project"

    def get_queryset(self, request: HttpRequest) -> QuerySet:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        return queryset_for_project_admin(
            user=request.user, queryset=queryset, project_path=self.project_path
        )

    def get_object(self, request: HttpRequest, object_id: str, from_field: str | None = None):
        # Django redirects to the admin's home for a row it cannot find; a row of another project
        # is one that does not exist for this user, and answers as such.
        obj = super().get_object(request, object_id, from_field)  # type: ignore[misc]
        if obj is None and not user_sees_every_project(request.user):
            raise Http404("no such row in a project you administer")
        return obj

    def administers(self, request: HttpRequest, obj: Model | None) -> bool:
        """Whether the user administers the project of `obj` (no object: whether they may at all)."""
        if obj is None:
            return True
        project_id = _project_id_of(obj, self.project_path)
        return not project_ids_not_administered(user=request.user, project_ids=[project_id])

    def has_view_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_view_permission(request, obj) and self.administers(request, obj)  # type: ignore[misc]

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_change_permission(request, obj) and self.administers(request, obj)  # type: ignore[misc]

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return super().has_delete_permission(request, obj) and self.administers(request, obj)  # type: ignore[misc]

    def formfield_for_foreignkey(self, db_field, request: HttpRequest, **kwargs: Any):
        related = db_field.remote_field.model
        path = USER_PROJECT_PATH if related is get_user_model() else FOREIGN_KEY_PROJECT_PATHS.get(related)
        if path is not None and "queryset" not in kwargs and not user_sees_every_project(request.user):
            queryset = self.get_field_queryset(kwargs.get("using"), db_field, request)  # type: ignore[attr-defined]
            if queryset is None:
                queryset = related._default_manager.using(kwargs.get("using")).all()
            queryset = queryset_for_project_admin(user=request.user, queryset=queryset, project_path=path)
            kwargs["queryset"] = queryset.distinct() if path == USER_PROJECT_PATH else queryset
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def get_list_filter(self, request: HttpRequest) -> Any:
        # A filter on a relation lists every related row (every project's name, every user); the
        # staff user's filters list only those their rows refer to.
        filters = super().get_list_filter(request)  # type: ignore[misc]
        if user_sees_every_project(request.user):
            return filters
        return [
            (entry, admin.RelatedOnlyFieldListFilter) if self._is_relation(entry) else entry
            for entry in filters
        ]

    def _is_relation(self, entry: Any) -> bool:
        if not isinstance(entry, str):
            return False
        try:
            return bool(get_fields_from_path(self.model, entry)[-1].is_relation)  # type: ignore[attr-defined]
        except FieldDoesNotExist:
            return False

    def response_action(self, request: HttpRequest, queryset: QuerySet, *args: Any, **kwargs: Any):
        # Django quietly drops selected ids that its list does not hold; an action over a row of
        # another project is refused whole instead, so nothing changes behind the user's back.
        refusal = self.selection_refusal(request)
        if refusal is not None:
            self.message_user(request, refusal, messages.ERROR)  # type: ignore[attr-defined]
            return HttpResponseRedirect(request.get_full_path())
        return super().response_action(request, queryset, *args, **kwargs)  # type: ignore[misc]

    def selection_refusal(self, request: HttpRequest) -> str | None:
        """Why the rows selected for an action may not be acted on, or None when they may."""
        if user_sees_every_project(request.user) or request.POST.get("select_across") == "1":
            return None  # "select all" acts on the list itself, which holds only reachable rows
        selected = request.POST.getlist(ACTION_CHECKBOX_NAME)
        ids: set[int] = set()
        for value in selected:
            try:
                ids.add(int(self.model._meta.pk.to_python(value)))  # type: ignore[attr-defined]
            except (TypeError, ValueError, ValidationError):
                return "The selection names rows that do not exist: nothing was changed."
        possible = {pk for pk in ids if 0 < pk <= MAX_ID}  # beyond these no row can exist
        found = self.get_queryset(request).filter(pk__in=possible).count() if possible else 0
        if found < len(ids):
            return (
                f"{len(ids) - found} of the {len(ids)} selected rows are not in a project you administer "
                "(or no longer exist): nothing was changed."
            )
        return None


def action_refusal(
    *, model_admin: admin.ModelAdmin, request: HttpRequest, queryset: QuerySet, permissions: Sequence[str]
) -> str | None:
    """Why the user may not run an action needing `permissions` over `queryset`, or None if they may.

    Each permission name `p` is checked by the admin's `has_<p>_permission(request)`, as Django's
    `admin.action(permissions=...)` does to decide whether to offer the action; the rows' projects
    through the admin's `project_path`.
    """
    for name in permissions:
        if not getattr(model_admin, f"has_{name}_permission")(request):
            return "You do not have the permission this action needs: nothing was changed."
    project_path = getattr(model_admin, "project_path", "")
    project_ids = set(queryset.order_by().values_list(project_path or "pk", flat=True).distinct())
    outside = project_ids_not_administered(user=request.user, project_ids=project_ids)
    if outside:
        return f"The selection holds rows of {len(outside)} project(s) you do not administer: nothing was changed."
    return None


ActionFunction = Callable[[Any, HttpRequest, QuerySet], Any]


def project_admin_action(*, description: str, permissions: Sequence[str]) -> Callable[[ActionFunction], Any]:
    """`admin.action` for an action over rows of projects.

    Django offers the action only to users passing every `has_<name>_permission(request)` of the
    admin for `permissions`; when it runs, it checks them again (an action can be called directly)
    and that the user administers the project of every row, and otherwise changes nothing and says why.
    """

    def decorate(function: ActionFunction) -> Any:
        @functools.wraps(function)
        def checked(model_admin, request: HttpRequest, queryset: QuerySet):
            refusal = action_refusal(
                model_admin=model_admin, request=request, queryset=queryset, permissions=permissions
            )
            if refusal is not None:
                model_admin.message_user(request, refusal, messages.ERROR)
                return None
            return function(model_admin, request, queryset)

        return admin.action(description=description, permissions=list(permissions))(checked)

    return decorate
