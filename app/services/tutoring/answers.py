"""Recording an answer: the response, its per-skill steps and the student's mastery rows, in one transaction.

The student is reached through ``app.services.people.access`` (locked for the update); the step of each
skill comes from ``domain.tracking.apply_answer``. A student still behind the current parameters (new ones
were fitted, and the chunked replay has not reached them) is replayed first, in the same transaction and
under the same lock, so the answer applies to the state a full replay would have left.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, ensure_allowed
from app.domain.content import Exercise
from app.domain.errors import Conflict, InvalidInput, UnknownExercise
from app.domain.grading import Answer, InvalidAnswer, answer_of, correct_answer_text, grade, stored_answer
from app.domain.tracking import MasteryRules, StudentModel, apply_answer
from app.models import Mastery, Recommendation, Response, ResponseSkill, utcnow
from app.observability.metrics import ANSWERS
from app.services.integration import lti_grades
from app.services.people.access import find_student
from app.services.tutoring.config import mastery_rules
from app.services.tutoring.content import current_snapshot, load_exercise
from app.services.tutoring.next_exercise import answered
from app.services.tutoring.student_models import (
    answer_model,
    is_behind,
    load_model,
    mastery_rows,
    replayed_model,
    row_values,
)


@dataclass(frozen=True)
class SkillStep:
    skill_id: str
    p_mastery_before: float  # standard BKT
    p_correct: float  # standard BKT
    p_mastery_after: float  # standard BKT
    p_mastery_paced_after: float | None
    mastered: bool
    estimate_before: float | None = None  # the mastery estimate the screens show, before the answer
    estimate_after: float | None = None  # ... and after it


@dataclass(frozen=True)
class RecordedResponse:
    id: int
    exercise_id: str | None
    correct: bool
    graded_by: str
    correct_answer: str
    client_response_id: str | None
    created_at: datetime
    recommendation_id: int | None
    skills: list[SkillStep]
    hints_used: int = 0
    solution: tuple[str, ...] = ()  # the exercise's worked solution: shown after the answer, never before
    feedback: str | None = None  # why a wrong answer is wrong, when grading can say ("not in simplest form")

    @property
    def credited(self) -> bool:
        """Counted as evidence of knowing: right, and without a hint."""
        return self.correct and self.hints_used == 0

    @property
    def mastery(self) -> dict[str, float]:
        return {s.skill_id: s.p_mastery_after for s in self.skills}

    @property
    def mastery_paced(self) -> dict[str, float | None]:
        return {s.skill_id: s.p_mastery_paced_after for s in self.skills}

    @property
    def estimates(self) -> dict[str, float | None]:
        return {s.skill_id: s.estimate_after for s in self.skills}


def record_response(
    session: Session,
    principal: Principal,
    student_id: str,
    *,
    exercise_id: str,
    answer: Answer | None = None,
    correct: bool | None = None,
    response_time_ms: int | None = None,
    client_response_id: str | None = None,
    hints_used: int = 0,
) -> tuple[RecordedResponse, bool]:
    """Store one answer and update the student model for every skill of the exercise, in one transaction.

    Exactly one of ``answer`` (graded here) and ``correct`` (graded by the app) is given. After a hint,
    a right answer is stored as right but traced as no evidence of knowing (``credited`` is false).
    Returns (result, created); a retry with a known ``client_response_id`` returns the
    first result with created=False.

    A student behind the current parameters is replayed first. The replay is computed in a read snapshot
    with the lock released (on SQLite the lock is the whole database's: a replay under it would hold every
    answer back), then the answer starts over and uses it if the student's state did not move meanwhile;
    after ``REPLAY_TRIES`` moves it replays under the lock.
    """
    if correct is not None:
        ensure_allowed(principal, Action.SEND_GRADES)  # a student must not grade their own answers
    prepared: PreparedReplay | None = None
    for attempt in range(1, REPLAY_TRIES + 1):
        outcome = _record(
            session,
            principal,
            student_id,
            exercise_id=exercise_id,
            answer=answer,
            correct=correct,
            response_time_ms=response_time_ms,
            client_response_id=client_response_id,
            hints_used=hints_used,
            prepared=prepared,
            under_lock=attempt == REPLAY_TRIES,
        )
        if not isinstance(outcome, PreparedReplay):
            return outcome
        prepared = outcome
    raise AssertionError("the last try replays under the lock")  # pragma: no cover


REPLAY_TRIES = 3


@dataclass(frozen=True)
class PreparedReplay:
    """A behind student's model replayed outside the lock, valid while ``key`` still holds: (answer count,
    the student's parameters revision, the current one)."""

    key: tuple[int, int, int]
    model: StudentModel


def _record(
    session: Session,
    principal: Principal,
    student_id: str,
    *,
    exercise_id: str,
    answer: Answer | None,
    correct: bool | None,
    response_time_ms: int | None,
    client_response_id: str | None,
    hints_used: int,
    prepared: PreparedReplay | None,
    under_lock: bool,
) -> tuple[RecordedResponse, bool] | PreparedReplay:
    student = find_student(session, principal, student_id, Action.PRACTISE, lock=True)
    if client_response_id is not None:
        previous = _find_by_client_id(session, student.id, client_response_id)
        if previous is not None:
            _check_same_request(previous, exercise_id, answer, correct, hints_used, client_response_id)
            result = result_of(session, previous)
            session.rollback()
            return result, False

    snapshot = current_snapshot(session)
    exercise = snapshot.graph.exercises.get(exercise_id) or load_exercise(session, exercise_id)
    if exercise is None:
        raise UnknownExercise(exercise_id, field="exercise_id")
    retired = [s for s in exercise.skill_ids if s not in snapshot.graph.skills]
    if retired:
        # A retired exercise of live skills still counts (an app's cached copy); one whose skills left
        # the content has no model to update.
        raise InvalidInput(
            f"Exercise {exercise.id!r} is retired: its skills {retired} are no longer in the content."
        )
    graded_by = "app" if answer is None else "server"
    graded = grade(exercise, answer) if answer is not None else None
    is_correct = graded.correct if graded is not None else bool(correct)

    # A new pace estimate can bring other skills to mastery: the model holds every skill it could (not every
    # skill practised). Behind the current parameters: the replay of the student's log under them, whole
    # (the version check costs no query).
    rules = mastery_rules()
    evidence = is_correct and hints_used == 0
    replayed = is_behind(student, snapshot)
    key = (student.answer_count, student.parameters_revision, snapshot.parameters_revision)
    now = utcnow()
    if replayed and prepared is not None and prepared.key == key:
        model, rows = prepared.model, mastery_rows(session, student)
    elif replayed and not under_lock:
        session.rollback()  # the lock goes while the student's log is replayed
        return PreparedReplay(key, replayed_model(session, student_id, snapshot, rules))
    elif replayed:
        model, rows = load_model(session, student, snapshot, rules)
    else:
        model, rows = answer_model(
            session, student, exercise.skill_ids, evidence, snapshot.params, now=now, rules=rules
        )
    steps = apply_answer(model, exercise.skill_ids, evidence, snapshot.params, now=now, rules=rules)
    student.speed_weights = model.speed_weights
    student.pace_drift = model.pace_drift
    student.answer_count += 1
    student.last_answer_at = now
    # Computed under the current parameters from here on (a first answer too: there was nothing before).
    student.parameters_revision = max(student.parameters_revision, snapshot.parameters_revision)
    for skill_id, existing in rows.items():
        state = model.skills.get(skill_id)
        if skill_id in exercise.skill_ids:
            continue  # written in full below, in the same UPDATE
        if state is None:  # a replay has no such skill (a row without answers): as rebuild_mastery, gone
            session.delete(existing)
            continue
        if replayed:  # every row is rewritten under the current parameters
            for name, value in row_values(state).items():
                setattr(existing, name, value)
            existing.parameters_id = snapshot.parameters[skill_id].id
        elif existing.mastered_at is None and state.mastered_at is not None:
            # earned through the new pace estimate: the earning moment and the memory it starts
            for name, value in row_values(state).items():
                setattr(existing, name, value)
        existing.pace_check_at = state.pace_check_at
    if replayed:  # a skill of the replay without a row yet (the exercise's own are added below)
        for skill_id in model.skills.keys() - rows.keys() - set(exercise.skill_ids):
            rows[skill_id] = Mastery(
                student_id=student.id,
                skill_id=skill_id,
                parameters_id=snapshot.parameters[skill_id].id,
                pace_check_at=model.skills[skill_id].pace_check_at,
                **row_values(model.skills[skill_id]),
            )
            session.add(rows[skill_id])
    response = Response(
        student_id=student.id,
        exercise_id=exercise.id,
        correct=is_correct,
        answer=stored_answer(answer) if answer is not None else None,
        graded_by=graded_by,
        response_time_ms=response_time_ms,
        client_response_id=client_response_id,
        created_at=now,
        recommendation_id=_pending_recommendation(session, student.id, exercise.id),
        hints_used=hints_used,
    )
    for position, step in enumerate(steps):
        parameters_id = snapshot.parameters[step.skill_id].id
        row = rows.get(step.skill_id)
        if row is None:
            row = rows[step.skill_id] = Mastery(student_id=student.id, skill_id=step.skill_id)
            session.add(row)
        for name, value in row_values(model.skills[step.skill_id]).items():
            setattr(row, name, value)
        row.pace_check_at = model.skills[step.skill_id].pace_check_at
        row.parameters_id = parameters_id
        response.skills.append(
            ResponseSkill(
                skill_id=step.skill_id,
                position=position,
                parameters_id=parameters_id,
                p_mastery_before=step.p_mastery_before,
                p_correct=step.p_correct,
                p_mastery_after=step.p_mastery_after,
                p_mastery_paced_after=step.p_mastery_paced_after,
                estimate_before=step.estimate_before,
                estimate_after=step.estimate_after,
            )
        )
    session.add(response)
    session.commit()
    ANSWERS.labels(graded_by).inc()
    lti_grades.answer_recorded(session, student)  # an LMS learner's score: queued (no query for others)
    return RecordedResponse(
        id=response.id,
        exercise_id=exercise.id,
        correct=is_correct,
        graded_by=graded_by,
        correct_answer=correct_answer_text(exercise),
        client_response_id=client_response_id,
        created_at=now,
        recommendation_id=response.recommendation_id,
        hints_used=hints_used,
        solution=exercise.solution,
        feedback=graded.reason if graded is not None else None,
        skills=[
            SkillStep(
                s.skill_id,
                s.p_mastery_before,
                s.p_correct,
                s.p_mastery_after,
                s.p_mastery_paced_after,
                s.mastered,
                s.estimate_before,
                s.estimate_after,
            )
            for s in steps
        ],
    ), True


def _pending_recommendation(session: Session, student_id: str, exercise_id: str) -> int | None:
    """The latest recommendation, when it was for this exercise and is not answered yet."""
    latest = session.execute(
        select(Recommendation.id, Recommendation.exercise_id, answered(Recommendation.id))
        .where(Recommendation.student_id == student_id)
        .order_by(Recommendation.id.desc())
        .limit(1)
    ).first()
    if latest is None or latest[1] != exercise_id or latest[2]:
        return None
    return int(latest[0])


def _find_by_client_id(session: Session, student_id: str, client_response_id: str) -> Response | None:
    return session.scalar(
        select(Response).where(
            Response.student_id == student_id, Response.client_response_id == client_response_id
        )
    )


def _check_same_request(
    previous: Response,
    exercise_id: str,
    answer: Answer | None,
    correct: bool | None,
    hints_used: int,
    client_id: str,
) -> None:
    # hints_used too: it decides whether the answer counts as evidence. The response time may differ.
    same = (
        previous.exercise_id == exercise_id
        and previous.hints_used == hints_used
        and (previous.answer == stored_answer(answer) if answer is not None else previous.correct == correct)
    )
    if not same:
        raise Conflict(
            f"client_response_id {client_id!r} was already used for a different answer "
            f"(exercise {previous.exercise_id!r})."
        )


def _feedback(exercise: Exercise | None, response: Response) -> str | None:
    """The reason of a stored wrong answer, graded again (the reason is not stored; grading is
    deterministic, so it is the one given when the answer was sent, unless the exercise changed)."""
    if exercise is None or response.answer is None or response.correct or response.graded_by != "server":
        return None
    try:
        return grade(exercise, answer_of(exercise, response.answer)).reason
    except InvalidAnswer:
        return None


def result_of(session: Session, response: Response) -> RecordedResponse:
    exercise = load_exercise(session, response.exercise_id) if response.exercise_id else None
    rules = mastery_rules()
    earned = dict(
        session.execute(
            select(Mastery.skill_id, Mastery.mastered_at).where(
                Mastery.student_id == response.student_id,
                Mastery.skill_id.in_([s.skill_id for s in response.skills]),
            )
        ).all()
    )
    return RecordedResponse(
        id=response.id,
        exercise_id=response.exercise_id,
        correct=response.correct,
        graded_by=response.graded_by,
        correct_answer=correct_answer_text(exercise) if exercise else "",
        client_response_id=response.client_response_id,
        created_at=response.created_at,
        recommendation_id=response.recommendation_id,
        hints_used=response.hints_used,
        solution=exercise.solution if exercise else (),
        feedback=_feedback(exercise, response),
        skills=[
            SkillStep(
                s.skill_id,
                s.p_mastery_before,
                s.p_correct,
                s.p_mastery_after,
                s.p_mastery_paced_after,
                _was_mastered(s, earned.get(s.skill_id), response.created_at, rules),
                s.estimate_before,
                s.estimate_after,
            )
            for s in response.skills
        ],
    )


def _was_mastered(
    step: ResponseSkill, earned_at: datetime | None, answered_at: datetime, rules: MasteryRules
) -> bool:
    """The stored step's "mastered", as the answer said it: earned by then, and the estimate after it high
    enough (answers stored before estimates existed: the paced P(L))."""
    after = (
        step.estimate_after
        if step.estimate_after is not None
        else (step.p_mastery_paced_after if step.p_mastery_paced_after is not None else step.p_mastery_after)
    )
    return earned_at is not None and earned_at <= answered_at and after >= rules.review_level
