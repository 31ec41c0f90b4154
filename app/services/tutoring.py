"""Students, answers and mastery: recording responses, choosing the next exercise, progress.

Every function takes the caller (a principal) and reaches students only through
``app.services.access``: a student the caller may not see is indistinguishable
from one that does not exist.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, Role, ensure_allowed
from app.domain.content import Exercise
from app.domain.errors import Conflict, InvalidInput, UnknownExercise
from app.domain.grading import grade_answer
from app.domain.selection import PolicyConfig, StudentView, choose_next_exercise
from app.domain.selection import Recommendation as Choice
from app.domain.tracking import MasteryRules, MasteryStatus, apply_answer, status_of
from app.models import ConsentEvent, Mastery, Recommendation, Response, ResponseSkill, Student, utcnow
from app.services.access import find_student, record_access
from app.services.content import current_snapshot, load_exercise
from app.services.student_models import load_model, row_values
from app.settings import current_settings


def mastery_rules() -> MasteryRules:
    """When a skill is mastered: MASTERY_THRESHOLD, then any MASTERY_RULES mapping (checked at start)."""
    return current_settings().mastery


def policy_config() -> PolicyConfig:
    """The policy settings: the mastery rules, then any POLICY mapping (checked at start)."""
    return current_settings().policy


# --- students -----------------------------------------------------------------------------


def get_or_create_student(session: Session, principal: Principal, external_id: str) -> tuple[Student, bool]:
    """The school's student with this external id, created if new. Returns (student, created)."""
    ensure_allowed(principal, Action.CREATE_STUDENT)
    query = select(Student).where(Student.school_id == principal.school_id,
                                  Student.external_id == external_id)
    student = session.scalar(query)
    if student is not None:
        return student, False
    created_by = int(principal.id) if principal.role is Role.APP else None
    student = Student(school_id=principal.school_id, app_id=created_by, external_id=external_id)
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


def get_student(session: Session, principal: Principal, student_id: str) -> Student:
    """The student whose data ``principal`` wants to read (a lookup: it records nothing)."""
    return find_student(session, principal, student_id, Action.READ_STUDENT)


def student_profile(session: Session, principal: Principal, student_id: str) -> Student:
    """The student's profile, the read logged for anyone but the student."""
    student = get_student(session, principal, student_id)
    record_access(session, principal, [student.id], "profile")
    session.commit()
    return student


# --- responses ------------------------------------------------------------------------------


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
    answer: str | None = None,
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
    """
    if correct is not None:
        ensure_allowed(principal, Action.SEND_GRADES)  # a student must not grade their own answers
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
        raise InvalidInput(f"Exercise {exercise.id!r} is retired: its skills {retired} are no longer in the "
                           "content.")
    graded_by = "app" if answer is None else "server"
    is_correct = grade_answer(exercise, answer) if answer is not None else bool(correct)

    # The whole model: a new pace estimate can bring other skills to mastery.
    model, rows = load_model(session, student)
    now = utcnow()
    steps = apply_answer(model, exercise.skill_ids, is_correct and hints_used == 0, snapshot.params,
                         now=now, rules=mastery_rules())
    student.speed_weights = model.speed_weights
    student.answer_count += 1
    student.last_answer_at = now
    for skill_id, existing in rows.items():
        state = model.skills[skill_id]
        if skill_id in exercise.skill_ids:
            continue  # written in full below, in the same UPDATE
        if existing.mastered_at is None and state.mastered_at is not None:
            # earned through the new pace estimate: the earning moment and the memory it starts
            for name, value in row_values(state).items():
                setattr(existing, name, value)
    response = Response(
        student_id=student.id, exercise_id=exercise.id, correct=is_correct,
        answer=answer, graded_by=graded_by, response_time_ms=response_time_ms,
        client_response_id=client_response_id, created_at=now,
        recommendation_id=_pending_recommendation(session, student.id, exercise.id), hints_used=hints_used,
    )
    for position, step in enumerate(steps):
        parameters_id = snapshot.parameters[step.skill_id].id
        row = rows.get(step.skill_id)
        if row is None:
            row = rows[step.skill_id] = Mastery(student_id=student.id, skill_id=step.skill_id)
            session.add(row)
        for name, value in row_values(model.skills[step.skill_id]).items():
            setattr(row, name, value)
        row.parameters_id = parameters_id
        response.skills.append(ResponseSkill(
            skill_id=step.skill_id, position=position, parameters_id=parameters_id,
            p_mastery_before=step.p_mastery_before, p_correct=step.p_correct,
            p_mastery_after=step.p_mastery_after, p_mastery_paced_after=step.p_mastery_paced_after,
            estimate_before=step.estimate_before, estimate_after=step.estimate_after,
        ))
    session.add(response)
    session.commit()
    return RecordedResponse(
        id=response.id, exercise_id=exercise.id, correct=is_correct, graded_by=graded_by,
        correct_answer=exercise.answers[0], client_response_id=client_response_id,
        created_at=now, recommendation_id=response.recommendation_id, hints_used=hints_used,
        solution=exercise.solution,
        skills=[SkillStep(s.skill_id, s.p_mastery_before, s.p_correct, s.p_mastery_after,
                          s.p_mastery_paced_after, s.mastered, s.estimate_before, s.estimate_after)
                for s in steps],
    ), True


def _pending_recommendation(session: Session, student_id: str, exercise_id: str) -> int | None:
    """The latest recommendation, when it was for this exercise and is not answered yet."""
    latest = session.execute(
        select(Recommendation.id, Recommendation.exercise_id, _answered(Recommendation.id))
        .where(Recommendation.student_id == student_id)
        .order_by(Recommendation.id.desc()).limit(1)
    ).first()
    if latest is None or latest[1] != exercise_id or latest[2]:
        return None
    return int(latest[0])


def _answered(recommendation_id: Any) -> Any:
    """SQL: whether an answer followed this recommendation (indexed lookup)."""
    return select(Response.id).where(Response.recommendation_id == recommendation_id).exists()


def _find_by_client_id(session: Session, student_id: str, client_response_id: str) -> Response | None:
    return session.scalar(
        select(Response).where(
            Response.student_id == student_id, Response.client_response_id == client_response_id
        )
    )


def _check_same_request(
    previous: Response, exercise_id: str, answer: str | None, correct: bool | None, hints_used: int,
    client_id: str,
) -> None:
    # hints_used too: it decides whether the answer counts as evidence. The response time may differ.
    same = previous.exercise_id == exercise_id and previous.hints_used == hints_used and (
        previous.answer == answer if answer is not None else previous.correct == correct
    )
    if not same:
        raise Conflict(
            f"client_response_id {client_id!r} was already used for a different answer "
            f"(exercise {previous.exercise_id!r})."
        )


def result_of(session: Session, response: Response) -> RecordedResponse:
    exercise = load_exercise(session, response.exercise_id) if response.exercise_id else None
    rules = mastery_rules()
    earned = dict(session.execute(select(Mastery.skill_id, Mastery.mastered_at).where(
        Mastery.student_id == response.student_id,
        Mastery.skill_id.in_([s.skill_id for s in response.skills]))).all())
    return RecordedResponse(
        id=response.id, exercise_id=response.exercise_id, correct=response.correct,
        graded_by=response.graded_by,
        correct_answer=exercise.answers[0] if exercise else "",
        client_response_id=response.client_response_id, created_at=response.created_at,
        recommendation_id=response.recommendation_id, hints_used=response.hints_used,
        solution=exercise.solution if exercise else (),
        skills=[
            SkillStep(s.skill_id, s.p_mastery_before, s.p_correct, s.p_mastery_after,
                      s.p_mastery_paced_after,
                      _was_mastered(s, earned.get(s.skill_id), response.created_at, rules),
                      s.estimate_before, s.estimate_after)
            for s in response.skills
        ],
    )


def _was_mastered(step: ResponseSkill, earned_at: datetime | None, answered_at: datetime,
                  rules: MasteryRules) -> bool:
    """The stored step's "mastered", as the answer said it: earned by then, and the estimate after it high
    enough (answers stored before estimates existed: the paced P(L))."""
    after = step.estimate_after if step.estimate_after is not None else (
        step.p_mastery_paced_after if step.p_mastery_paced_after is not None else step.p_mastery_after)
    return earned_at is not None and earned_at <= answered_at and after >= rules.review_level


# --- next exercise and progress ----------------------------------------------------------------


@dataclass(frozen=True)
class NextExercise:
    recommendation: Choice
    exercise: Exercise | None
    recommendation_id: int | None
    p_mastery: float | None  # standard BKT P(L) of the chosen skill
    p_mastery_paced: float | None = None  # paced P(L) of the chosen skill, as of the last answer


def _view(session: Session, student: Student, config: PolicyConfig) -> tuple[StudentView, int]:
    """What the policy may know about the student, and their latest response id (0 if none)."""
    model, _ = load_model(session, student)
    first_skill = (select(ResponseSkill.skill_id).where(ResponseSkill.response_id == Response.id)
                   .order_by(ResponseSkill.position).limit(1).scalar_subquery())
    recent = session.execute(
        select(Response.id, Response.exercise_id, Response.correct, Recommendation.reason, first_skill,
               Response.created_at)
        .outerjoin(Recommendation, Recommendation.id == Response.recommendation_id)
        .where(Response.student_id == student.id)
        .order_by(Response.id.desc())
        .limit(max(config.recent_window, 10))
    ).all()
    last_skill = last_reason = None
    if recent:
        # The reason behind the last ANSWERED recommendation drives interleaving, so asking
        # twice without answering gives the same exercise.
        last_reason, last_skill = recent[0][3], recent[0][4]
    n_responses = student.answer_count  # kept with every answer: no COUNT over the log
    return StudentView(
        model=model, now=utcnow(),
        recent_exercise_ids=[row[1] for row in recent if row[1] is not None],
        recent_correct=[row[2] for row in recent], n_responses=n_responses,
        last_skill_id=last_skill, last_reason=last_reason, personalized=student.personalized,
        recent_skill_ids=[row[4] for row in recent], recent_at=[row[5] for row in recent],
    ), (recent[0][0] if recent else 0)


def next_exercise(
    session: Session, principal: Principal, student_id: str, *, seed: int | None = None
) -> NextExercise:
    """The next exercise for a student, with the reason it was chosen (stored for later review).

    Without a seed the draw is seeded by the student and their latest response, so
    asking twice without answering gives the same exercise.
    """
    student = find_student(session, principal, student_id, Action.PRACTISE)
    snapshot = current_snapshot(session)
    config = policy_config()
    view, latest = _view(session, student, config)
    if seed is None:
        seed = random.Random(f"{student.id}:{latest}").getrandbits(63)
    choice = choose_next_exercise(snapshot.graph, snapshot.params, view, config, seed)
    stored = _store_recommendation(session, student.id, choice)
    exercise = snapshot.graph.exercises[choice.exercise_id] if choice.exercise_id else None
    state = view.model.skills.get(choice.skill_id) if choice.skill_id else None
    p_mastery = state.p_mastery if state else (
        snapshot.params[choice.skill_id].prior if choice.skill_id else None)
    paced = view.model.paced(choice.skill_id, snapshot.params[choice.skill_id]) if choice.skill_id else None
    return NextExercise(choice, exercise, stored, p_mastery, paced)


def _store_recommendation(session: Session, student_id: str, choice: Choice) -> int:
    latest = session.execute(
        select(Recommendation.id, Recommendation.exercise_id, Recommendation.reason,
               _answered(Recommendation.id))
        .where(Recommendation.student_id == student_id).order_by(Recommendation.id.desc()).limit(1)).first()
    if (latest is not None and latest[1] == choice.exercise_id and latest[2] == choice.reason
            and not latest[3]):
        return int(latest[0])  # the same unanswered recommendation, served again
    row = Recommendation(student_id=student_id, exercise_id=choice.exercise_id, skill_id=choice.skill_id,
                         policy=choice.policy, reason=choice.reason, explanation=choice.explanation,
                         details=choice.details)
    session.add(row)
    session.commit()
    return int(row.id)


def recommendation_history(
    session: Session, principal: Principal, student_id: str, limit: int = 50
) -> list[dict[str, Any]]:
    """The latest recommendations served to a student, with the answer that followed (if any)."""
    student = get_student(session, principal, student_id)
    history = recommendations_of(session, student.id, limit)
    record_access(session, principal, [student.id], "recommendations")
    session.commit()
    return history


def recommendations_of(session: Session, student_id: str, limit: int) -> list[dict[str, Any]]:
    """The student's latest recommendations, newest first (a read for a service that logs it)."""
    rows = session.execute(
        select(Recommendation, Response.id, Response.correct)
        .outerjoin(Response, Response.recommendation_id == Recommendation.id)
        .where(Recommendation.student_id == student_id)
        .order_by(Recommendation.id.desc()).limit(limit)
    ).all()
    return [{
        "id": rec.id, "created_at": rec.created_at, "exercise_id": rec.exercise_id, "skill_id": rec.skill_id,
        "policy": rec.policy, "reason": rec.reason, "explanation": rec.explanation, "details": rec.details,
        "response_id": response_id, "correct": correct,
    } for rec, response_id, correct in rows]


def set_personalization(
    session: Session, principal: Principal, student_id: str, *, enabled: bool
) -> Student:
    """Switch personalization on or off (off: fixed curriculum order); records when and by whom."""
    student = find_student(session, principal, student_id, Action.SET_PERSONALIZATION, lock=True)
    if student.personalized != enabled:
        now = utcnow()
        student.personalized = enabled
        student.personalization_changed_at = now
        student.personalization_changed_by = principal.actor
        session.add(ConsentEvent(student_id=student.id, kind="personalization", granted=enabled,
                                 actor=principal.actor, created_at=now))
    session.commit()
    return student


@dataclass(frozen=True)
class SkillProgress:
    skill_id: str
    name: str
    p_mastery: float  # standard BKT P(L), as pyBKT computes it
    p_mastery_paced: float  # P(L) with the student's pace and prior knowledge, as of the last answer
    mastery: float  # the mastery estimate now (paced P(L) x recall): what decides and is shown
    status: MasteryStatus
    p_correct: float
    attempts: int
    correct_count: int
    mastered: bool  # status is "mastered"
    mastered_at: datetime | None  # first earned
    last_practiced_at: datetime | None
    recall: float | None  # predicted recall of an earned skill now (None before it is earned)
    review_due: bool  # earned, and due for review or needing relearning


@dataclass(frozen=True)
class Progress:
    speed: float
    prior_knowledge: float
    min_correct: int
    personalized: bool
    skills: list[SkillProgress]


def progress(session: Session, principal: Principal, student_id: str) -> Progress:
    """Mastery of every practicable skill (and any other the student has answers on), in prerequisite order.

    Skills known only from imported logs have no exercises; they are listed only for
    students who have answers on them.
    """
    student = get_student(session, principal, student_id)
    record_access(session, principal, [student.id], "progress")  # committed with the read, below
    snapshot = current_snapshot(session)
    rules = mastery_rules()
    model, _ = load_model(session, student)
    now = utcnow()
    out = []
    for skill_id in snapshot.graph.skill_order:
        state = model.skills.get(skill_id)
        if state is None and not snapshot.graph.exercises_by_skill.get(skill_id):
            continue
        params = snapshot.params[skill_id]
        estimate = model.estimate(skill_id, params, now, rules)
        status = status_of(state, estimate, rules)
        earned = state is not None and state.mastered_at is not None
        out.append(SkillProgress(
            skill_id=skill_id, name=snapshot.graph.skills[skill_id].name,
            p_mastery=state.p_mastery if state else params.prior,
            p_mastery_paced=model.paced(skill_id, params), mastery=estimate, status=status,
            p_correct=model.paced_correct(skill_id, params, now, rules),
            attempts=state.attempts if state else 0, correct_count=state.correct_count if state else 0,
            mastered=status is MasteryStatus.MASTERED, mastered_at=state.mastered_at if state else None,
            last_practiced_at=state.last_practiced_at if state else None,
            recall=model.recall(skill_id, now, rules) if earned else None,
            review_due=status in (MasteryStatus.DUE_FOR_REVIEW, MasteryStatus.NEEDS_RELEARNING),
        ))
    session.commit()
    return Progress(speed=model.speed, prior_knowledge=model.prior_knowledge, min_correct=rules.min_correct,
                    personalized=student.personalized, skills=out)
