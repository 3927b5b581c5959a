"""Who may see and do what in which project: the one home of project visibility and role checks.

Roles, from least to most: labeler (works on their own tasks only), reviewer (reads everything in their
projects, edits nothing, takes no labeler tasks), admin (everything: exports, gold, retraining; may also
try tasks). Superusers count as admin of every project; other staff users are what their memberships
make them, like anyone (staff only opens the Django admin, where the same memberships and the model
permissions apply). Membership decides who sees a project at all: to a non-member a project does not
exist (404), so ids cannot be probed; a member whose role is too low gets 403. A labeler removed from
a project loses their tasks in it too (`labeler_task_access_check`).

Every list of projects a user may see comes from `projects_for_role` (labelers' queue:
`projects_for_labeler`, which adds "active"); every single-project check from `project_for_role` (or
the DRF classes below, which call it). Other apps call the same helpers, e.g.
`project_for_role(user=request.user, project_id=..., minimum=Role.ADMIN)` before retraining. The
Django admin scopes its rows with `queryset_for_project_admin` and checks an action's selection with
`project_ids_not_administered` (annotation/admin/scoping.py).
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Exists, OuterRef, QuerySet
from rest_framework.permissions import SAFE_METHODS, BasePermission

from annotation.models import Membership, Project
from annotation.models.projects import Role
from config.errors import Forbidden, NotFound

ROLE_LEVEL = {Role.LABELER: 1, Role.REVIEWER: 2, Role.ADMIN: 3}
# Who takes labeler tasks: labelers, and admins trying the queue. Reviewers judge the work, so doing it
# themselves would mix the two.
LABELING_ROLES = (Role.LABELER, Role.ADMIN)
MAX_ID = 2**63 - 1  # the largest id a BigAutoField can hold


def user_is_staff(user) -> bool:
    return bool(user and user.is_authenticated and (user.is_staff or user.is_superuser))


def user_sees_every_project(user) -> bool:
    """Superusers only: a staff user without superuser rights is scoped by their memberships."""
    return bool(user and user.is_authenticated and user.is_superuser)


def project_role(*, user, project: Project | int) -> str | None:
    """The user's role in the project (superusers: admin), or None for a non-member or anonymous user."""
    if not user or not user.is_authenticated:
        return None
    if user_sees_every_project(user):
        return Role.ADMIN
    project_id = project.pk if isinstance(project, Project) else project
    return Membership.objects.filter(project_id=project_id, user=user).values_list("role", flat=True).first()


def role_at_least(role: str | None, minimum: str) -> bool:
    return role is not None and ROLE_LEVEL[Role(role)] >= ROLE_LEVEL[Role(minimum)]


def projects_for_role(*, user, minimum: str = Role.LABELER) -> QuerySet[Project]:
    """Projects where the user holds at least `minimum` (superusers: all), by name."""
    if not user or not user.is_authenticated:
        return Project.objects.none()
    projects = Project.objects.order_by("name", "id")
    if user_sees_every_project(user):
        return projects
    roles = [role for role, level in ROLE_LEVEL.items() if level >= ROLE_LEVEL[Role(minimum)]]
    member = Membership.objects.filter(project=OuterRef("pk"), user=user, role__in=roles)
    return projects.filter(Exists(member))


def projects_for_labeler(*, user, project_id: int | None = None) -> QuerySet[Project]:
    """Active projects the user may label in (labeler or admin; superusers: all), by name; only
    `project_id` if given."""
    if not user or not user.is_authenticated:
        return Project.objects.none()
    projects = Project.objects.order_by("name", "id").filter(is_active=True)
    if not user_sees_every_project(user):
        member = Membership.objects.filter(project=OuterRef("pk"), user=user, role__in=LABELING_ROLES)
        projects = projects.filter(Exists(member))
    if project_id is not None:
        if not 0 < project_id <= MAX_ID:
            return projects.none()  # no such id can exist (and SQLite would overflow)
        projects = projects.filter(pk=project_id)
    return projects


def project_for_role(*, user, project_id: int, minimum: str) -> Project:
    """The project if the user holds at least `minimum` in it.

    Raises NotFound when the project does not exist or the user is not a member, Forbidden when the
    user is a member with a lower role.
    """
    project = Project.objects.filter(pk=project_id).first()
    role = project_role(user=user, project=project_id) if project else None
    if project is None or role is None:
        raise NotFound("no such project", code="project_not_found")
    if not role_at_least(role, minimum):
        raise Forbidden(f"this needs the {Role(minimum).label.lower()} role in the project", code="forbidden")
    return project


def queryset_for_project_admin(*, user, queryset: QuerySet, project_path: str) -> QuerySet:
    """The rows of `queryset` in projects where the user is an admin (superusers: all of them).

    `project_path` is the lookup from a row to its project ("project", "prompt__project"; "" when the
    rows are projects). The Django admin scopes every list, page and choice of a staff user with it.
    """
    if user_sees_every_project(user):
        return queryset
    administered = projects_for_role(user=user, minimum=Role.ADMIN).values("pk")
    return queryset.filter(**{f"{project_path or 'pk'}__in": administered})


def project_ids_not_administered(*, user, project_ids: Iterable[int]) -> set[int]:
    """Those of `project_ids` where the user is not an admin (superusers: none)."""
    wanted = set(project_ids)
    if user_sees_every_project(user) or not wanted:
        return set()
    administered = projects_for_role(user=user, minimum=Role.ADMIN).filter(pk__in=wanted)
    return wanted - set(administered.values_list("pk", flat=True))


def labeler_task_access_check(*, user, role: str | None) -> None:
    """Refuse a labeler task (lease, open, draft, skip, submit) to anyone who may not label in the project.

    `role`: the user's membership role there (None: not a member). Raises NotFound for a non-member
    (a labeler removed from the project: their old tasks look like no task at all), Forbidden for a
    reviewer.
    """
    if user_sees_every_project(user):
        return
    if role is None:
        raise NotFound("no such task in a project you belong to", code="assignment_not_found")
    if role not in LABELING_ROLES:
        raise Forbidden("reviewers read a project's work; they do not take labeler tasks", code="forbidden")


def can_view_all_project_data(*, user, project: Project | int) -> bool:
    """Reviewers and admins read every labeler's work in the project."""
    return role_at_least(project_role(user=user, project=project), Role.REVIEWER)


def can_administer(*, user, project: Project | int) -> bool:
    return role_at_least(project_role(user=user, project=project), Role.ADMIN)


class _ProjectRolePermission(BasePermission):
    """Checks the role in the project named by the URL's `project_id` (or found by `view.get_project_id`).

    `read_role` applies to safe methods, `write_role` to the rest; the matrix test reads these
    attributes to know what each endpoint should answer.
    """

    read_role: str = Role.LABELER
    write_role: str = Role.ADMIN

    def has_permission(self, request, view) -> bool:
        if not request.user or not request.user.is_authenticated:
            return False  # DRF answers 401 with the authenticate header
        project_id = view.kwargs.get("project_id")
        if project_id is None and hasattr(view, "get_project_id"):
            project_id = view.get_project_id()
        if project_id is None:
            return True  # the view checks object by object through project_for_role
        minimum = self.read_role if request.method in SAFE_METHODS else self.write_role
        view.project = project_for_role(user=request.user, project_id=int(project_id), minimum=minimum)
        return True


class IsProjectMember(_ProjectRolePermission):
    read_role = Role.LABELER
    write_role = Role.LABELER


class IsProjectReviewer(_ProjectRolePermission):
    """Reviewers and admins read; only admins write."""

    read_role = Role.REVIEWER
    write_role = Role.ADMIN


class IsProjectAdmin(_ProjectRolePermission):
    read_role = Role.ADMIN
    write_role = Role.ADMIN
