"""Project guidelines as a labeler sees them.

Which projects a user sees is decided in annotation.permissions."""

from __future__ import annotations

from annotation.models import Project
from annotation.rendering import markdown_safe_html


def guidelines_html(*, project: Project) -> str:
    """The project's Markdown guidelines as HTML that cannot run script in a labeler's page."""
    return markdown_safe_html(project.guidelines or "")
