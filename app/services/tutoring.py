"""Students, answers and mastery: recording responses, choosing the next exercise, progress.

Every function takes the calling app's id and only ever sees that app's students:
a student of another app is indistinguishable from one that does not exist.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.bkt import is_mastered, predict_correct, update_mastery
from app.domain.content import Exercise
from app.domain.errors import Conflict, UnknownExercise, UnknownStudent
from app.domain.grading import grade_answer
from app.domain.selection import RECENT_WINDOW, Recommendation, choose_next_exercise, mastery_of
from app.models import Mastery, Response, ResponseSkill, Student, utcnow
from app.services.content import current_snapshot, load_exercise


def _threshold() -> float:
    return float(current_app.config["MASTERY_THRESHOLD"])


# --- students -----------------------------------------------------------------------------


def get_or_create_student(session: Session, app_id: int, external_id: str) -> tuple[Student, bool]:
    """The app's student with this external id, created if new. Returns (student, created)."""
    query = select(Student).where(Student.app_id == app_id, Student.external_id == external_id)
    student = session.scalar(query)
    if student is not None:
        return student, False
    student = Student(app_id=app_id, external_id=external_id)
    session.add(student)
    try:
        session.commit()
    except IntegrityError:
        # Two concurrent first requests for the same student: the other one won.
        session.rollback()
        existing = session.scalar(query)
        if existing is None:
            raise
        return existing, False
    return student, True


def get_student(session: Session, app_id: int, student_id: str, *, lock: bool = False) -> Student:
    query = select(Student).where(Student.id == student_id, Student.app_id == app_id)
    if lock:
        # PostgreSQL: serialise answers of one student. SQLite: BEGIN IMMEDIATE already does.
        query = query.with_for_update()
    found: Student | None = session.scalar(query)
    if found is None:
        raise UnknownStudent(student_id)
    return found


# --- responses ------------------------------------------------------------------------------


@dataclass(frozen=True)
class SkillStep:
    skill_id: str
    p_mastery_before: float
    p_correct: float
    p_mastery_after: float
    mastered: bool


@dataclass(frozen=True)
class RecordedResponse:
    id: int
    exercise_id: str | None
    correct: bool
    graded_by: str
    correct_answer: str
    client_response_id: str | None
    created_at: datetime
    skills: list[SkillStep]

    @property
    def mastery(self) -> dict[str, float]:
        return {s.skill_id: s.p_mastery_after for s in self.skills}


def record_response(
    session: Session,
    app_id: int,
    student_id: str,
    *,
    exercise_id: str,
    answer: str | None = None,
    correct: bool | None = None,
    response_time_ms: int | None = None,
    client_response_id: str | None = None,
) -> tuple[RecordedResponse, bool]:
    """Store one answer and update mastery of every skill of the exercise, in one transaction.

    Exactly one of ``answer`` (graded here) and ``correct`` (graded by the app) is given.
    Returns (result, created); a retry with a known ``client_response_id`` returns the
    first result with created=False.
    """
    student = get_student(session, app_id, student_id, lock=True)
    if client_response_id is not None:
        previous = _find_by_client_id(session, student.id, client_response_id)
        if previous is not None:
            _check_same_request(previous, exercise_id, answer, correct, client_response_id)
            result = _result_of(session, previous)
            session.rollback()
            return result, False

    snapshot = current_snapshot(session)
    exercise = snapshot.graph.exercises.get(exercise_id) or load_exercise(session, exercise_id)
    if exercise is None:
        raise UnknownExercise(exercise_id, field="exercise_id")
    graded_by = "app" if answer is None else "server"
    is_correct = grade_answer(exercise, answer) if answer is not None else bool(correct)

    rows = {
        m.skill_id: m
        for m in session.scalars(
            select(Mastery).where(
                Mastery.student_id == student.id, Mastery.skill_id.in_(exercise.skill_ids)
            )
        )
    }
    now = utcnow()
    response = Response(
        student_id=student.id, exercise_id=exercise.id, correct=is_correct,
        answer=answer, graded_by=graded_by, response_time_ms=response_time_ms,
        client_response_id=client_response_id, created_at=now,
    )
    steps = []
    threshold = _threshold()
    for position, skill_id in enumerate(exercise.skill_ids):
        current = snapshot.parameters[skill_id]
        parameters_id, params = current.id, current.params
        row = rows.get(skill_id)
        before = params.prior if row is None else row.p_mastery
        after = update_mastery(before, is_correct, params)
        if row is None:
            row = Mastery(student_id=student.id, skill_id=skill_id, attempts=0, correct_count=0)
            session.add(row)
        row.p_mastery = after
        row.attempts += 1
        row.correct_count += int(is_correct)
        row.updated_at = now
        row.parameters_id = parameters_id
        if row.mastered_at is None and is_mastered(after, threshold):
            row.mastered_at = now
        response.skills.append(ResponseSkill(
            skill_id=skill_id, position=position, parameters_id=parameters_id,
            p_mastery_before=before, p_correct=predict_correct(before, params),
            p_mastery_after=after,
        ))
        steps.append(SkillStep(
            skill_id, before, predict_correct(before, params), after, is_mastered(after, threshold)
        ))
    session.add(response)
    session.commit()
    return RecordedResponse(
        id=response.id, exercise_id=exercise.id, correct=is_correct, graded_by=graded_by,
        correct_answer=exercise.answers[0], client_response_id=client_response_id,
        created_at=now, skills=steps,
    ), True


def _find_by_client_id(session: Session, student_id: str, client_response_id: str) -> Response | None:
    return session.scalar(
        select(Response).where(
            Response.student_id == student_id, Response.client_response_id == client_response_id
        )
    )


def _check_same_request(
    previous: Response, exercise_id: str, answer: str | None, correct: bool | None, client_id: str
) -> None:
    same = previous.exercise_id == exercise_id and (
        previous.answer == answer if answer is not None else previous.correct == correct
    )
    if not same:
        raise Conflict(
            f"client_response_id {client_id!r} was already used for a different answer "
            f"(exercise {previous.exercise_id!r})."
        )


def _result_of(session: Session, response: Response) -> RecordedResponse:
    exercise = load_exercise(session, response.exercise_id) if response.exercise_id else None
    threshold = _threshold()
    return RecordedResponse(
        id=response.id, exercise_id=response.exercise_id, correct=response.correct,
        graded_by=response.graded_by,
        correct_answer=exercise.answers[0] if exercise else "",
        client_response_id=response.client_response_id, created_at=response.created_at,
        skills=[
            SkillStep(s.skill_id, s.p_mastery_before, s.p_correct, s.p_mastery_after,
                      is_mastered(s.p_mastery_after, threshold))
            for s in response.skills
        ],
    )


# --- next exercise and progress ----------------------------------------------------------------


@dataclass(frozen=True)
class NextExercise:
    recommendation: Recommendation
    exercise: Exercise | None


def next_exercise(
    session: Session, app_id: int, student_id: str, *, seed: int | None = None
) -> NextExercise:
    """The next exercise for a student, with the reason it was chosen.

    Without a seed the draw is seeded by the student and their latest response, so
    asking twice without answering gives the same exercise.
    """
    student = get_student(session, app_id, student_id)
    snapshot = current_snapshot(session)
    mastery = dict(session.execute(
        select(Mastery.skill_id, Mastery.p_mastery).where(Mastery.student_id == student.id)
    ).all())
    recent = session.execute(
        select(Response.id, Response.exercise_id)
        .where(Response.student_id == student.id)
        .order_by(Response.id.desc())
        .limit(RECENT_WINDOW)
    ).all()
    if seed is None:
        latest = recent[0][0] if recent else 0
        seed = random.Random(f"{student.id}:{latest}").getrandbits(63)
    recommendation = choose_next_exercise(
        snapshot.graph, mastery, snapshot.params, [e for _, e in recent if e is not None],
        threshold=_threshold(), seed=seed,
    )
    exercise = (
        snapshot.graph.exercises[recommendation.exercise_id]
        if recommendation.exercise_id else None
    )
    return NextExercise(recommendation, exercise)


@dataclass(frozen=True)
class SkillProgress:
    skill_id: str
    name: str
    p_mastery: float
    p_correct: float
    attempts: int
    correct_count: int
    mastered: bool
    mastered_at: datetime | None


def progress(session: Session, app_id: int, student_id: str) -> list[SkillProgress]:
    """Mastery of every practicable skill (and any other the student has answers on), in prerequisite order.

    Skills known only from imported logs have no exercises; they are listed only for
    students who have answers on them.
    """
    student = get_student(session, app_id, student_id)
    snapshot = current_snapshot(session)
    rows = {
        m.skill_id: m
        for m in session.scalars(select(Mastery).where(Mastery.student_id == student.id))
    }
    threshold = _threshold()
    params = snapshot.params
    out = []
    for skill_id in snapshot.graph.skill_order:
        row = rows.get(skill_id)
        if row is None and not snapshot.graph.exercises_by_skill.get(skill_id):
            continue
        p = mastery_of(skill_id, {skill_id: row.p_mastery} if row else {}, params)
        out.append(SkillProgress(
            skill_id=skill_id, name=snapshot.graph.skills[skill_id].name, p_mastery=p,
            p_correct=predict_correct(p, params[skill_id]),
            attempts=row.attempts if row else 0,
            correct_count=row.correct_count if row else 0,
            mastered=is_mastered(p, threshold),
            mastered_at=row.mastered_at if row else None,
        ))
    return out
