"""Project guidelines as a labeler sees them: Markdown rendered to HTML that cannot run script.

Which projects a user sees is decided in annotation.permissions."""

from __future__ import annotations

from functools import lru_cache

import markdown
import nh3

from annotation.models import Project

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
