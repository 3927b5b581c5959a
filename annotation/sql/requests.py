"""Hand-written SQL that every labeler request runs: the token, the assignment, a submission's checks
and writes, a rank task's texts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.db import connection
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
from annotation.models.assignments import TaskKind
from annotation.sql.rows import model_reader, rows_insert

_P, _A = Prompt._meta.db_table, Assignment._meta.db_table
_C, _D, _R = Candidate._meta.db_table, Demonstration._meta.db_table, Ranking._meta.db_table


def token_user(*, key: str) -> tuple[Token, Any] | None:
    """The API token with this key and its user (cached on the token), or None."""
    user_model = get_user_model()
    tokens, users = model_reader(Token, alias="t"), model_reader(user_model, alias="u")
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
    """The labeler's assignment with its project and prompt cached on it, or None; `lock`: FOR UPDATE OF it.

    The labeler's current role in the project (None once removed) comes with it as `labeler_role`,
    in the same statement, for the access check every task request makes.
    """
    assignments, projects, prompts = (
        model_reader(Assignment, alias="a"),
        model_reader(Project, alias="j"),
        model_reader(Prompt, alias="p"),
    )
    sql = (
        f"SELECT {assignments.columns}, {projects.columns}, {prompts.columns},"
        f" (SELECT m.role FROM {Membership._meta.db_table} m"
        " WHERE m.project_id = a.project_id AND m.user_id = a.labeler_id)"
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
    assignment.labeler_role = row[-1]  # type: ignore[attr-defined]
    return assignment


@dataclass(frozen=True)
class SubmissionConflicts:
    member: bool  # the labeler still belongs to the project
    key_used_elsewhere: bool  # the idempotency key is already on another of their assignments
    already_done: bool  # they already ranked, or wrote a demonstration for, this prompt


def submission_conflicts(*, assignment: Assignment, labeler_id: int, key: str) -> SubmissionConflicts:
    """The checks a submission makes before it writes anything, in one round trip."""
    # A converse turn stores a ranking of the prompt, so a ranking there is the work already done.
    work = _R if assignment.kind in (TaskKind.RANK, TaskKind.CONVERSE) else _D
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT EXISTS (SELECT 1 FROM {Membership._meta.db_table} m"
            " WHERE m.project_id = %(project)s AND m.user_id = %(labeler)s),"
            f" EXISTS (SELECT 1 FROM {_A} a WHERE a.labeler_id = %(labeler)s AND a.idempotency_key = %(key)s"
            " AND a.id <> %(assignment)s),"
            f" EXISTS (SELECT 1 FROM {work} w WHERE w.prompt_id = %(prompt)s AND w.labeler_id = %(labeler)s)",
            {
                "project": assignment.project_id,
                "labeler": labeler_id,
                "key": key,
                "assignment": assignment.pk,
                "prompt": assignment.prompt_id,
            },
        )
        member, used, done = cursor.fetchone()
    return SubmissionConflicts(member=bool(member), key_used_elsewhere=bool(used), already_done=bool(done))


def assignment_submitted_update(*, assignment: Assignment) -> None:
    """Write the assignment's status, submitted_at and idempotency_key (a unique-key clash raises
    IntegrityError, as `save(update_fields=...)` would)."""
    fields = [Assignment._meta.get_field(name) for name in ("status", "submitted_at", "idempotency_key")]
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {_A} SET status = %s, submitted_at = %s, idempotency_key = %s WHERE id = %s",
            [
                *(field.get_db_prep_save(getattr(assignment, field.attname), connection) for field in fields),  # type: ignore[union-attr]
                assignment.pk,
            ],
        )


def ranking_children_insert(
    *,
    ranking: Ranking,
    items: Sequence[tuple[int, int, int | None, list[str]]],
    comparisons: Sequence[tuple[int, int]],
    created_at: datetime,
) -> None:
    """A stored ranking's items (candidate, tie-group index, rating, flags) and (better, worse) comparisons."""
    rows_insert(
        RankingItem,
        fields=("ranking", "candidate", "rank", "rating", "flags"),
        rows=[(ranking.pk, *item) for item in items],
    )
    rows_insert(
        Comparison,
        fields=("ranking", "prompt", "labeler", "better", "worse", "created_at"),
        rows=[
            (ranking.pk, ranking.prompt_id, ranking.labeler_id, better, worse, created_at)
            for better, worse in comparisons
        ],
    )


def candidate_texts(*, candidate_ids: Sequence[int]) -> dict[int, tuple[str, str]]:
    """{id: (text, finish_reason)} of the given candidates."""
    if not candidate_ids:
        return {}
    placeholders = ", ".join(["%s"] * len(candidate_ids))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, text, finish_reason FROM {_C} WHERE id IN ({placeholders})", list(candidate_ids)
        )
        return {pk: (text, finish_reason) for pk, text, finish_reason in cursor.fetchall()}
