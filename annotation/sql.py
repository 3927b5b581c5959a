"""The app's hand-written SQL, in one place: only what the ORM cannot say or a benchmark showed it needs.

Everything else reads and writes through the ORM. What is here, and why:

The queue (the ORM cannot say these):
- `prompt_next_locked`: the lease's fast paths to the next prompt a labeler may take. Each is one
  `SELECT ... FOR UPDATE OF p SKIP LOCKED ... LIMIT 1` whose conditions repeat the partial indexes'
  own predicates as literals (`rankings_done = 0`, the live-lease condition), so that PostgreSQL walks
  those indexes instead of every prompt already worked on, and whose EXISTS clauses carry
  `LIMIT 1 OFFSET 0` so that they stay per-row filters rather than being flattened into joins. The ORM
  can express neither the literal-matching predicates nor the optimisation fence.
- `prompt_for_lease`: the slot re-count, conversation, candidate ids and carried draft of the prompt
  the lease holds locked, in one round trip while every other lease of that prompt waits on the lock.
- `slots_taken`: the same re-count for a late submission (the fragment is shared with the above).

Every labeler request (bench/queue_load.py showed the ORM's versions over the lease's latency
budget: on a 2-core machine building and compiling a query costs 0.5-1.5 ms of CPU, several times
running it, and a lease-and-submit cycle runs a dozen of them; see the closing note of the issue
that confined the SQL here for the figures):
- `token_user`: the API token and its user, read on every API request.
- `assignment_for_labeler`: the labeler's assignment with its project and prompt, on every submit,
  draft save and skip.
- `submission_conflicts`: the two checks a submission makes before writing (still a member,
  idempotency key unused elsewhere), in one round trip.
- `ranking_children_insert`: a ranking's items and comparisons, one multi-row INSERT each.
- `candidate_texts`: the texts of the candidates a rank task shows.

Rows read here come back as ordinary model instances (`_reader`): the same columns and the same
database converters (JSON decoding, datetimes on SQLite) as the ORM's, so no caller can tell.

They must take exactly the prompts of the queue's specification,
`annotation.selectors.queue.prompts_needing_work`, in its order: tests/annotation/test_queue_spec.py
checks that on generated queue states, on PostgreSQL and SQLite. The specification stays the lease's
last resort (it counts rows, so it is right even when a prompt's done counts are out of step).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache, lru_cache
from typing import Any, Generic, TypeVar

from django.contrib.auth import get_user_model
from django.db import connection
from django.db.models import Model
from rest_framework.authtoken.models import Token

from annotation.models import (
    Assignment,
    Candidate,
    Comparison,
    Demonstration,
    Membership,
    Project,
    Prompt,
    Ranking,
    RankingItem,
)
from annotation.models.assignments import AssignmentStatus, TaskKind
from annotation.models.rankings import RankingSource

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
    for path in ("partly_done", "untouched") if capacity > 1 else ("untouched",):
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


# ---- Rows read back as model instances ------------------------------------------------------------

ModelType = TypeVar("ModelType", bound=Model)
Converter = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class _Reader(Generic[ModelType]):
    model: type[ModelType]
    columns: str  # the SELECT list, e.g. 'a."id", a."project_id", ...', in the model's field order
    names: tuple[str, ...]  # attribute names, same order
    converters: tuple[tuple[int, tuple[Converter, ...], Any], ...]  # (position, converters, expression)

    @property
    def width(self) -> int:
        return len(self.names)

    def read(self, row: Sequence[Any], start: int = 0) -> ModelType:
        """The instance held in `row[start:start + width]`."""
        values = list(row[start : start + self.width])
        for position, converters, expression in self.converters:
            for convert in converters:
                values[position] = convert(values[position], expression, connection)
        return self.model.from_db(connection.alias, list(self.names), values)


@cache
def _reader_for(model: type[Model], alias: str, vendor: str) -> _Reader:
    quote = connection.ops.quote_name
    fields = model._meta.concrete_fields
    converters = []
    for position, field in enumerate(fields):
        expression = field.get_col(alias)
        found = connection.ops.get_db_converters(expression) + expression.get_db_converters(connection)
        if found:
            converters.append((position, tuple(found), expression))
    return _Reader(
        model=model,
        columns=", ".join(f"{alias}.{quote(str(field.column))}" for field in fields),
        names=tuple(field.attname for field in fields),
        converters=tuple(converters),
    )


def _reader(model: type[ModelType], *, alias: str) -> _Reader[ModelType]:
    """The SELECT list for `model` under table alias `alias`, and how to read it back."""
    return _reader_for(model, alias, connection.vendor)


# ---- Every labeler request ------------------------------------------------------------------------


def token_user(*, key: str) -> tuple[Token, Any] | None:
    """The API token with this key and its user (cached on the token), or None."""
    user_model = get_user_model()
    tokens, users = _reader(Token, alias="t"), _reader(user_model, alias="u")
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {tokens.columns}, {users.columns} FROM {Token._meta.db_table} t"
            f" JOIN {user_model._meta.db_table} u ON u.{user_model._meta.pk.column} = t.user_id"
            " WHERE t.key = %s",
            [key],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    token, user = tokens.read(row), users.read(row, tokens.width)
    Token.user.field.set_cached_value(token, user)
    return token, user


def assignment_for_labeler(*, assignment_id: int, labeler_id: int, lock: bool) -> Assignment | None:
    """The labeler's assignment with its project and prompt cached on it, or None; `lock`: FOR UPDATE OF it."""
    assignments, projects, prompts = (
        _reader(Assignment, alias="a"),
        _reader(Project, alias="j"),
        _reader(Prompt, alias="p"),
    )
    sql = (
        f"SELECT {assignments.columns}, {projects.columns}, {prompts.columns}"
        f" FROM {_A} a JOIN {Project._meta.db_table} j ON j.id = a.project_id"
        f" JOIN {_P} p ON p.id = a.prompt_id WHERE a.id = %s AND a.labeler_id = %s"
    )
    if lock and connection.features.has_select_for_update:
        sql += " FOR UPDATE OF a" if connection.features.has_select_for_update_of else " FOR UPDATE"
    with connection.cursor() as cursor:
        cursor.execute(sql, [assignment_id, labeler_id])
        row = cursor.fetchone()
    if row is None:
        return None
    assignment = assignments.read(row)
    Assignment.project.field.set_cached_value(assignment, projects.read(row, assignments.width))
    Assignment.prompt.field.set_cached_value(
        assignment, prompts.read(row, assignments.width + projects.width)
    )
    return assignment


@dataclass(frozen=True)
class SubmissionConflicts:
    member: bool  # the labeler still belongs to the project
    key_used_elsewhere: bool  # the idempotency key is already on another of their assignments


def submission_conflicts(*, assignment: Assignment, labeler_id: int, key: str) -> SubmissionConflicts:
    """The checks a submission makes before it writes anything, in one round trip."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {Membership._meta.db_table} m"
            " WHERE m.project_id = %(project)s AND m.user_id = %(labeler)s),"
            f" EXISTS (SELECT 1 FROM {_A} a WHERE a.labeler_id = %(labeler)s AND a.idempotency_key = %(key)s"
            " AND a.id <> %(assignment)s)",
            {
                "project": assignment.project_id,
                "labeler": labeler_id,
                "key": key,
                "assignment": assignment.pk,
            },
        )
        member, used = cursor.fetchone()
    return SubmissionConflicts(member=bool(member), key_used_elsewhere=bool(used))


def _insert_rows(model: type[Model], *, fields: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """One multi-row INSERT; values go through each field's own `get_db_prep_save`, as the ORM's would."""
    if not rows:
        return
    concrete = [model._meta.get_field(name) for name in fields]
    quote = connection.ops.quote_name
    placeholders = "(" + ", ".join(["%s"] * len(concrete)) + ")"
    params = [
        field.get_db_prep_save(value, connection)  # type: ignore[union-attr]
        for row in rows
        for field, value in zip(concrete, row, strict=True)
    ]
    columns = ", ".join(quote(str(field.column)) for field in concrete)  # type: ignore[union-attr]
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(model._meta.db_table)} ({columns}) VALUES {', '.join([placeholders] * len(rows))}",
            params,
        )


def ranking_children_insert(
    *,
    ranking: Ranking,
    items: Sequence[tuple[int, int, int | None, list[str]]],
    comparisons: Sequence[tuple[int, int]],
    created_at: datetime,
) -> None:
    """A stored ranking's items (candidate, tie-group index, rating, flags) and (better, worse) comparisons."""
    _insert_rows(
        RankingItem,
        fields=("ranking", "candidate", "rank", "rating", "flags"),
        rows=[(ranking.pk, *item) for item in items],
    )
    _insert_rows(
        Comparison,
        fields=("ranking", "prompt", "labeler", "better", "worse", "created_at"),
        rows=[
            (ranking.pk, ranking.prompt_id, ranking.labeler_id, better, worse, created_at)
            for better, worse in comparisons
        ],
    )


def candidate_texts(*, candidate_ids: Sequence[int]) -> dict[int, str]:
    """{id: text} of the given candidates."""
    if not candidate_ids:
        return {}
    placeholders = ", ".join(["%s"] * len(candidate_ids))
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT id, text FROM {_C} WHERE id IN ({placeholders})", list(candidate_ids))
        return dict(cursor.fetchall())
