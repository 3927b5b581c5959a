"""How the admin shows candidates and orders: the answers' words, not their ids.

An admin reading "17 = 20 > 19 > 18" has to open four candidates to know what was preferred; an
excerpt of each answer, with the whole text on hover, says it at a glance.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.text import Truncator

EXCERPT_CHARACTERS = 60  # about one line of an admin table cell


def candidate_excerpt_html(*, candidate_id: int, text: str | None) -> SafeString:
    """One answer as an excerpt; its full text is the tooltip. A vanished candidate keeps its id."""
    if text is None:
        return format_html('<span class="answer-excerpt missing">#{} (deleted)</span>', candidate_id)
    excerpt = Truncator(" ".join(text.split())).chars(EXCERPT_CHARACTERS)
    return format_html(
        '<span class="answer-excerpt" data-candidate-id="{}" title="{}">“{}”</span>',
        candidate_id,
        text,
        excerpt,
    )


def order_html(*, order: Sequence[Sequence[int]], texts: Mapping[int, str]) -> SafeString:
    """Tie groups best first, one numbered line per group, tied answers joined by "=".

    `texts` maps candidate ids to their text; ids missing from it are shown as deleted.
    """
    groups = format_html_join(
        "",
        "<li>{}</li>",
        (
            (
                SafeString(
                    " = ".join(
                        candidate_excerpt_html(candidate_id=candidate_id, text=texts.get(candidate_id))
                        for candidate_id in group
                    )
                ),
            )
            for group in order
        ),
    )
    return format_html('<ol class="order" style="margin:0;padding-left:1.5em">{}</ol>', groups)
