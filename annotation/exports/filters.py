"""Export filters: parsed from outside input (API query, admin form, job JSON, CLI) with clear errors."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import asdict, dataclass, field, replace
from datetime import date, datetime, time, timedelta
from typing import Any

from django.conf import settings
from django.utils import timezone
from django.utils.dateparse import parse_date, parse_datetime

from annotation.exports.options import OPTION_DEFAULTS, OPTION_KEYS, export_options_parse
from config.errors import ValidationFailed

FILTER_KEYS = (
    frozenset(
        {
            "date_from",
            "date_to",
            "labelers",
            "min_agreement",
            "consensus_only",
            "exclude_flagged",
            "exclude_none_acceptable",
            "anonymise",
            "min_labeler_reliability",
        }
    )
    | OPTION_KEYS
)


@dataclass(frozen=True)
class ExportFilters:
    """What to keep. Dates bound the time a row was made (comparison, ranking or demonstration).

    `date_to` is exclusive; a date-only input means "through the end of that day".
    `labeler_ids` keeps only those labelers' work (imports have no labeler and are then dropped).
    `min_agreement` (0-1) keeps prompts whose rankings agree pairwise at least that often; prompts
    ranked once have no agreement and are dropped. `consensus_only` replaces each prompt's rankings by
    the consensus (ranked pairs, see selectors/consensus.py). `exclude_flagged` drops every answer any
    labeler flagged. `exclude_none_acceptable` drops the rankings (and their pairs) whose labeler found
    no answer acceptable; by default they are kept, since their order still says which answer is
    less bad. `anonymise` replaces labeler names by pseudonyms (see LabelerNames).
    `min_labeler_reliability` (0-1) drops the rankings of labelers whose estimated reliability
    (annotation/selectors/reliability.py) is below it; imports and labelers without an estimate stay.
    """

    date_from: datetime | None = None
    date_to: datetime | None = None
    labeler_ids: tuple[int, ...] | None = None
    min_agreement: float | None = None
    consensus_only: bool = False
    exclude_flagged: bool = False
    exclude_none_acceptable: bool = False
    anonymise: bool = False
    min_labeler_reliability: float | None = None
    pair_policy: str = "all"
    tie_policy: str = "drop"
    margin: bool = False
    kto_from: str = "rankings"
    desirable_rating: int = OPTION_DEFAULTS["desirable_rating"]
    undesirable_rating: int = OPTION_DEFAULTS["undesirable_rating"]
    test_fraction: float = 0.0
    split_output: str = "column"
    edit_pairs: str = "all"
    consensus_weighting: str = "unweighted"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def needs_prompt_groups(self) -> bool:
        return self.min_agreement is not None or self.consensus_only

    def as_json(self) -> dict[str, Any]:
        """The JSON stored on an ExportJob; `export_filters_parse` reads it back unchanged."""
        data = asdict(self)
        data.pop("extra")
        data["labelers"] = list(data.pop("labeler_ids")) if self.labeler_ids is not None else None
        for key in ("date_from", "date_to"):
            data[key] = data[key].isoformat() if data[key] else None
        # Options at their defaults are left out, so jobs stored before they existed read the same.
        return {
            key: value
            for key, value in data.items()
            if value not in (None, False) and not (key in OPTION_DEFAULTS and value == OPTION_DEFAULTS[key])
        }

    def without_split(self) -> ExportFilters:
        """These filters with no split column (for files that are one split each)."""
        return replace(self, test_fraction=0.0, split_output="column")

    @property
    def derives_pairs(self) -> bool:
        """Whether pairs must be derived from the rankings' tie groups and ratings instead of read
        from the stored comparisons (which hold every untied pair and nothing else)."""
        return self.pair_policy != "all" or self.tie_policy != "drop" or self.margin


def _parse_moment(value: Any, *, name: str, end_of_day: bool) -> datetime | None:
    if value in (None, ""):
        return None
    moment: datetime | None
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, date):
        moment = datetime.combine(value, time.min)
        if end_of_day:
            moment += timedelta(days=1)
    elif isinstance(value, str):
        not_a_date = ValidationFailed(
            f"{name} must be an ISO date (2024-05-01) or date-time, not {value!r}",
            code="invalid_filter",
            details={"filter": name},
        )
        try:  # well-formed but impossible (2024-02-30, 25:00) raises ValueError
            moment = parse_datetime(value.strip())
            day = parse_date(value.strip()) if moment is None else None
        except ValueError:
            raise not_a_date from None
        if moment is None:
            if day is None:
                raise not_a_date
            moment = datetime.combine(day, time.min) + (timedelta(days=1) if end_of_day else timedelta())
    else:
        raise ValidationFailed(
            f"{name} must be a date string", code="invalid_filter", details={"filter": name}
        )
    if timezone.is_naive(moment):
        moment = timezone.make_aware(moment, timezone.get_current_timezone())
    return moment


def _parse_bool(value: Any, *, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if value in (None, ""):
        return False
    if isinstance(value, str) and value.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(value, str) and value.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ValidationFailed(f"{name} must be true or false", code="invalid_filter", details={"filter": name})


def _parse_labelers(value: Any) -> tuple[int, ...] | None:
    if value in (None, "", []):
        return None
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        raise ValidationFailed(
            "labelers must be a list of user ids", code="invalid_filter", details={"filter": "labelers"}
        )
    ids: list[int] = []
    for item in value:
        try:
            if isinstance(item, bool):
                raise ValueError
            ids.append(int(str(item).strip()))
        except ValueError:
            raise ValidationFailed(
                f"labelers must be user ids; {item!r} is not one",
                code="invalid_filter",
                details={"filter": "labelers"},
            ) from None
    return tuple(sorted(set(ids)))


def _parse_fraction(value: Any, *, name: str = "min_agreement") -> float | None:
    if value in (None, ""):
        return None
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise ValidationFailed(
            f"{name} must be a number between 0 and 1, not {value!r}",
            code="invalid_filter",
            details={"filter": name},
        ) from None
    if not 0.0 <= number <= 1.0:
        raise ValidationFailed(
            f"{name} must be between 0 and 1",
            code="invalid_filter",
            details={"filter": name},
        )
    return number


def export_filters_parse(*, raw: dict[str, Any] | None) -> ExportFilters:
    """Read filters from a mapping of outside input; raise ValidationFailed naming the bad filter."""
    raw = dict(raw or {})
    if "anonymise_seed" in raw:
        # Seeds were stored in jobs and written into URLs; pseudonyms are now keyed server-side.
        raise ValidationFailed(
            "anonymise_seed is no longer accepted: pass anonymise=true; pseudonyms are keyed by a server "
            "secret and the project",
            code="invalid_filter",
            details={"filter": "anonymise_seed"},
        )
    unknown = sorted(set(raw) - FILTER_KEYS)
    if unknown:
        raise ValidationFailed(
            f"unknown filter(s): {', '.join(unknown)}", code="invalid_filter", details={"unknown": unknown}
        )
    date_from = _parse_moment(raw.get("date_from"), name="date_from", end_of_day=False)
    date_to = _parse_moment(raw.get("date_to"), name="date_to", end_of_day=True)
    if date_from and date_to and date_from >= date_to:
        raise ValidationFailed("date_from must come before date_to", code="invalid_filter")
    return ExportFilters(
        date_from=date_from,
        date_to=date_to,
        labeler_ids=_parse_labelers(raw.get("labelers")),
        min_agreement=_parse_fraction(raw.get("min_agreement")),
        consensus_only=_parse_bool(raw.get("consensus_only"), name="consensus_only"),
        exclude_flagged=_parse_bool(raw.get("exclude_flagged"), name="exclude_flagged"),
        exclude_none_acceptable=_parse_bool(
            raw.get("exclude_none_acceptable"), name="exclude_none_acceptable"
        ),
        anonymise=_parse_bool(raw.get("anonymise"), name="anonymise"),
        min_labeler_reliability=_parse_fraction(
            raw.get("min_labeler_reliability"), name="min_labeler_reliability"
        ),
        **export_options_parse(raw=raw, parse_bool=_parse_bool),
    )


def pseudonym_key(*, project_id: int) -> bytes:
    """The project's pseudonym key: an HMAC of the project id under the server's secret.

    The secret is EXPORT_PSEUDONYM_KEY, or SECRET_KEY when that is empty. Nothing a requester types
    goes in, so there is no seed to store, return or put in a URL, and nobody without the secret can
    recompute a pseudonym from a user id (user ids are small numbers: a guessable key would be a
    lookup table).
    """
    secret = settings.EXPORT_PSEUDONYM_KEY or settings.SECRET_KEY
    return hmac.new(
        secret.encode(), f"labeler-pseudonym:project:{project_id}".encode(), hashlib.sha256
    ).digest()


class LabelerNames:
    """Turns labeler ids into the names an export shows: usernames, or pseudonyms.

    A pseudonym is an HMAC of the id under the project's pseudonym key: stable within a project (a
    labeler's rows stay linked across its exports), different between projects (exports of two
    projects cannot be joined on it), unlinkable without the server secret. Names are cached; the
    cache is bounded by the number of users.
    """

    def __init__(self, *, anonymise: bool, project_id: int) -> None:
        self.key = pseudonym_key(project_id=project_id) if anonymise else None
        self.cache: dict[int | None, str | None] = {None: None}

    def pseudonym(self, user_id: int) -> str:
        assert self.key is not None
        digest = hmac.new(self.key, str(user_id).encode(), hashlib.sha256).hexdigest()
        return f"labeler-{digest[:12]}"

    def load(self, user_ids: set[int | None]) -> None:
        missing = {user_id for user_id in user_ids if user_id not in self.cache}
        if not missing:
            return
        if self.key is not None:
            for user_id in missing:
                self.cache[user_id] = self.pseudonym(user_id)  # type: ignore[arg-type]
            return
        from django.contrib.auth import get_user_model

        user_model = get_user_model()
        names = dict(
            user_model.objects.filter(pk__in=[pk for pk in missing if pk is not None]).values_list(
                "pk", user_model.USERNAME_FIELD
            )
        )
        for user_id in missing:
            self.cache[user_id] = names.get(user_id, f"user-{user_id}")

    def __getitem__(self, user_id: int | None) -> str | None:
        return self.cache[user_id]
