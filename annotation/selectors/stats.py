"""Per-labeler statistics, throughput over time and queue depth per kind.

Reward-model history lives with the reward models, in rewards.selectors.reward_models.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Avg, Count, Q
from django.db.models.functions import TruncDate
from django.utils import timezone

from annotation.models import (
    Assignment,
    Candidate,
    Demonstration,
    Membership,
    Project,
    Prompt,
    Ranking,
    RankingItem,
)
from annotation.models.assignments import AssignmentStatus
from annotation.ranking_math import consensus_from_orders, orders_agreement
from annotation.selectors.agreement import agreement_scan
from annotation.selectors.reliability import (
    ProjectQuality,
    project_krippendorff_alpha,
    project_quality,
    prompts_weighted_consensus,
)

MAX_DAYS = 366


def labeler_stats(*, project: Project) -> list[dict[str, Any]]:
    """One row per member or contributor: tasks done, seconds per task, skip rate, agreement with the
    others on shared prompts, agreement with gold, flags raised. Ordered by username."""
    rankings: dict[int, Any] = {
        row["labeler_id"]: row
        for row in Ranking.objects.filter(prompt__project=project, labeler__isnull=False)
        .values("labeler_id")
        .annotate(n=Count("id"), seconds=Avg("seconds_spent"))
    }
    demonstrations: dict[int, Any] = {
        row["labeler_id"]: row
        for row in Demonstration.objects.filter(prompt__project=project)
        .values("labeler_id")
        .annotate(n=Count("id"), seconds=Avg("seconds_spent"))
    }
    assignments = {
        row["labeler_id"]: row
        for row in Assignment.objects.filter(project=project)
        .values("labeler_id")
        .annotate(
            skipped=Count("id", filter=Q(status=AssignmentStatus.SKIPPED)),
            finished=Count("id", filter=Q(status__in=[AssignmentStatus.SUBMITTED, AssignmentStatus.SKIPPED])),
        )
    }
    flags = dict(
        RankingItem.objects.filter(ranking__prompt__project=project, ranking__labeler__isnull=False)
        .exclude(flags=[])
        .values("ranking__labeler_id")
        .annotate(n=Count("id"))
        .values_list("ranking__labeler_id", "n")
    )
    roles = dict(Membership.objects.filter(project=project).values_list("user_id", "role"))
    report = agreement_scan(project_id=project.pk)
    quality = project_quality(project=project)
    user_ids = set(roles) | set(rankings) | set(demonstrations) | set(assignments)
    users = get_user_model().objects.filter(pk__in=user_ids).order_by("username")
    rows = []
    for user in users:
        ranked = rankings.get(user.pk, {"n": 0, "seconds": None})
        demo = demonstrations.get(user.pk, {"n": 0, "seconds": None})
        n_rank = ranked["n"]
        done = n_rank + demo["n"]
        seconds_total = (ranked["seconds"] or 0) * n_rank + (demo["seconds"] or 0) * demo["n"]
        assignment = assignments.get(user.pk, {"skipped": 0, "finished": 0})
        tally = report.labelers.get(user.pk)
        gold = report.gold.get(user.pk)
        rows.append(
            {
                "user_id": user.pk,
                "username": user.get_username(),
                "role": roles.get(user.pk),
                "rankings": n_rank,
                "demonstrations": demo["n"],
                "tasks_done": done,
                "seconds_per_task": seconds_total / done if done else None,
                "skipped": assignment["skipped"],
                "skip_rate": assignment["skipped"] / assignment["finished"]
                if assignment["finished"]
                else None,
                "agreement": tally.agreement if tally else None,
                "kendall_tau": tally.tau if tally else None,
                "pairs_compared": tally.compared if tally else 0,
                "gold_agreement": gold.agreement if gold else None,
                "gold_pairs_compared": gold.compared if gold else 0,
                "flags_raised": flags.get(user.pk, 0),
                **_labeler_quality(quality=quality, labeler_id=user.pk),
            }
        )
    return rows


def _labeler_quality(*, quality: ProjectQuality, labeler_id: int) -> dict[str, Any]:
    """Reliability (EM) and every bias and spam signal of one labeler, for the labeler stats."""
    estimate = quality.labeler(labeler_id)
    signals = quality.signals.get(labeler_id, {})
    return {
        "reliability": estimate.reliability if estimate else None,
        "reliability_standard_error": estimate.standard_error if estimate else None,
        "adversarial": bool(estimate and estimate.adversarial),
        "signals": {
            name: {
                "value": signal.value,
                "samples": signal.samples,
                "threshold": signal.threshold,
                "fires": signal.fires,
                "reason": signal.reason,
            }
            for name, signal in sorted(signals.items())
        },
        "signals_firing": sorted(name for name, signal in signals.items() if signal.fires),
    }


def project_quality_summary(*, project: Project) -> dict[str, Any]:
    report = agreement_scan(project_id=project.pk)
    gold_agreed = sum(t.agreed for t in report.gold.values())
    gold_compared = sum(t.compared for t in report.gold.values())
    return {
        "project_id": project.pk,
        "prompts": Prompt.objects.filter(project=project).count(),
        "rankings": Ranking.objects.filter(prompt__project=project).count(),
        "gold_rankings": Ranking.objects.filter(prompt__project=project, is_gold=True).count(),
        "demonstrations": Demonstration.objects.filter(prompt__project=project).count(),
        **report.project.as_dict(),
        "gold_agreement": gold_agreed / gold_compared if gold_compared else None,
        "krippendorff_alpha": project_krippendorff_alpha(project_id=project.pk),
    }


def prompts_with_overlap(*, project: Project):
    """Prompts ranked at least twice, the ones agreement can be measured on (a queryset to paginate)."""
    return (
        Prompt.objects.filter(project=project)
        .annotate(ranking_count=Count("rankings"))
        .filter(ranking_count__gte=2)
        .order_by("id")
    )


def prompt_agreements(*, prompts: list[Prompt]) -> list[dict[str, Any]]:
    """Agreement, tau, consensus, the rankings themselves (for marking gold) and the candidates' texts
    (so that orders read as answers, not ids) of each given prompt, from one query for all their
    rankings and one for all their candidates."""
    candidates: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for candidate_id, prompt_id, text in (
        Candidate.objects.filter(prompt__in=prompts)
        .order_by("prompt_id", "id")
        .values_list("id", "prompt_id", "text")
    ):
        candidates[prompt_id].append({"id": candidate_id, "text": text})
    rankings: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in (
        Ranking.objects.filter(prompt__in=prompts)
        .order_by("prompt_id", "id")
        .values("id", "prompt_id", "order", "is_gold", "labeler__username")
    ):
        rankings[row["prompt_id"]].append(
            {
                "id": row["id"],
                "labeler": row["labeler__username"],
                "order": row["order"],
                "is_gold": row["is_gold"],
            }
        )
    weighted = (
        prompts_weighted_consensus(project_id=prompts[0].project_id, prompt_ids=[p.pk for p in prompts])
        if prompts
        else {}
    )
    rows = []
    for prompt in prompts:
        orders = [ranking["order"] for ranking in rankings[prompt.pk]]
        tally = orders_agreement(orders)
        consensus = consensus_from_orders(orders=orders)
        rows.append(
            {
                "prompt_id": prompt.pk,
                "title": prompt.title,
                "ranking_count": len(orders),
                "rankings": rankings[prompt.pk],
                "candidates": candidates[prompt.pk],
                **tally.as_dict(),
                "consensus_order": consensus.order,
                "cycles_broken": len(consensus.dropped),
                "weighted_consensus_order": weighted.get(prompt.pk, []),
            }
        )
    return rows


def _days(days: int) -> list[date]:
    today = timezone.localdate()
    return [today - timedelta(days=offset) for offset in range(days - 1, -1, -1)]


def throughput(*, project: Project, days: int) -> dict[str, Any]:
    """Rankings and demonstrations submitted per day over the last `days` days (zeros included)."""
    since = timezone.now() - timedelta(days=days)

    def per_day(queryset) -> dict[date, int]:
        return dict(
            queryset.filter(created_at__gte=since)
            .annotate(day=TruncDate("created_at"))
            .values("day")
            .annotate(n=Count("id"))
            .values_list("day", "n")
        )

    rankings = per_day(Ranking.objects.filter(prompt__project=project))
    demonstrations = per_day(Demonstration.objects.filter(prompt__project=project))
    return {
        "days": days,
        "points": [
            {
                "day": day.isoformat(),
                "rankings": rankings.get(day, 0),
                "demonstrations": demonstrations.get(day, 0),
            }
            for day in _days(days)
        ],
    }


def agreement_over_time(*, project: Project, days: int) -> dict[str, Any]:
    """Pairwise agreement per day, by the day the later ranking of each compared pair was made."""
    report = agreement_scan(project_id=project.pk)
    points = []
    for day in _days(days):
        tally = report.days.get(day)
        points.append(
            {
                "day": day.isoformat(),
                "agreement": tally.agreement if tally else None,
                "kendall_tau": tally.tau if tally else None,
                "pairs_compared": tally.compared if tally else 0,
            }
        )
    return {"days": days, "points": points}


def queue_depth(*, project: Project) -> dict[str, Any]:
    """Prompts waiting for each kind of work right now.

    - candidates: still need rankings but have fewer than K candidates to show;
    - demonstrations: have fewer demonstrations than the project asks for;
    - rankings: have K candidates and fewer rankings than the project's overlap.
    """
    prompts = Prompt.objects.filter(project=project).annotate(
        n_candidates=Count("candidates", distinct=True),
        n_rankings=Count("rankings", distinct=True),
        n_demonstrations=Count("demonstrations", distinct=True),
    )
    need_rankings = prompts.filter(n_rankings__lt=project.rankings_per_prompt)
    return {
        "project_id": project.pk,
        "waiting_for_candidates": need_rankings.filter(n_candidates__lt=project.k).count(),
        "waiting_for_demonstrations": prompts.filter(
            n_demonstrations__lt=project.demonstrations_per_prompt
        ).count(),
        "waiting_for_rankings": need_rankings.filter(n_candidates__gte=project.k).count(),
        "leased": Assignment.objects.filter(project=project, status=AssignmentStatus.LEASED).count(),
    }
