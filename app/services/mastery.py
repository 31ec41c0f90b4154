"""Replaying the response log: the mastery table must always equal a replay under the current parameters.

Used after new parameters become current (``fit-params``), by ``flask rebuild-mastery``,
and by tests that check the table against the log.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from app.domain.bkt import BktParams, is_mastered, predict_correct, update_mastery
from app.models import Mastery, Response, ResponseSkill
from app.services.content import read_snapshot

BATCH = 5000


@dataclass(frozen=True, slots=True)
class ReplayStep:
    student_id: str
    response_id: int
    skill_id: str
    correct: bool
    created_at: datetime
    p_mastery_before: float
    p_correct: float
    p_mastery_after: float


def replay_log(
    session: Session,
    params: dict[str, BktParams],
    student_ids: Collection[str] | None = None,
) -> Iterator[ReplayStep]:
    """Every (response, skill) of the log, in order per student, traced from the priors."""
    query = (
        select(Response.student_id, Response.id, Response.correct, Response.created_at,
               ResponseSkill.skill_id)
        .join(ResponseSkill, ResponseSkill.response_id == Response.id)
        .order_by(Response.student_id, Response.id, ResponseSkill.position)
        .execution_options(yield_per=BATCH)
    )
    if student_ids is not None:
        query = query.where(Response.student_id.in_(list(student_ids)))
    student: str | None = None
    state: dict[str, float] = {}
    for student_id, response_id, correct, created_at, skill_id in session.execute(query):
        if student_id != student:
            student, state = student_id, {}
        skill_params = params[skill_id]
        before = state.get(skill_id, skill_params.prior)
        after = update_mastery(before, correct, skill_params)
        state[skill_id] = after
        yield ReplayStep(student_id, response_id, skill_id, correct, created_at, before,
                         predict_correct(before, skill_params), after)


@dataclass(frozen=True)
class RebuildReport:
    students: int
    responses: int
    mastery_rows: int


def rebuild_mastery(
    session: Session, *, threshold: float, student_ids: Collection[str] | None = None,
    commit: bool = True,
) -> RebuildReport:
    """Recompute mastery rows from the log under the current parameters (one transaction)."""
    snapshot = read_snapshot(session)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    responses: set[int] = set()
    for step in replay_log(session, snapshot.params, student_ids):
        responses.add(step.response_id)
        row = rows.get((step.student_id, step.skill_id))
        if row is None:
            row = rows[(step.student_id, step.skill_id)] = {
                "student_id": step.student_id, "skill_id": step.skill_id, "attempts": 0,
                "correct_count": 0, "mastered_at": None,
                "parameters_id": snapshot.parameters[step.skill_id].id,
            }
        row["p_mastery"] = step.p_mastery_after
        row["attempts"] += 1
        row["correct_count"] += int(step.correct)
        row["updated_at"] = step.created_at
        if row["mastered_at"] is None and is_mastered(step.p_mastery_after, threshold):
            row["mastered_at"] = step.created_at

    clear = delete(Mastery)
    if student_ids is not None:
        clear = clear.where(Mastery.student_id.in_(list(student_ids)))
    session.execute(clear)
    values = list(rows.values())
    for start in range(0, len(values), BATCH):
        session.execute(insert(Mastery), values[start:start + BATCH])
    if commit:
        session.commit()
    n_students = len({s for s, _ in rows}) if student_ids is None else len(student_ids)
    return RebuildReport(students=n_students, responses=len(responses), mastery_rows=len(rows))


@dataclass(frozen=True)
class Mismatch:
    student_id: str
    skill_id: str
    stored: float | None
    replayed: float | None


def check_mastery(session: Session, tolerance: float = 1e-9) -> list[Mismatch]:
    """Stored mastery rows that differ from a replay of the log (empty when consistent)."""
    snapshot = read_snapshot(session)
    replayed: dict[tuple[str, str], float] = {}
    for step in replay_log(session, snapshot.params):
        replayed[(step.student_id, step.skill_id)] = step.p_mastery_after
    stored = {
        (s, k): p for s, k, p in session.execute(
            select(Mastery.student_id, Mastery.skill_id, Mastery.p_mastery))
    }
    mismatches = []
    for key in sorted(set(replayed) | set(stored)):
        a, b = stored.get(key), replayed.get(key)
        if a is None or b is None or abs(a - b) > tolerance:
            mismatches.append(Mismatch(key[0], key[1], a, b))
    return mismatches


