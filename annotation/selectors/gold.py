"""Reads for attention checks: a labeler's standing on gold in a project, whether their next rank task
is a gold one and which, and their accuracy on gold.

Gold prompts are prompts with a ranking marked gold (`Ranking.is_gold`). A known-bad answer needs
no flag of its own: a gold ranking that ties the good answers ahead of the bad one
(`[[c1, c2, c3], [bad]]`) scores only the pairs against the bad answer.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db.models import Count, Exists, OuterRef, Q

from annotation.models import Assignment, Candidate, GoldCheck, Membership, Project, Prompt, Ranking
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.models.projects import QualificationStatus
from annotation.ranking_math import pair_set

# A labeler's standing in a project: what the lease may serve them.
WORKING = "working"  # real work, with gold mixed in at the project's share
QUALIFYING = "qualifying"  # gold only, until the qualification tasks are done
NOT_QUALIFIED = "not_qualified"  # nothing: failed qualification
PAUSED = "paused"  # nothing: rolling gold accuracy fell below the project's bar

# Gold prompts a lease looks at; a project keeps a few dozen, and the draw needs only some.
MAX_GOLD_CANDIDATES = 200


@dataclass(frozen=True)
class GoldStanding:
    state: str
    message: str  # what the labeler is told, plainly; empty while working


@dataclass(frozen=True)
class GoldChoice:
    """A gold prompt to serve: the answers to show (sorted ids) and the gold ranking they are scored on."""

    prompt_id: int
    gold_ranking_id: int
    candidate_ids: list[int]


def gold_standing(*, project: Project, membership: Membership | None) -> GoldStanding:
    """Where a member stands: working, qualifying, not qualified or paused. A superuser without a
    membership is never gated."""
    if membership is None:
        return GoldStanding(WORKING, "")
    if membership.paused_at is not None:
        return GoldStanding(
            PAUSED,
            "You are paused from work in this project because your answers on check tasks fell below "
            "the project's accuracy. An admin has been shown why and can lift the pause.",
        )
    if project.qualification_tasks > 0:
        if membership.qualification_status == QualificationStatus.FAILED:
            return GoldStanding(
                NOT_QUALIFIED,
                "You did not qualify for this project: your accuracy on the qualification tasks was "
                "below the project's bar. Ask an admin if you think this is wrong.",
            )
        if membership.qualification_status == QualificationStatus.PENDING:
            return GoldStanding(
                QUALIFYING,
                f"Qualification: rank {project.qualification_tasks} tasks first; real work opens when "
                "your answers agree well enough with the project's reference answers.",
            )
    return GoldStanding(WORKING, "")


def membership_for(*, project: Project, labeler: User) -> Membership | None:
    return Membership.objects.filter(project=project, user=labeler).first()


def gold_draw(*, project: Project, labeler: User) -> bool:
    """Whether this labeler's next rank task in `project` should be gold, at the project's share.

    A seeded draw, not a counter: the seed is (project, labeler, how many rank tasks they have
    leased there), so the choice is reproducible yet shows no pattern a labeler could learn.
    """
    if project.gold_share <= 0:
        return False
    leased = Assignment.objects.filter(project=project, labeler=labeler, kind=TaskKind.RANK).count()
    return random.Random(f"gold-{project.pk}-{labeler.pk}-{leased}").random() < project.gold_share


def gold_choice(*, project: Project, labeler: User, now: datetime) -> GoldChoice | None:
    """A gold prompt this labeler may rank now, or None.

    Not one they hold, did, skipped or ranked, nor one where their own demonstration is an answer,
    and one with K answers. Gold prompts have no capacity: every labeler may take each once, so
    they are not locked. Which one is a seeded choice, so labelers do not all see them in one order.
    """
    mine = Assignment.objects.filter(prompt=OuterRef("pk"), labeler=labeler, kind=TaskKind.RANK).exclude(
        status=AssignmentStatus.EXPIRED
    )
    prompts = list(
        Prompt.objects.filter(project=project)
        .filter(Exists(Ranking.objects.filter(prompt=OuterRef("pk"), is_gold=True).exclude(labeler=labeler)))
        .filter(
            ~Exists(mine),
            ~Exists(Ranking.objects.filter(prompt=OuterRef("pk"), labeler=labeler)),
            ~Exists(Candidate.objects.filter(prompt=OuterRef("pk"), demonstration__labeler=labeler)),
        )
        .annotate(answers=Count("candidates"))
        .filter(answers__gte=project.k)
        .order_by("id")
        .values_list("pk", flat=True)[:MAX_GOLD_CANDIDATES]
    )
    if not prompts:
        return None
    done = GoldCheck.objects.filter(project=project, labeler=labeler).count()
    prompt_id = random.Random(f"gold-prompt-{project.pk}-{labeler.pk}-{done}").choice(prompts)
    gold = (
        Ranking.objects.filter(prompt_id=prompt_id, is_gold=True)
        .filter(~Q(labeler=labeler) | Q(labeler__isnull=True))
        .order_by("-created_at", "-id")
        .values_list("pk", "order")
        .first()
    )
    if gold is None:  # unmarked since the query above
        return None
    answers = sorted(Candidate.objects.filter(prompt_id=prompt_id).values_list("pk", flat=True))
    ranked = sorted({cid for group in gold[1] for cid in group} & set(answers))
    # Show answers the gold order places whenever there are K of them, so every pair is scored;
    # otherwise K of all answers (the gold pairs among them are scored).
    return GoldChoice(
        prompt_id=prompt_id,
        gold_ranking_id=gold[0],
        candidate_ids=ranked if len(ranked) >= project.k else answers,
    )


def gold_prompts_available(*, project: Project, labeler: User) -> int:
    """How many gold prompts this labeler could still be served (what the home page shows while qualifying)."""
    mine = Assignment.objects.filter(prompt=OuterRef("pk"), labeler=labeler, kind=TaskKind.RANK).exclude(
        status=AssignmentStatus.EXPIRED
    )
    return (
        Prompt.objects.filter(project=project)
        .filter(Exists(Ranking.objects.filter(prompt=OuterRef("pk"), is_gold=True).exclude(labeler=labeler)))
        .filter(~Exists(mine), ~Exists(Ranking.objects.filter(prompt=OuterRef("pk"), labeler=labeler)))
        .annotate(answers=Count("candidates"))
        .filter(answers__gte=project.k)
        .count()
    )


def gold_score(
    *, order: Sequence[Sequence[int]], gold_order: Sequence[Sequence[int]], shown: Iterable[int]
) -> tuple[int, int]:
    """(agreed, compared): of the gold (better, worse) pairs among the shown answers, how many the
    labeler ordered the same way. A tie where gold orders the pair is a miss, so tying everything
    cannot pass a check."""
    shown_set = set(shown)
    gold_pairs = {pair for pair in pair_set(gold_order) if pair[0] in shown_set and pair[1] in shown_set}
    return len(gold_pairs & pair_set(order)), len(gold_pairs)


def pooled_accuracy(checks: Iterable[tuple[int | None, int | None]]) -> float | None:
    """Agreed pairs over compared pairs across checks (a check with more pairs weighs more); None
    when nothing was compared."""
    agreed = compared = 0
    for one_agreed, one_compared in checks:
        if one_compared:
            agreed += one_agreed or 0
            compared += one_compared
    return agreed / compared if compared else None


def gold_checks_scored(*, project: Project, labeler_id: int, since: datetime | None = None):  # noqa: ANN201
    """The labeler's submitted, scored gold checks in `project`, newest first (optionally since a time)."""
    checks = GoldCheck.objects.filter(
        project=project, labeler_id=labeler_id, submitted_at__isnull=False, compared__gt=0
    )
    if since is not None:
        checks = checks.filter(submitted_at__gt=since)
    return checks.order_by("-submitted_at", "-id")


def rolling_gold_accuracy(*, project: Project, membership: Membership) -> tuple[float | None, int]:
    """Pooled accuracy over the labeler's latest `pause_window` scored gold checks since their last
    lifted pause, and how many checks it read."""
    recent = list(
        gold_checks_scored(
            project=project, labeler_id=membership.user_id, since=membership.pause_lifted_at
        ).values_list("agreed", "compared")[: project.pause_window]
    )
    return pooled_accuracy(recent), len(recent)


def gold_standings(*, project: Project) -> list[dict]:
    """Per labeler member: standing, gold accuracy (all checks and rolling), qualification progress,
    pause details and the latest standing events. What admins read in the API."""
    rows = []
    memberships = (
        Membership.objects.filter(project=project)
        .exclude(role="reviewer")
        .select_related("user", "pause_lifted_by")
        .prefetch_related("events__actor")
        .order_by("user__username")
    )
    for membership in memberships:
        checks = list(
            gold_checks_scored(project=project, labeler_id=membership.user_id).values_list(
                "agreed", "compared", "qualification"
            )
        )
        rolling, window = rolling_gold_accuracy(project=project, membership=membership)
        rows.append(
            {
                "user_id": membership.user_id,
                "username": membership.user.username,
                "standing": gold_standing(project=project, membership=membership).state,
                "qualification_status": membership.qualification_status,
                "qualification_done": sum(1 for check in checks if check[2]),
                "qualified_at": membership.qualified_at,
                "gold_checks": len(checks),
                "gold_accuracy": pooled_accuracy((a, c) for a, c, _ in checks),
                "rolling_accuracy": rolling,
                "rolling_checks": window,
                "paused_at": membership.paused_at,
                "pause_reason": membership.pause_reason,
                "pause_lifted_by": membership.pause_lifted_by.username
                if membership.pause_lifted_by
                else None,
                "pause_lifted_at": membership.pause_lifted_at,
                "events": [
                    {
                        "action": event.action,
                        "actor": event.actor.username if event.actor else None,
                        "accuracy": event.accuracy,
                        "reason": event.reason,
                        "created_at": event.created_at,
                    }
                    for event in list(membership.events.all())[:10]
                ],
            }
        )
    return rows
