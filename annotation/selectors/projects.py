"""Reads about projects as a labeler sees them: which ones, and their guidelines as safe HTML."""

from __future__ import annotations

from functools import lru_cache

import markdown
import nh3
from django.contrib.auth.models import User
from django.db import connection
from django.db.models import QuerySet

from annotation.errors import NotFound
from annotation.models import Membership, Project
from annotation.rows import row_reader

# What guidelines may use: the Markdown a person writes, nothing that runs or restyles the page.
GUIDELINE_TAGS = {
    "a", "abbr", "b", "blockquote", "br", "code", "dd", "del", "details", "dl", "dt", "em",
    "h1", "h2", "h3", "h4", "h5", "h6", "hr", "i", "img", "kbd", "li", "ol", "p", "pre", "s",
    "strong", "sub", "summary", "sup", "table", "tbody", "td", "th", "thead", "tr", "ul",
}  # fmt: skip
GUIDELINE_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "th": {"align"},
    "td": {"align"},
}
GUIDELINE_URL_SCHEMES = {"http", "https", "mailto"}


def projects_for_labeler(*, user: User) -> QuerySet[Project]:
    """Active projects the user may label in: any membership role, or every project for staff."""
    projects = Project.objects.filter(is_active=True)
    if getattr(user, "is_staff", False) or getattr(user, "is_superuser", False):
        return projects.order_by("name")
    return projects.filter(memberships__user=user).order_by("name")


def projects_for_labeler_list(*, user: User, project_id: int | None = None) -> list[Project]:
    """`projects_for_labeler` as a list (only `project_id` when given), read with one plain query.

    Every lease starts here; on the 2-core reference machine the ORM's join cost several times
    the CPU of this read (see annotation/rows.py).
    """
    if project_id is not None and not 0 < project_id <= 2**63 - 1:
        return []  # no such id can exist (and SQLite would overflow)
    projects = row_reader(Project, alias="j")
    table, memberships = Project._meta.db_table, Membership._meta.db_table
    sql = f"SELECT {projects.columns} FROM {table} j WHERE j.is_active = %(true)s"
    if not (getattr(user, "is_staff", False) or getattr(user, "is_superuser", False)):
        sql += (
            f" AND EXISTS (SELECT 1 FROM {memberships} m WHERE m.project_id = j.id AND m.user_id = %(user)s)"
        )
    if project_id is not None:
        sql += " AND j.id = %(project)s"
    with connection.cursor() as cursor:
        cursor.execute(sql + " ORDER BY j.name", {"true": True, "user": user.pk, "project": project_id})
        return [projects.read(row) for row in cursor.fetchall()]


def project_get_for_labeler(*, user: User, project_id: int) -> Project:
    """The project if the user may label in it; NotFound otherwise (no hint that it exists)."""
    project = projects_for_labeler(user=user).filter(pk=project_id).first()
    if project is None:
        raise NotFound(f"no active project {project_id} that you belong to", code="project_not_found")
    return project


@lru_cache(maxsize=128)
def _markdown_to_safe_html(text: str) -> str:
    html = markdown.markdown(text, extensions=["extra", "sane_lists"], output_format="html")
    # nh3 (ammonia) drops <script>, event-handler attributes, style, and javascript: URLs.
    return nh3.clean(
        html,
        tags=GUIDELINE_TAGS,
        attributes=GUIDELINE_ATTRIBUTES,
        url_schemes=GUIDELINE_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )


def guidelines_html(*, project: Project) -> str:
    """The project's Markdown guidelines as HTML that cannot run script in a labeler's page."""
    return _markdown_to_safe_html(project.guidelines or "")
