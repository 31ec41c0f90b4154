"""Replaying the response log: the student models must always equal a replay under the current parameters.

Used after new parameters become current (``fit-params``), by ``flask rebuild-mastery``,
and by tests that check the stored state against the log. A student whose oldest answers
were purged (retention) replays from the state folded from them (``student_baselines``).

Replays of everyone never hold answers for long (``replay_stale``): the new parameters commit first, in a
short transaction that also moves ``content_state.parameters_revision`` past every student's own
``parameters_revision``, so every student with answers is *behind*. Then chunks of students are replayed:
each chunk is computed in a read snapshot (no lock) and written in a short transaction that locks only its
students and skips any whose state changed since it was read (their answer replayed them first). A crash or
a cancel between chunks leaves some students replayed and the rest behind, each consistent with the
parameters their rows name; their next answer, or the next ``replay_stale``, finishes them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import ColumnElement, and_, delete, func, insert, select, text, update
from sqlalchemy.orm import Session

from app.domain.bkt import BktParams
from app.domain.tracking import MasteryRules, StudentModel, apply_answer
from app.extensions import READ_SNAPSHOT
from app.models import (
    ContentState,
    Mastery,
    Response,
    ResponseSkill,
    SkillParameters,
    Student,
    StudentBaseline,
)
from app.services.tutoring.content import CurrentParameters, bump_revision, params_of, read_snapshot
from app.services.tutoring.student_models import (
    refresh_answer_counts,
    row_values,
    state_from_json,
    state_of,
    state_to_json,
    weights_of,
)

BATCH = 5000
# A chunk of the replay: students in id order until their answers reach CHUNK_RESPONSES (a student with more
# is a chunk of their own), at most CHUNK_STUDENTS. Only the chunk's write locks its students: tens of ms.
CHUNK_RESPONSES = 5_000
CHUNK_STUDENTS = 500
Progress = Callable[[int, int], None]  # (students done, students to do)
log = structlog.stdlib.get_logger(__name__)


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
    params: Mapping[str, BktParams],
    rules: MasteryRules,
    student_ids: Collection[str] | None = None,
    *,
    before: datetime | None = None,
    params_by_student: Mapping[str, Mapping[str, BktParams]] | None = None,
) -> Iterator[tuple[str, StudentModel, list[ReplayStep]]]:
    """Each student's model rebuilt by the tracker (from the priors, or from the state folded from
    purged answers), with every step; only answers given ``before``, when set. ``params_by_student``: other
    parameters for some students (``check_mastery``: those behind, under the versions their rows name)."""
    baselines = load_baselines(session, student_ids)
    student: str | None = None
    model = StudentModel()
    steps: list[ReplayStep] = []
    own = params
    for student_id, response_id, correct, created_at, skills in _responses(session, student_ids, before):
        if student_id != student:
            if student is not None:
                yield student, model, steps
            student, model, steps = student_id, baselines.pop(student_id, StudentModel()), []
            own = params_by_student.get(student_id, params) if params_by_student else params
        for step in apply_answer(model, skills, correct, own, now=created_at, rules=rules):
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


def replay_student(
    session: Session, student_id: str, params: Mapping[str, BktParams], rules: MasteryRules
) -> StudentModel:
    """One student's model replayed from their log (and baseline) under ``params``; read-only."""
    for _, model, _ in replay_models(session, params, rules, [student_id]):
        return model
    return StudentModel()


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
    students: int  # students whose state was written
    responses: int  # responses replayed for them
    mastery_rows: int
    chunks: int = 0  # transactions it took (the chunked replay; 0: one transaction)
    remaining: int = 0  # students still behind when it stopped (cancelled, or new parameters came meanwhile)


def rebuild_mastery(
    session: Session,
    *,
    rules: MasteryRules,
    student_ids: Collection[str] | None = None,
    commit: bool = True,
) -> RebuildReport:
    """Recompute these students' models (mastery rows and pace) from the log under the current parameters,
    in ONE transaction (``check-consistency --repair``; tests). Everyone at once: ``replay_stale``.

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
        rows.extend(_rows_of(student_id, model, snapshot.parameters))
    ids = list(student_ids) if student_ids is not None else None
    _write_models(session, ids, rows, weights, snapshot.parameters_revision)
    refresh_answer_counts(session, ids if ids is not None else list(session.scalars(select(Student.id))))
    if commit:
        session.commit()
    return RebuildReport(students=len(weights), responses=responses, mastery_rows=len(rows))


def _rows_of(
    student_id: str, model: StudentModel, parameters: Mapping[str, CurrentParameters]
) -> Iterator[dict[str, object]]:
    for skill_id, state in model.skills.items():
        yield {
            "student_id": student_id,
            "skill_id": skill_id,
            "parameters_id": parameters[skill_id].id,
            **row_values(state),
        }


def _write_models(
    session: Session,
    student_ids: list[str] | None,
    rows: list[dict[str, object]],
    weights: list[dict[str, object]],
    revision: int,
) -> None:
    """Replace these students' (None: everyone's) mastery rows and pace; mark them replayed at ``revision``.
    A student without a model (no answers left, no baseline) keeps no state."""
    if student_ids is None:
        session.execute(delete(Mastery))
        session.execute(update(Student).values(speed_weights=None, parameters_revision=revision))
    for start in range(0, len(student_ids or ()), REPAIR_CHUNK):
        part = (student_ids or [])[start : start + REPAIR_CHUNK]
        session.execute(delete(Mastery).where(Mastery.student_id.in_(part)))
        reset = update(Student).where(Student.id.in_(part))
        session.execute(reset.values(speed_weights=None, parameters_revision=revision))
    for start in range(0, len(rows), BATCH):
        session.execute(insert(Mastery), rows[start : start + BATCH])
    if weights:
        session.execute(update(Student), weights)


# --- the chunked replay ---------------------------------------------------------------------------------


def behind(revision: int) -> ColumnElement[bool]:
    """SQL: students with answers whose state was computed before parameters revision ``revision``."""
    return and_(Student.answer_count > 0, Student.parameters_revision < revision)


def students_behind(session: Session) -> int:
    """How many students still wait for their replay under the current parameters (in the caller's
    transaction; two statements)."""
    revision = read_revision(session)
    return int(session.scalar(select(func.count()).select_from(Student).where(behind(revision))) or 0)


def read_revision(session: Session) -> int:
    """content_state.parameters_revision as stored now."""
    return int(session.scalar(select(ContentState.parameters_revision).where(ContentState.id == 1)) or 0)


def replay_stale(
    session: Session,
    *,
    rules: MasteryRules,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    chunk_responses: int | None = None,  # default CHUNK_RESPONSES
) -> RebuildReport:
    """Replay every student who is behind the current parameters, a chunk of students at a time.

    Each chunk: its students' logs are read and replayed in a read snapshot (nothing locked), then ONE short
    transaction locks those students (in id order), skips any whose answer count or revision moved since
    (an answer replayed them first), writes the others' mastery rows and pace, marks them replayed and
    commits. Answers of other students never wait for it on PostgreSQL; on SQLite they wait for one chunk's
    write at most. ``progress(done, total)`` is called before the first chunk and after each commit (an
    exception from it stops the replay there: the committed chunks stay); ``cancelled()`` is asked before
    each chunk. Either way the students left are replayed by their next answer (read as replayed until
    then) or by the next call. If newer parameters commit meanwhile, the students already done are behind
    again and the pass starts over. Commits the session's open transaction first.
    """
    if session.in_transaction():
        session.commit()
    per_chunk = chunk_responses or CHUNK_RESPONSES
    started = time.perf_counter()
    begin_read_snapshot(session)
    revision = read_revision(session)
    total = int(session.scalar(select(func.count()).select_from(Student).where(behind(revision))) or 0)
    session.rollback()
    if progress is not None:
        progress(0, total)
    done = written = responses = rows = chunks = 0
    after = ""
    stopped = False
    while True:
        if cancelled is not None and cancelled():
            stopped = True
            break
        begin_read_snapshot(session)
        snapshot = read_snapshot(session)
        if snapshot.parameters_revision != revision:  # newer parameters: everyone behind them, from the start
            revision, after = snapshot.parameters_revision, ""
            total = done + int(
                session.scalar(select(func.count()).select_from(Student).where(behind(revision))) or 0
            )
        chunk = _next_chunk(session, revision, after, per_chunk)
        if not chunk:
            session.rollback()
            break
        models: dict[str, StudentModel] = {}
        for student_id, model, steps in replay_models(session, snapshot.params, rules, list(chunk)):
            models[student_id] = model
            responses += len({s.response_id for s in steps})
        session.rollback()  # the snapshot ends: the write below is a transaction of its own
        stored = _write_chunk(session, chunk, models, snapshot.parameters, revision)
        session.commit()
        written, rows, chunks = written + stored[0], rows + stored[1], chunks + 1
        after = max(chunk)
        done += len(chunk)
        if progress is not None:
            progress(min(done, total), total)
    if not stopped and progress is not None and done < total:
        progress(total, total)  # the rest were replayed by their own answers meanwhile
    begin_read_snapshot(session)
    remaining = students_behind(session)
    session.rollback()
    report = RebuildReport(written, responses, rows, chunks=chunks, remaining=remaining)
    log.info(
        "replay.stopped" if stopped else "replay.finished",
        students=written,
        responses=responses,
        mastery_rows=rows,
        chunks=chunks,
        remaining=remaining,
        parameters_revision=revision,
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return report


def _next_chunk(
    session: Session, revision: int, after: str, chunk_responses: int
) -> dict[str, tuple[int, int]]:
    """The next students behind ``revision`` after id ``after``, in id order, up to ``chunk_responses``
    answers in all: id -> (answer count, revision) as read, to see at the write whether they moved."""
    candidates = session.execute(
        select(Student.id, Student.answer_count, Student.parameters_revision)
        .where(behind(revision), Student.id > after)
        .order_by(Student.id)
        .limit(CHUNK_STUDENTS)
    ).all()
    chunk: dict[str, tuple[int, int]] = {}
    answers = 0
    for student_id, count, own in candidates:
        if chunk and answers + count > chunk_responses:
            break
        chunk[student_id] = (count, own)
        answers += count
    return chunk


def _write_chunk(
    session: Session,
    chunk: dict[str, tuple[int, int]],
    models: dict[str, StudentModel],
    parameters: Mapping[str, CurrentParameters],
    revision: int,
) -> tuple[int, int]:
    """Lock the chunk's students and store the replayed models of those unchanged since they were read;
    (students written, mastery rows)."""
    locked = session.execute(
        select(Student.id, Student.answer_count, Student.parameters_revision)
        .where(Student.id.in_(list(chunk)))
        .order_by(Student.id)
        .with_for_update()
    ).all()
    unchanged = [student_id for student_id, count, own in locked if chunk[student_id] == (count, own)]
    rows = [row for s in unchanged if s in models for row in _rows_of(s, models[s], parameters)]
    weights: list[dict[str, object]] = [
        {"id": s, "speed_weights": models[s].speed_weights} for s in unchanged if s in models
    ]
    _write_models(session, unchanged, rows, weights, revision)
    return len(unchanged), len(rows)


def rebuild_in_chunks(
    session: Session,
    *,
    rules: MasteryRules,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    chunk_responses: int | None = None,  # default CHUNK_RESPONSES
) -> RebuildReport:
    """Recompute every student's state from the log (``flask rebuild-mastery``, e.g. after MASTERY_RULES
    changed): one short transaction marks every student with answers behind, then ``replay_stale``."""
    if session.in_transaction():
        session.commit()
    bump_revision(session, replay=True)
    session.commit()
    return replay_stale(
        session, rules=rules, progress=progress, cancelled=cancelled, chunk_responses=chunk_responses
    )


@dataclass(frozen=True)
class Mismatch:
    student_id: str
    skill_id: str  # "(pace)" for the speed posterior
    stored: object
    replayed: object


def check_mastery(session: Session, rules: MasteryRules, tolerance: float = 1e-9) -> list[Mismatch]:
    """Stored student state that differs from a replay of the log (empty when consistent).

    A student behind the current parameters (the chunked replay has not reached them yet) is replayed under
    the parameter versions their own mastery rows name: their state must be the one those left, whole."""
    snapshot = read_snapshot(session)
    mastery = list(session.scalars(select(Mastery)))
    lagging = set(session.scalars(select(Student.id).where(behind(snapshot.parameters_revision))))
    replayed: dict[tuple[str, str], tuple[float, ...]] = {}
    replayed_pace: dict[str, list[float]] = {}
    own = _own_parameters(session, [row for row in mastery if row.student_id in lagging], snapshot.params)
    for student_id, model, _ in replay_models(session, snapshot.params, rules, params_by_student=own):
        replayed_pace[student_id] = model.speed_weights
        for skill_id, state in model.skills.items():
            replayed[(student_id, skill_id)] = _compared(row_values(state))
    stored = {(row.student_id, row.skill_id): _compared(row_values(state_of(row))) for row in mastery}
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


def _own_parameters(
    session: Session, rows: list[Mastery], current: Mapping[str, BktParams]
) -> dict[str, dict[str, BktParams]]:
    """Student -> the parameters their rows were computed under (for skills without a row: the current)."""
    ids = sorted({row.parameters_id for row in rows})
    versions: dict[int, BktParams] = {}
    for start in range(0, len(ids), REPAIR_CHUNK):
        part = ids[start : start + REPAIR_CHUNK]
        versions.update(
            (version.id, params_of(version))
            for version in session.scalars(select(SkillParameters).where(SkillParameters.id.in_(part)))
        )
    own: dict[str, dict[str, BktParams]] = {}
    for row in rows:
        own.setdefault(row.student_id, dict(current))[row.skill_id] = versions[row.parameters_id]
    return own


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
    # Students still to be replayed under the current parameters (a chunked replay under way or stopped),
    # each checked against the parameters their rows name; not a fault.
    behind: int = 0

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
            behind=students_behind(session),
        )
    finally:
        if own_snapshot:  # a caller's own transaction (and its pending writes) is the caller's to end
            session.rollback()


def repair_consistency(session: Session, *, rules: MasteryRules) -> Repair:
    """Check; replay every student found inconsistent from the log (mastery rows, pace, answer count) in
    one transaction; finish the replay of those still behind the current parameters (in chunks,
    ``replay_stale``); check again.

    The inconsistent students are locked first (in id order), so none of their answers can commit between
    the replay and the write; answers of other students go on.
    """
    found = check_consistency(session, rules=rules)
    ids = found.students_affected
    if not ids and not found.behind:
        return Repair(found, None, found)
    responses = rows = 0
    for start in range(0, len(ids), REPAIR_CHUNK):
        chunk = ids[start : start + REPAIR_CHUNK]
        report = rebuild_mastery(session, rules=rules, student_ids=chunk, commit=False)
        responses, rows = responses + report.responses, rows + report.mastery_rows
    session.commit()
    # Every affected student counts, also one whose only fault was an answer counter without answers.
    students = len(ids)
    if found.behind:
        caught_up = replay_stale(session, rules=rules)
        students, responses = students + caught_up.students, responses + caught_up.responses
        rows += caught_up.mastery_rows
    rebuilt = RebuildReport(students=students, responses=responses, mastery_rows=rows)
    return Repair(found, rebuilt, check_consistency(session, rules=rules))
