"""Replaying the response log: the student models must always equal a replay under the current parameters.

Used after new parameters become current (``fit-params``), by ``flask rebuild-mastery``,
and by tests that check the stored state against the log. A student whose oldest answers
were purged (retention) replays from the state folded from them (``student_baselines``).
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from app.domain.bkt import BktParams
from app.domain.tracking import MasteryRules, StudentModel, apply_answer
from app.extensions import READ_SNAPSHOT
from app.models import Mastery, Response, ResponseSkill, Student, StudentBaseline
from app.services.tutoring.content import read_snapshot
from app.services.tutoring.student_models import (
    refresh_answer_counts,
    row_values,
    state_from_json,
    state_of,
    state_to_json,
    weights_of,
)

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
    p_mastery_paced_after: float


def _responses(
    session: Session,
    student_ids: Collection[str] | None,
    before: datetime | None = None,
) -> Iterator[tuple[str, int, bool, datetime, list[str]]]:
    """(student, response id, correct, time, skills) in answer order, student by student."""
    query = (
        select(
            Response.student_id, Response.id, Response.credited, Response.created_at, ResponseSkill.skill_id
        )
        .join(ResponseSkill, ResponseSkill.response_id == Response.id)
        .order_by(Response.student_id, Response.id, ResponseSkill.position)
        .execution_options(yield_per=BATCH)
    )
    if student_ids is not None:
        query = query.where(Response.student_id.in_(list(student_ids)))
    if before is not None:
        query = query.where(Response.created_at < before)
    current: tuple[str, int, bool, datetime, list[str]] | None = None
    for student_id, response_id, correct, created_at, skill_id in session.execute(query):
        if current is not None and current[1] == response_id:
            current[4].append(skill_id)
            continue
        if current is not None:
            yield current
        current = (student_id, response_id, correct, created_at, [skill_id])
    if current is not None:
        yield current


def replay_models(
    session: Session,
    params: dict[str, BktParams],
    rules: MasteryRules,
    student_ids: Collection[str] | None = None,
    *,
    before: datetime | None = None,
) -> Iterator[tuple[str, StudentModel, list[ReplayStep]]]:
    """Each student's model rebuilt by the tracker (from the priors, or from the state folded from
    purged answers), with every step; only answers given ``before``, when set."""
    baselines = load_baselines(session, student_ids)
    student: str | None = None
    model = StudentModel()
    steps: list[ReplayStep] = []
    for student_id, response_id, correct, created_at, skills in _responses(session, student_ids, before):
        if student_id != student:
            if student is not None:
                yield student, model, steps
            student, model, steps = student_id, baselines.pop(student_id, StudentModel()), []
        for step in apply_answer(model, skills, correct, params, now=created_at, rules=rules):
            steps.append(
                ReplayStep(
                    student_id,
                    response_id,
                    step.skill_id,
                    correct,
                    created_at,
                    step.p_mastery_before,
                    step.p_correct,
                    step.p_mastery_after,
                    step.p_mastery_paced_after,
                )
            )
    if student is not None:
        yield student, model, steps
    for student_id, folded in baselines.items():  # every answer purged: the folded state is all there is
        yield student_id, folded, []


def load_baselines(session: Session, student_ids: Collection[str] | None) -> dict[str, StudentModel]:
    query = select(StudentBaseline)
    if student_ids is not None:
        query = query.where(StudentBaseline.student_id.in_(list(student_ids)))
    return {row.student_id: model_of_baseline(row) for row in session.scalars(query)}


def model_of_baseline(row: StudentBaseline) -> StudentModel:
    return StudentModel(
        speed_weights=weights_of(row.speed_weights),
        skills={skill_id: state_from_json(v) for skill_id, v in row.skills.items()},
    )


def baseline_skills(model: StudentModel) -> dict[str, dict[str, object]]:
    """The model's skills as JSON for ``student_baselines.skills``."""
    return {skill_id: state_to_json(s) for skill_id, s in model.skills.items()}


def replay_log(
    session: Session,
    params: dict[str, BktParams],
    rules: MasteryRules,
    student_ids: Collection[str] | None = None,
) -> Iterator[ReplayStep]:
    """Every (response, skill) of the log, in order per student, traced from the priors."""
    for _, _, steps in replay_models(session, params, rules, student_ids):
        yield from steps


@dataclass(frozen=True)
class RebuildReport:
    students: int
    responses: int
    mastery_rows: int


def rebuild_mastery(
    session: Session,
    *,
    rules: MasteryRules,
    student_ids: Collection[str] | None = None,
    commit: bool = True,
) -> RebuildReport:
    """Recompute student models (mastery rows and pace) from the log under the current parameters.

    The students are locked first: answers arriving meanwhile wait, then apply on top of the rebuilt state.
    """
    lock_students(session, student_ids)
    snapshot = read_snapshot(session)
    rows: list[dict[str, object]] = []
    weights: list[dict[str, object]] = []
    responses = 0
    for student_id, model, steps in replay_models(session, snapshot.params, rules, student_ids):
        responses += len({s.response_id for s in steps})
        weights.append({"id": student_id, "speed_weights": model.speed_weights})
        rows.extend(
            {
                "student_id": student_id,
                "skill_id": skill_id,
                "parameters_id": snapshot.parameters[skill_id].id,
                **row_values(state),
            }
            for skill_id, state in model.skills.items()
        )

    clear = delete(Mastery)
    reset = update(Student).values(speed_weights=None)
    if student_ids is not None:
        clear = clear.where(Mastery.student_id.in_(list(student_ids)))
        reset = reset.where(Student.id.in_(list(student_ids)))
    session.execute(clear)
    session.execute(reset)
    for start in range(0, len(rows), BATCH):
        session.execute(insert(Mastery), rows[start : start + BATCH])
    if weights:
        session.execute(update(Student), weights)
    refresh_answer_counts(
        session, student_ids if student_ids is not None else list(session.scalars(select(Student.id)))
    )
    if commit:
        session.commit()
    return RebuildReport(students=len(weights), responses=responses, mastery_rows=len(rows))


@dataclass(frozen=True)
class Mismatch:
    student_id: str
    skill_id: str  # "(pace)" for the speed posterior
    stored: object
    replayed: object


def check_mastery(session: Session, rules: MasteryRules, tolerance: float = 1e-9) -> list[Mismatch]:
    """Stored student state that differs from a replay of the log (empty when consistent)."""
    snapshot = read_snapshot(session)
    replayed: dict[tuple[str, str], tuple[float, ...]] = {}
    replayed_pace: dict[str, list[float]] = {}
    for student_id, model, _ in replay_models(session, snapshot.params, rules):
        replayed_pace[student_id] = model.speed_weights
        for skill_id, state in model.skills.items():
            replayed[(student_id, skill_id)] = _compared(row_values(state))
    stored = {
        (row.student_id, row.skill_id): _compared(row_values(state_of(row)))
        for row in session.scalars(select(Mastery))
    }
    mismatches = []
    for key in sorted(set(replayed) | set(stored)):
        a, b = stored.get(key), replayed.get(key)
        if a is None or b is None or any(abs(x - y) > tolerance for x, y in zip(a, b, strict=True)):
            mismatches.append(Mismatch(key[0], key[1], a, b))
    counted = dict(
        session.execute(select(Response.student_id, func.count()).group_by(Response.student_id)).all()
    )
    for student_id, folded in session.execute(
        select(StudentBaseline.student_id, StudentBaseline.answer_count)
    ).all():
        counted[student_id] = counted.get(student_id, 0) + folded
    for student_id, answers in session.execute(select(Student.id, Student.answer_count)).all():
        if answers != counted.get(student_id, 0):
            mismatches.append(Mismatch(student_id, "(answers)", answers, counted.get(student_id, 0)))
    for student_id, stored_weights in session.execute(select(Student.id, Student.speed_weights)).all():
        want = replayed_pace.get(student_id, weights_of(None))
        have = weights_of(stored_weights)
        if any(abs(x - y) > tolerance for x, y in zip(have, want, strict=True)):
            mismatches.append(Mismatch(student_id, "(pace)", have, want))
    return mismatches


def _compared(values: dict[str, Any]) -> tuple[float, ...]:
    """The numbers of a mastery row that a replay must reproduce: P(L)s, attempts, memory."""
    reviewed = values["memory_reviewed_at"]
    return (
        float(values["p_mastery"]),
        *values["p_by_speed"],
        float(values["attempts"]),
        float(values["memory_stability"] or 0.0),
        float(values["memory_reviews"]),
        reviewed.timestamp() if isinstance(reviewed, datetime) else 0.0,
    )


# --- consistency of the stored state with the log (flask check-consistency) ------------------------

REPAIR_CHUNK = 1000  # students per lock / rebuild statement (bind-parameter limits)


@dataclass(frozen=True)
class Consistency:
    students: int
    answers: int  # responses in the log
    mismatches: list[Mismatch]

    @property
    def students_affected(self) -> list[str]:
        return sorted({m.student_id for m in self.mismatches})


@dataclass(frozen=True)
class Repair:
    found: Consistency
    rebuilt: RebuildReport | None  # None when nothing needed it
    after: Consistency


def begin_read_snapshot(session: Session) -> None:
    """Start the session's transaction as one consistent read of the database that answers never wait for:
    REPEATABLE READ on PostgreSQL, a WAL read transaction (no write lock) on SQLite. End it with rollback."""
    postgresql = session.get_bind().dialect.name == "postgresql"
    session.connection(
        execution_options={"isolation_level": "REPEATABLE READ"} if postgresql else {READ_SNAPSHOT: True}
    )


def lock_students(session: Session, student_ids: Collection[str] | None = None) -> None:
    """Hold these students' answers (all students: None) until the transaction ends.

    Answers lock their student's row first (``access.find_student(lock=True)``), so a replay that holds the
    rows cannot miss an answer committed between its read of the log and its write. Some students: their
    rows, in id order (answers take one row each, so no deadlock). All students: on PostgreSQL the table in
    EXCLUSIVE mode, which also holds back students created meanwhile (row locks would miss them, and the
    replay would wipe their first answers) while plain reads go on. SQLite: BEGIN IMMEDIATE already holds
    the whole database.
    """
    if student_ids is None:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("LOCK TABLE students IN EXCLUSIVE MODE"))
        return
    query = select(Student.id).where(Student.id.in_(list(student_ids))).order_by(Student.id).with_for_update()
    session.execute(query).all()


def check_consistency(session: Session, *, rules: MasteryRules) -> Consistency:
    """``check_mastery`` on one snapshot of the database (read-only; ended here when begun here).

    Answers may keep arriving meanwhile (called outside a transaction): the log and the state it compares are
    read from one snapshot, REPEATABLE READ on PostgreSQL and a WAL read transaction on SQLite, which
    holds no lock that answers would wait for.
    """
    own_snapshot = not session.in_transaction()
    if own_snapshot:
        begin_read_snapshot(session)
    try:
        return Consistency(
            students=session.scalar(select(func.count()).select_from(Student)) or 0,
            answers=session.scalar(select(func.count()).select_from(Response)) or 0,
            mismatches=check_mastery(session, rules),
        )
    finally:
        if own_snapshot:  # a caller's own transaction (and its pending writes) is the caller's to end
            session.rollback()


def repair_consistency(session: Session, *, rules: MasteryRules) -> Repair:
    """Check; replay every student found inconsistent from the log (mastery rows, pace, answer count) in
    one transaction; check again.

    The students are locked first (in id order), so none of their answers can commit between the
    replay and the write; answers of other students go on.
    """
    found = check_consistency(session, rules=rules)
    ids = found.students_affected
    if not ids:
        return Repair(found, None, found)
    responses = rows = 0
    for start in range(0, len(ids), REPAIR_CHUNK):
        chunk = ids[start : start + REPAIR_CHUNK]
        report = rebuild_mastery(session, rules=rules, student_ids=chunk, commit=False)
        responses, rows = responses + report.responses, rows + report.mastery_rows
    session.commit()
    # Every affected student counts, also one whose only fault was an answer counter without answers.
    rebuilt = RebuildReport(students=len(ids), responses=responses, mastery_rows=rows)
    return Repair(found, rebuilt, check_consistency(session, rules=rules))
