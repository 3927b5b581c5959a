"""The dashboard home: one row of figures per project, read with a fixed number of queries however
many projects there are (each figure is one grouped query over all of them, never one per row).

The active reward model is not here: annotation does not read the rewards app; the page fetches it
from that app's API by URL name.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta
from itertools import groupby
from operator import itemgetter
from typing import Any

from django.db.models import Count, F, Q
from django.utils import timezone

from annotation.models import Demonstration, Project, Prompt, Ranking
from annotation.ranking_math import AgreementTally, orders_agreement

ITERATOR_CHUNK = 2000
WEEK_DAYS = 7


def _work_progress(project_ids: list[int]) -> dict[int, dict[str, int]]:
    """Prompts, and per kind those done (the project's quota met) and in progress (some but not all
    of it), from the done counts the submission services keep on each prompt."""
    rank_quota = F("project__rankings_per_prompt")
    demo_quota = F("project__demonstrations_per_prompt")
    rows = (
        Prompt.objects.filter(project_id__in=project_ids)
        .values("project_id")
        .annotate(
            prompts=Count("id"),
            rank_done=Count("id", filter=Q(rankings_done__gte=rank_quota)),
            rank_started=Count("id", filter=Q(rankings_done__gt=0, rankings_done__lt=rank_quota)),
            demonstrate_done=Count("id", filter=Q(demonstrations_done__gte=demo_quota)),
            demonstrate_started=Count(
                "id", filter=Q(demonstrations_done__gt=0, demonstrations_done__lt=demo_quota)
            ),
        )
        .order_by()
    )
    return {
        row["project_id"]: {
            "prompts": row["prompts"],
            "rank_done": row["rank_done"],
            "rank_started": row["rank_started"],
            "demonstrate_done": row["demonstrate_done"],
            "demonstrate_started": row["demonstrate_started"],
        }
        for row in rows
    }


def _ranking_pace(project_ids: list[int], *, today_start, week_start) -> dict[int, dict[str, int]]:
    rows = (
        Ranking.objects.filter(prompt__project_id__in=project_ids, created_at__gte=week_start)
        .values(project_id=F("prompt__project_id"))
        .annotate(
            rankings_week=Count("id"), rankings_today=Count("id", filter=Q(created_at__gte=today_start))
        )
        .order_by()
    )
    return {
        row["project_id"]: {"rankings_week": row["rankings_week"], "rankings_today": row["rankings_today"]}
        for row in rows
    }


def _active_labelers(project_ids: list[int], *, week_start) -> dict[int, int]:
    """Distinct people who submitted a ranking or a demonstration in the week (imports have none)."""
    people: dict[int, set[int]] = defaultdict(set)
    for model in (Ranking, Demonstration):
        pairs = (
            model.objects.filter(
                prompt__project_id__in=project_ids, created_at__gte=week_start, labeler__isnull=False
            )
            .values_list("prompt__project_id", "labeler_id")
            .distinct()
            .order_by()
        )
        for project_id, labeler_id in pairs:
            people[project_id].add(labeler_id)
    return {project_id: len(ids) for project_id, ids in people.items()}


def agreement_by_project(*, project_ids: Iterable[int]) -> dict[int, AgreementTally]:
    """Each project's pairwise agreement and tau over every prompt ranked more than once: the figure
    the project page's summary shows, from one streaming pass over all the projects' orders."""
    rows = (
        Ranking.objects.filter(prompt__project_id__in=list(project_ids))
        .order_by("prompt__project_id", "prompt_id", "id")
        .values_list("prompt__project_id", "prompt_id", "order")
        .iterator(chunk_size=ITERATOR_CHUNK)
    )
    tallies: dict[int, AgreementTally] = defaultdict(AgreementTally)
    for (project_id, _prompt_id), group in groupby(rows, key=itemgetter(0, 1)):
        prompt_tally = orders_agreement([order for _, _, order in group])
        if not prompt_tally.ranking_pairs:
            continue
        total = tallies[project_id]
        total.agreed += prompt_tally.agreed
        total.compared += prompt_tally.compared
        total.tau_sum += prompt_tally.tau_sum
        total.tau_count += prompt_tally.tau_count
        total.ranking_pairs += prompt_tally.ranking_pairs
    return tallies


def project_overviews(*, projects: Iterable[Project]) -> list[dict[str, Any]]:
    """One row per project, in the order given: prompts; per kind of work the prompts done and in
    progress; rankings today and in the last 7 days (local time); people active in those 7 days;
    pairwise agreement and tau. Six queries in all."""
    projects = list(projects)
    ids = [project.pk for project in projects]
    now = timezone.localtime()
    today_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    week_start = today_start - timedelta(days=WEEK_DAYS - 1)
    progress = _work_progress(ids)
    pace = _ranking_pace(ids, today_start=today_start, week_start=week_start)
    active = _active_labelers(ids, week_start=week_start)
    agreement = agreement_by_project(project_ids=ids)
    empty_progress = dict.fromkeys(
        ("prompts", "rank_done", "rank_started", "demonstrate_done", "demonstrate_started"), 0
    )
    rows = []
    for project in projects:
        tally = agreement.get(project.pk, AgreementTally())
        rows.append(
            {
                "project": project,
                **progress.get(project.pk, empty_progress),
                **pace.get(project.pk, {"rankings_week": 0, "rankings_today": 0}),
                "active_labelers": active.get(project.pk, 0),
                "agreement": tally.agreement,
                "kendall_tau": tally.tau,
                "pairs_compared": tally.compared,
            }
        )
    return rows
