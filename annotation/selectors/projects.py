"""Project guidelines as a labeler sees them, and the project a command line names.

Which projects a user sees is decided in annotation.permissions."""

from __future__ import annotations

from annotation.models import Project
from annotation.rendering import markdown_safe_html


def guidelines_html(*, project: Project) -> str:
    """The project's Markdown guidelines as HTML that cannot run script in a labeler's page."""
    return markdown_safe_html(project.guidelines or "")


def project_by_reference(*, reference: str) -> Project | None:
    """The project a management command's argument names: the one with that id when `reference` is
    all digits and such a project exists, else the one with that name; None when neither does."""
    found = Project.objects.filter(pk=int(reference)).first() if reference.isdigit() else None
    return found or Project.objects.filter(name=reference).first()
