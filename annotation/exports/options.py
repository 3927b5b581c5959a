"""Export options: how rows are shaped (pairs, ties, margin, KTO labels, split), beside the filters.

They travel with the filters (one JSON object on a job, one query string on a download) and are parsed
here with the same kind of error, `invalid_option`, naming the option. Which options fit which format
is checked by `options_check_format`, so a KTO export with a tie policy is refused, not ignored.
"""

from __future__ import annotations

from typing import Any

from config.errors import ValidationFailed

PAIR_POLICIES = ("all", "adjacent", "best_vs_rest")
TIE_POLICIES = ("drop", "keep")
KTO_SOURCES = ("rankings", "ratings")
SPLIT_OUTPUTS = ("column", "files")
# Conversation pairs: every pair, none holding a labeler's edit, or the edited > chosen > rejected
# chain (defined in annotation/exports/conversations.py).
EDIT_PAIRS = ("all", "without_edits", "edited_chosen_rejected")
# consensus_only: every ranking's vote weighs 1, or its labeler's estimated reliability (log-odds,
# annotation/selectors/reliability.py), so careful labelers decide where the votes split.
CONSENSUS_WEIGHTINGS = ("unweighted", "reliability")

# Ratings are 1-7 (RankingItem); 5 and up reads as "good", 3 and below as "poor", 4 is left out.
DEFAULT_DESIRABLE_RATING = 5
DEFAULT_UNDESIRABLE_RATING = 3

OPTION_DEFAULTS: dict[str, Any] = {
    "pair_policy": "all",
    "tie_policy": "drop",
    "margin": False,
    "kto_from": "rankings",
    "desirable_rating": DEFAULT_DESIRABLE_RATING,
    "undesirable_rating": DEFAULT_UNDESIRABLE_RATING,
    "test_fraction": 0.0,
    "split_output": "column",
    "edit_pairs": "all",
    "consensus_weighting": "unweighted",
}
OPTION_KEYS = frozenset(OPTION_DEFAULTS)


def _error(message: str, option: str) -> ValidationFailed:
    return ValidationFailed(message, code="invalid_option", details={"option": option})


def _choice(raw: dict[str, Any], name: str, choices: tuple[str, ...]) -> str:
    value = raw.get(name)
    if value in (None, ""):
        return OPTION_DEFAULTS[name]
    if value not in choices:
        raise _error(f"{name} must be one of {', '.join(choices)}, not {value!r}", name)
    return value


def _rating(raw: dict[str, Any], name: str) -> int:
    value = raw.get(name)
    if value in (None, ""):
        return OPTION_DEFAULTS[name]
    try:
        if isinstance(value, bool):
            raise ValueError
        number = int(str(value).strip())
    except ValueError:
        raise _error(f"{name} must be a whole rating from 1 to 7, not {value!r}", name) from None
    if not 1 <= number <= 7:
        raise _error(f"{name} must be a rating from 1 to 7", name)
    return number


def _fraction(raw: dict[str, Any]) -> float:
    value = raw.get("test_fraction")
    if value in (None, ""):
        return 0.0
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise _error(
            f"test_fraction must be a number from 0 to 0.5, not {value!r}", "test_fraction"
        ) from None
    # More than half held out is a mistake for either share, and 0 means "no split".
    if not 0.0 <= number <= 0.5:
        raise _error("test_fraction must be from 0 (no split) to 0.5", "test_fraction")
    return number


def export_options_parse(*, raw: dict[str, Any], parse_bool) -> dict[str, Any]:
    """The options in `raw` as keyword arguments of ExportFilters; defaults for those left out."""
    options = {
        "pair_policy": _choice(raw, "pair_policy", PAIR_POLICIES),
        "tie_policy": _choice(raw, "tie_policy", TIE_POLICIES),
        "margin": parse_bool(raw.get("margin"), name="margin"),
        "kto_from": _choice(raw, "kto_from", KTO_SOURCES),
        "desirable_rating": _rating(raw, "desirable_rating"),
        "undesirable_rating": _rating(raw, "undesirable_rating"),
        "test_fraction": _fraction(raw),
        "split_output": _choice(raw, "split_output", SPLIT_OUTPUTS),
        "edit_pairs": _choice(raw, "edit_pairs", EDIT_PAIRS),
        "consensus_weighting": _choice(raw, "consensus_weighting", CONSENSUS_WEIGHTINGS),
    }
    if options["desirable_rating"] <= options["undesirable_rating"]:
        raise _error("desirable_rating must be above undesirable_rating", "desirable_rating")
    if options["split_output"] == "files" and not options["test_fraction"]:
        raise _error("split_output=files needs a test_fraction above 0", "split_output")
    return options


# Which options each kind of format reads; any other option set away from its default is refused.
_OPTIONS_BY_KIND = {
    "pairs": {"pair_policy", "tie_policy", "margin", "consensus_weighting"},
    "kto": {"kto_from", "desirable_rating", "undesirable_rating"},
    "rankings": {"consensus_weighting"},
    "demonstrations": set(),
    "prompts": set(),
    "conversation_pairs": {"pair_policy", "tie_policy", "margin", "edit_pairs"},
    "trees": set(),
}
_SPLIT_OPTIONS = {"test_fraction", "split_output"}
# Filters that make no sense for a format kind (they would be silently ignored).
_FILTERS_REFUSED_BY_KIND = {
    "prompts": (
        "labelers",
        "min_agreement",
        "consensus_only",
        "exclude_flagged",
        "exclude_none_acceptable",
        "anonymise",
        "min_labeler_reliability",
    ),
    # A demonstration is no ranking: nothing in it can be marked none acceptable.
    "demonstrations": ("exclude_none_acceptable", "min_labeler_reliability"),
    # A tree holds every ranking and answer of its conversations; it is cut by the root's dates only.
    "trees": (
        "labelers",
        "min_agreement",
        "consensus_only",
        "exclude_flagged",
        "exclude_none_acceptable",
        "min_labeler_reliability",
    ),
}


def options_check_format(*, filters, kind: str, format_name: str) -> None:
    """Refuse options and filters that `format_name` (of `kind`) would not read."""
    allowed = _OPTIONS_BY_KIND[kind] | _SPLIT_OPTIONS
    for name in sorted(OPTION_KEYS - allowed):
        if getattr(filters, name) != OPTION_DEFAULTS[name]:
            raise _error(f"{name} does not apply to {format_name} exports", name)
    if (
        kind == "kto"
        and filters.kto_from == "rankings"
        and (
            filters.desirable_rating != DEFAULT_DESIRABLE_RATING
            or filters.undesirable_rating != DEFAULT_UNDESIRABLE_RATING
        )
    ):
        raise _error("rating thresholds apply to kto_from=ratings", "desirable_rating")
    if filters.edit_pairs == "edited_chosen_rejected" and filters.consensus_only:
        raise _error(
            "edit_pairs=edited_chosen_rejected follows each ranking's own order; it cannot use consensus_only",
            "edit_pairs",
        )
    if filters.consensus_weighting != "unweighted" and not filters.consensus_only:
        raise _error("consensus_weighting applies to consensus_only exports", "consensus_weighting")
    if filters.consensus_weighting != "unweighted" and filters.derives_pairs:
        # Derived pairs (pair or tie policy, margin) take their consensus from exports/derived.py,
        # which weighs every ranking alike: refused rather than silently unweighted.
        raise _error(
            "consensus_weighting=reliability reads the stored comparisons: leave pair_policy, tie_policy "
            "and margin at their defaults",
            "consensus_weighting",
        )
    for name in _FILTERS_REFUSED_BY_KIND.get(kind, ()):
        value = filters.labeler_ids if name == "labelers" else getattr(filters, name)
        if value not in (None, False):
            raise ValidationFailed(
                f"{name} does not apply to {format_name} exports",
                code="invalid_filter",
                details={"filter": name},
            )
