"""Markdown written by people (guidelines) or models (answers) as HTML that cannot run script or
restyle the page: rendered with python-markdown, then cleaned by nh3 (ammonia) to an allow-list.
Pure: no database."""

from __future__ import annotations

from functools import lru_cache

import markdown
import nh3

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
def markdown_safe_html(text: str) -> str:
    """Guidelines' Markdown as safe HTML: links open without the page's context, images allowed."""
    html = markdown.markdown(text, extensions=["extra", "sane_lists"], output_format="html")
    # nh3 (ammonia) drops <script>, event-handler attributes, style, and javascript: URLs.
    return nh3.clean(
        html,
        tags=GUIDELINE_TAGS,
        attributes=GUIDELINE_ATTRIBUTES,
        url_schemes=GUIDELINE_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )


# Answers come from a model or an import: no images (they would load from anywhere, and tell a
# server when a labeler looks), no headings that outshout the page. Single newlines are kept as
# line breaks, as chat interfaces show them.
ANSWER_TAGS = GUIDELINE_TAGS - {"img", "h1", "h2"}
ANSWER_ATTRIBUTES = {key: value for key, value in GUIDELINE_ATTRIBUTES.items() if key != "img"}


@lru_cache(maxsize=1024)
def answer_safe_html(text: str) -> str:
    """A candidate answer's Markdown (code blocks, lists, emphasis) as safe HTML."""
    html = markdown.markdown(text, extensions=["extra", "sane_lists", "nl2br"], output_format="html")
    return nh3.clean(
        html,
        tags=ANSWER_TAGS,
        attributes=ANSWER_ATTRIBUTES,
        url_schemes=GUIDELINE_URL_SCHEMES,
        link_rel="noopener noreferrer nofollow",
    )
