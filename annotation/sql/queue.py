"""The queue's hand-written SQL: the lease's fast paths to the next prompt, the slot re-count under
the prompt's lock, the labeler's own lock and leases, and the projects a lease looks in."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection

from annotation.models import (
    Assignment,
    Candidate,
    Demonstration,
    Membership,
    Project,
    Prompt,
    Ranking,
)
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.models.quality import COUNTING_STATES
from annotation.models.rankings import RankingSource
from annotation.sql.rows import model_reader

_P, _A = Prompt._meta.db_table, Assignment._meta.db_table
_C, _D, _R = Candidate._meta.db_table, Demonstration._meta.db_table, Ranking._meta.db_table
_TURNS = Prompt._meta.get_field("turns")
# A rejected or excluded ranking frees its slot: only these fill one.
_COUNTING = ", ".join(f"'{state}'" for state in COUNTING_STATES)
# "LIMIT 1 OFFSET 0" keeps PostgreSQL from flattening each EXISTS into a join: as per-row filters,
# ORDER BY priority, queue_rank, id LIMIT 1 walks the (project, -priority, -queue_rank, id) index and
# stops at the first match.
#
# A live lease holds a slot. Submitted work is in the done counts (work that stopped counting, e.g.
# an excluded ranking, has left them while its assignment stays submitted); a count out of step is
# caught by the re-count under the prompt's lock.
_HOLDS_SLOT = f"(a.status = '{AssignmentStatus.LEASED}' AND a.expires_at > %(now)s)"


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


def _extra(kind: str, alias: str) -> str:
    """A rank slot's capacity is the project's overlap plus what triage asked for on the prompt."""
    return f" + {alias}.extra_rankings" if kind == TaskKind.RANK else ""


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
            f" AND q.{_DONE_COLUMN[kind]} < %(capacity)s{_extra(kind, 'q')} UNION {live})"
            f" AND {done} + (SELECT COUNT(*) FROM {_A} h WHERE h.prompt_id = p.id AND h.kind = %(kind)s"
            f" AND h.status = '{AssignmentStatus.LEASED}' AND h.expires_at > %(now)s) < %(capacity)s{_extra(kind, 'p')}"
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
        f" ORDER BY p.priority DESC, p.queue_rank DESC, p.id LIMIT 1{' FOR UPDATE OF p SKIP LOCKED' if lock else ''}"
    )


def prompt_next_locked(
    *, project: Project, labeler_id: int, kind: str, capacity: int, now: datetime, rejected: list[int]
) -> int | None:
    """The next prompt of `kind` this labeler may take, leaving out `rejected`, row-locked; or None.

    The queue's order from the prompts' done counts: partly done prompts first, then untouched
    ones, each by priority and age. With one slot per prompt nothing can be partly done, so that
    query is skipped. On PostgreSQL the row is locked FOR UPDATE, skipping rows other leases hold;
    the caller must be inside a transaction and re-count the slot (`prompt_for_lease`) before
    writing. None when no unlocked prompt is free by the counts (the specification may still find
    one whose counts are out of step).
    """
    if kind not in _DONE_COLUMN:
        # Converse tasks keep no done count: they are few and long, so the specification's own
        # query (the lease's last resort) serves them.
        return None
    # With one slot per prompt nothing is partly done, unless triage asked a prompt for more rankings.
    for path in ("partly_done", "untouched") if capacity > 1 or kind == TaskKind.RANK else ("untouched",):
        prompt_id = _prompt_on_path_locked(
            path=path,
            project=project,
            labeler_id=labeler_id,
            kind=kind,
            capacity=capacity,
            now=now,
            rejected=rejected,
        )
        if prompt_id is not None:
            return prompt_id
    return None


def _prompt_on_path_locked(
    *,
    path: str,
    project: Project,
    labeler_id: int,
    kind: str,
    capacity: int,
    now: datetime,
    rejected: list[int],
) -> int | None:
    params: dict[str, Any] = {
        "project": project.pk,
        "labeler": labeler_id,
        "kind": kind,
        "now": connection.ops.adapt_datetimefield_value(now),
        "capacity": capacity,
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
    if kind == TaskKind.RANK:
        done = (
            f"SELECT COUNT(*) FROM {_R} r WHERE r.prompt_id = %(prompt)s AND r.source = '{RankingSource.LABELER}'"
            f" AND r.quality_state IN ({_COUNTING})"
        )
    elif kind == TaskKind.CONVERSE:  # a turn taken counts once submitted, like other work
        done = (
            f"SELECT COUNT(*) FROM {_A} s WHERE s.prompt_id = %(prompt)s AND s.kind = %(kind)s"
            f" AND s.status = '{AssignmentStatus.SUBMITTED}'"
        )
    else:
        done = (
            f"SELECT COUNT(*) FROM {_D} d WHERE d.prompt_id = %(prompt)s AND d.quality_state IN ({_COUNTING})"
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
class PromptForLease:
    """What a lease needs to know about a prompt it holds locked, read in one statement."""

    taken: int  # slots of this kind taken: submitted work plus live leases
    turns: Any  # the conversation, decoded
    candidate_ids: list[int]  # sorted; empty for a demonstrate task
    carried_from: int | None  # this labeler's latest expired lease of this task that kept a draft
    extra: int = 0  # rank slots asked for beyond the project's overlap


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
        f"SELECT {_slots_taken_sql(kind)}, p.turns, ({carried}), {candidates}, p.extra_rankings"
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
    taken, turns, carried_from, _, extra = rows[0]
    return PromptForLease(
        taken=int(taken),
        turns=_TURNS.from_db_value(turns, _TURNS.get_col("p"), connection),
        candidate_ids=sorted(row[3] for row in rows if row[3] is not None),
        carried_from=carried_from,
        extra=int(extra or 0) if kind == TaskKind.RANK else 0,
    )


def projects_for_labeler_list(*, user: Any, project_id: int | None = None) -> list[Project]:
    """What `annotation.permissions.projects_for_labeler` returns, as a list, in one plain query.

    The caller has checked that `project_id` is a possible id.
    """
    projects = model_reader(Project, alias="j")
    sql = f"SELECT {projects.columns} FROM {Project._meta.db_table} j WHERE j.is_active = %(true)s"
    if not user.is_superuser:  # staff are scoped by their memberships like anyone
        sql += (
            f" AND EXISTS (SELECT 1 FROM {Membership._meta.db_table} m"
            " WHERE m.project_id = j.id AND m.user_id = %(user)s AND m.role IN (%(labeler)s, %(admin)s))"
        )
    if project_id is not None:
        sql += " AND j.id = %(project)s"
    with connection.cursor() as cursor:
        cursor.execute(
            sql + " ORDER BY j.name, j.id",
            {"true": True, "user": user.pk, "project": project_id, "labeler": "labeler", "admin": "admin"},
        )
        return [projects.read(row) for row in cursor.fetchall()]


@dataclass(frozen=True)
class HeldLease:
    assignment_id: int
    project_id: int
    kind: str
    live: bool  # False once past its expiry (the periodic job may not have marked it yet)


def labeler_leases_locked(*, labeler_id: int, now: datetime) -> list[HeldLease]:
    """Serialise one labeler's queue requests, then list the leases they hold, oldest first.

    On PostgreSQL this locks the labeler's user row until the transaction ends (two tabs asking at
    once get one task); SQLite's IMMEDIATE transaction already serialises every writer. The leases
    are read after the lock, as their own statement: its snapshot then sees a lease that the
    labeler's other request committed while this one waited.
    """
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            meta = get_user_model()._meta
            cursor.execute(
                f"SELECT 1 FROM {meta.db_table} WHERE {meta.pk.column} = %s FOR UPDATE", [labeler_id]
            )
        cursor.execute(
            f"SELECT a.id, a.project_id, a.kind, CASE WHEN a.expires_at > %(now)s THEN 1 ELSE 0 END"
            f" FROM {_A} a WHERE a.labeler_id = %(labeler)s AND a.status = '{AssignmentStatus.LEASED}'"
            " ORDER BY a.leased_at, a.id",
            {"labeler": labeler_id, "now": connection.ops.adapt_datetimefield_value(now)},
        )
        return [HeldLease(row[0], row[1], row[2], bool(row[3])) for row in cursor.fetchall()]


def prompt_done_count_add(*, prompt_id: int, kind: str, delta: int = 1) -> None:
    """`delta` more pieces of submitted work of `kind` on the prompt (negative: work that stopped
    counting); the count never goes below zero."""
    column = _DONE_COLUMN[kind]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_P} SET {column} = CASE WHEN {column} + %s < 0 THEN 0 ELSE {column} + %s END WHERE id = %s",
            [delta, delta, prompt_id],
        )
