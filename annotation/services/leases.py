"""Lease housekeeping shared by the queue and the periodic jobs, and the SQL every lease runs."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F, OuterRef, Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from annotation.models import Assignment, Candidate, Demonstration, Project, Prompt, Ranking
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.models.rankings import RankingSource
from annotation.selectors.queue import count_per_prompt, slot_capacity


@transaction.atomic
def assignments_expire(*, now: datetime | None = None) -> int:
    """Mark every lease past its expiry as expired, returning its slot to the queue.

    Returns how many leases expired. Safe to run concurrently and repeatedly: the update only
    touches rows still leased, so a submission that lands first keeps its status.
    """
    now = now or timezone.now()
    return Assignment.objects.filter(status=AssignmentStatus.LEASED, expires_at__lte=now).update(
        status=AssignmentStatus.EXPIRED
    )


def _done_count(kind: str) -> Coalesce:
    if kind == TaskKind.RANK:
        return count_per_prompt(Ranking.objects.filter(prompt=OuterRef("pk"), source=RankingSource.LABELER))
    return count_per_prompt(Demonstration.objects.filter(prompt=OuterRef("pk")))


def prompt_done_counts_add(*, prompt_id: int, kind: str) -> None:
    """Count one more piece of submitted work on the prompt; call it in the storing transaction."""
    column = _DONE_COLUMN[kind]
    with connection.cursor() as cursor:
        cursor.execute(f"UPDATE {_P} SET {column} = {column} + 1 WHERE id = %s", [prompt_id])


@transaction.atomic
def prompt_done_counts_reconcile() -> int:
    """Set every prompt's done counts back to the rows they count; returns how many were off.

    The services that store work keep the counts; this repairs what they cannot see (work deleted
    in the admin, rows written by hand). Only prompts whose counts are off are written.
    """
    demonstrations, rankings = _done_count(TaskKind.DEMONSTRATE), _done_count(TaskKind.RANK)
    stale = (
        Prompt.objects.annotate(demonstrations_actual=demonstrations, rankings_actual=rankings)
        .filter(~Q(demonstrations_done=F("demonstrations_actual")) | ~Q(rankings_done=F("rankings_actual")))
        .values("pk")
    )
    return Prompt.objects.filter(pk__in=stale).update(
        demonstrations_done=demonstrations, rankings_done=rankings
    )


# ---- The SQL every lease runs ------------------------------------------------------------------------
# Written out rather than composed with the ORM: these run on every lease, and composing the
# equivalent querysets (a dozen EXISTS clauses) cost several times more CPU than running them.
# They take the same prompts as annotation.selectors.queue.prompts_needing_work, which stays the
# exact (slower) answer used for counts and as the lease's last resort. The order differs in one
# respect: among partly done prompts the fast path takes the highest priority, where the exact
# query takes the fullest first; both serve every partly done prompt before an untouched one.

_P, _A = Prompt._meta.db_table, Assignment._meta.db_table
_C, _D, _R = Candidate._meta.db_table, Demonstration._meta.db_table, Ranking._meta.db_table
_TURNS = Prompt._meta.get_field("turns")
# "LIMIT 1 OFFSET 0" keeps PostgreSQL from flattening each EXISTS into a join: as per-row filters,
# ORDER BY priority, id LIMIT 1 walks the (project, -priority, id) index and stops at the first match.
_HOLDS_SLOT = (
    f"(a.status = '{AssignmentStatus.SUBMITTED}'"
    f" OR (a.status = '{AssignmentStatus.LEASED}' AND a.expires_at > %(now)s))"
)


_DONE_COLUMN: dict[str, str] = {TaskKind.RANK: "rankings_done", TaskKind.DEMONSTRATE: "demonstrations_done"}


def _labeler_may_take_sql(kind: str) -> str:
    """Not held, done or skipped by this labeler; for ranking, K candidates and none of theirs."""
    clauses = [
        "p.project_id = %(project)s",
        f"NOT EXISTS (SELECT 1 FROM {_A} m WHERE m.prompt_id = p.id AND m.labeler_id = %(labeler)s"
        f" AND m.kind = %(kind)s AND m.status <> '{AssignmentStatus.EXPIRED}' LIMIT 1 OFFSET 0)",
    ]
    if kind == TaskKind.RANK:
        clauses += [
            f"EXISTS (SELECT 1 FROM {_C} c WHERE c.prompt_id = p.id LIMIT 1 OFFSET %(k_minus_one)s)",
            f"NOT EXISTS (SELECT 1 FROM {_R} r WHERE r.prompt_id = p.id AND r.labeler_id = %(labeler)s"
            " LIMIT 1 OFFSET 0)",
            f"NOT EXISTS (SELECT 1 FROM {_C} c JOIN {_D} d ON d.id = c.demonstration_id"
            " WHERE c.prompt_id = p.id AND d.labeler_id = %(labeler)s LIMIT 1 OFFSET 0)",
        ]
    else:
        clauses.append(
            f"NOT EXISTS (SELECT 1 FROM {_D} d WHERE d.prompt_id = p.id AND d.labeler_id = %(labeler)s"
            " LIMIT 1 OFFSET 0)"
        )
    return " AND ".join(clauses)


@lru_cache(maxsize=64)
def _next_prompt_sql(*, path: str, kind: str, rejected: int, lock: bool) -> str:
    done = f"p.{_DONE_COLUMN[kind]}"
    if path == "partly_done":
        # Prompts with some slots taken and one free: breadth-first. They are found from two small
        # sets, never by scanning the work done: prompts with part of their work submitted (the
        # partial index prompt_partly_<kind>, read by range) and prompts under a live lease (the
        # partial index assignment_live_by_project); the literals match the indexes' conditions.
        live = (
            f"SELECT a.prompt_id FROM {_A} a WHERE a.project_id = %(project)s AND a.kind = %(kind)s"
            f" AND a.status = '{AssignmentStatus.LEASED}' AND a.expires_at > %(now)s"
        )
        source = (
            f"p.id IN (SELECT q.id FROM {_P} q WHERE q.project_id = %(project)s AND q.{_DONE_COLUMN[kind]} > 0"
            f" AND q.{_DONE_COLUMN[kind]} < %(capacity)s UNION {live})"
            f" AND {done} + (SELECT COUNT(*) FROM {_A} h WHERE h.prompt_id = p.id AND h.kind = %(kind)s"
            f" AND h.status = '{AssignmentStatus.LEASED}' AND h.expires_at > %(now)s) < %(capacity)s"
        )
    else:
        # Prompts nobody holds or has done. The literal "= 0" matches the partial index
        # (prompt_untouched_<kind>), so the walk never visits prompts already worked on.
        source = (
            f"{done} = 0 AND NOT EXISTS (SELECT 1 FROM {_A} a WHERE a.prompt_id = p.id"
            f" AND a.kind = %(kind)s AND {_HOLDS_SLOT} LIMIT 1 OFFSET 0)"
        )
    not_rejected = (
        " AND p.id NOT IN ({})".format(", ".join(f"%(rejected{i})s" for i in range(rejected)))
        if rejected
        else ""
    )
    return (
        f"SELECT p.id FROM {_P} p WHERE {source} AND {_labeler_may_take_sql(kind)}{not_rejected}"
        f" ORDER BY p.priority DESC, p.id LIMIT 1{' FOR UPDATE OF p SKIP LOCKED' if lock else ''}"
    )


def prompt_next_locked(
    *, path: str, project: Project, labeler_id: int, kind: str, now: datetime, rejected: list[int]
) -> int | None:
    """The first prompt on `path` ("partly_done" or "untouched") this labeler may take, row-locked.

    On PostgreSQL the row is locked FOR UPDATE, skipping rows other leases hold; the caller must
    be inside a transaction and re-count the slot before writing. None when nothing is free.
    """
    params: dict[str, Any] = {
        "project": project.pk,
        "labeler": labeler_id,
        "kind": kind,
        "now": connection.ops.adapt_datetimefield_value(now),
        "capacity": slot_capacity(project=project, kind=kind),
        "k_minus_one": project.k - 1,
    }
    params.update({f"rejected{i}": prompt_id for i, prompt_id in enumerate(rejected)})
    sql = _next_prompt_sql(
        path=path,
        kind=kind,
        rejected=len(rejected),
        lock=connection.features.has_select_for_update_skip_locked,
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        row = cursor.fetchone()
    return row[0] if row else None


def _slots_taken_sql(kind: str) -> str:
    """Submitted work plus live leases of this kind on %(prompt)s, leaving out lease %(exclude)s."""
    done = (
        f"SELECT COUNT(*) FROM {_R} r WHERE r.prompt_id = %(prompt)s AND r.source = '{RankingSource.LABELER}'"
        if kind == TaskKind.RANK
        else f"SELECT COUNT(*) FROM {_D} d WHERE d.prompt_id = %(prompt)s"
    )
    return (
        f"({done}) + (SELECT COUNT(*) FROM {_A} a WHERE a.prompt_id = %(prompt)s AND a.kind = %(kind)s"
        f" AND a.status = '{AssignmentStatus.LEASED}' AND a.expires_at > %(now)s AND a.id <> %(exclude)s)"
    )


def slots_taken(*, prompt_id: int, kind: str, now: datetime, exclude_assignment_id: int | None = None) -> int:
    """Submitted work plus live leases of this kind on one prompt (optionally leaving one lease out).

    Run under the prompt's row lock, this is the count a lease or a late submission trusts.
    """
    params: dict[str, Any] = {
        "prompt": prompt_id,
        "kind": kind,
        "now": connection.ops.adapt_datetimefield_value(now),
        "exclude": exclude_assignment_id or 0,
    }
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {_slots_taken_sql(kind)}", params)
        return int(cursor.fetchone()[0])


@dataclass(frozen=True)
class HeldLease:
    assignment_id: int
    project_id: int
    kind: str
    live: bool


def labeler_lock(*, labeler_id: int) -> None:
    """Serialise one labeler's own queue requests (two tabs asking at once get one task).

    On PostgreSQL this locks the labeler's user row until the transaction ends; SQLite's
    IMMEDIATE transaction already serialises every writer.
    """
    if connection.vendor == "postgresql":
        meta = get_user_model()._meta
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {meta.db_table} WHERE {meta.pk.column} = %s FOR UPDATE", [labeler_id]
            )


def leases_held(*, labeler_id: int, now: datetime) -> list[HeldLease]:
    """The labeler's assignments still marked leased, oldest first; `live` is False once expired.

    Run it after `labeler_lock`, as its own statement: its snapshot then sees a lease that the
    labeler's other request committed while this one waited for the lock.
    """
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT a.id, a.project_id, a.kind, CASE WHEN a.expires_at > %(now)s THEN 1 ELSE 0 END"
            f" FROM {_A} a WHERE a.labeler_id = %(labeler)s AND a.status = '{AssignmentStatus.LEASED}'"
            " ORDER BY a.leased_at, a.id",
            {"labeler": labeler_id, "now": connection.ops.adapt_datetimefield_value(now)},
        )
        return [HeldLease(row[0], row[1], row[2], bool(row[3])) for row in cursor.fetchall()]


@dataclass(frozen=True)
class PromptForLease:
    """What a lease needs to know about a prompt it holds locked, read in one statement."""

    taken: int  # slots of this kind taken: submitted work plus live leases
    turns: Any  # the conversation, decoded
    candidate_ids: list[int]  # sorted; empty for a demonstrate task
    carried_from: int | None  # this labeler's latest expired lease of this task that kept a draft


@lru_cache(maxsize=4)
def _prompt_for_lease_sql(kind: str) -> str:
    carried = (
        f"SELECT e.id FROM {_A} e WHERE e.labeler_id = %(labeler)s AND e.prompt_id = p.id"
        f" AND e.kind = %(kind)s AND e.status = '{AssignmentStatus.EXPIRED}'"
        " AND e.draft_saved_at IS NOT NULL ORDER BY e.draft_saved_at DESC LIMIT 1"
    )
    if kind == TaskKind.RANK:
        candidates, join = "c.id", f" LEFT JOIN {_C} c ON c.prompt_id = p.id"
    else:
        candidates, join = "NULL", ""
    return (
        f"SELECT {_slots_taken_sql(kind)}, p.turns, ({carried}), {candidates}"
        f" FROM {_P} p{join} WHERE p.id = %(prompt)s ORDER BY 4"
    )


def prompt_for_lease(*, prompt_id: int, labeler_id: int, kind: str, now: datetime) -> PromptForLease:
    """Slot count, conversation, candidates and carried draft of one prompt, in one round trip.

    Call it holding the prompt's row lock (after `prompt_next_locked`): `taken` is then exact.
    """
    params: dict[str, Any] = {
        "prompt": prompt_id,
        "labeler": labeler_id,
        "kind": kind,
        "now": connection.ops.adapt_datetimefield_value(now),
        "exclude": 0,
    }
    with connection.cursor() as cursor:
        cursor.execute(_prompt_for_lease_sql(kind), params)
        rows = cursor.fetchall()
    taken, turns, carried_from, _ = rows[0]
    return PromptForLease(
        taken=int(taken),
        turns=_TURNS.from_db_value(turns, _TURNS.get_col("p"), connection),
        candidate_ids=sorted(row[3] for row in rows if row[3] is not None),
        carried_from=carried_from,
    )
