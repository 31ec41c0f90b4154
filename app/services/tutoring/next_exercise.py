"""Choosing the next exercise (``domain.selection.choose_next_exercise``) and storing why: the one writer
of ``recommendations``; and the history of what was recommended."""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal
from app.domain.content import Exercise, focused
from app.domain.selection import PolicyConfig, StudentView, choose_next_exercise
from app.domain.selection import Recommendation as Choice
from app.models import Recommendation, Response, ResponseSkill, Student, utcnow
from app.observability.metrics import NEXT_EXERCISES
from app.services.people.access import find_student, record_access
from app.services.tutoring.config import policy_config
from app.services.tutoring.content import ContentSnapshot, current_snapshot
from app.services.tutoring.student_models import load_model
from app.services.tutoring.students import get_student


@dataclass(frozen=True)
class NextExercise:
    recommendation: Choice
    exercise: Exercise | None
    recommendation_id: int | None
    p_mastery: float | None  # standard BKT P(L) of the chosen skill
    p_mastery_paced: float | None = None  # paced P(L) of the chosen skill, as of the last answer


def _view(
    session: Session, student: Student, config: PolicyConfig, snapshot: ContentSnapshot
) -> tuple[StudentView, int]:
    """What the policy may know about the student, and their latest response id (0 if none)."""
    model, _ = load_model(session, student, snapshot, config.rules)  # a student behind: as replayed
    first_skill = (
        select(ResponseSkill.skill_id)
        .where(ResponseSkill.response_id == Response.id)
        .order_by(ResponseSkill.position)
        .limit(1)
        .scalar_subquery()
    )
    recent = session.execute(
        select(
            Response.id,
            Response.exercise_id,
            Response.correct,
            Recommendation.reason,
            first_skill,
            Response.created_at,
        )
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
        model=model,
        now=utcnow(),
        recent_exercise_ids=[row[1] for row in recent if row[1] is not None],
        recent_correct=[row[2] for row in recent],
        n_responses=n_responses,
        last_skill_id=last_skill,
        last_reason=last_reason,
        personalized=student.personalized,
        recent_skill_ids=[row[4] for row in recent],
        recent_at=[row[5] for row in recent],
    ), (recent[0][0] if recent else 0)


def next_exercise(
    session: Session,
    principal: Principal,
    student_id: str,
    *,
    seed: int | None = None,
    focus: Collection[str] | None = None,
) -> NextExercise:
    """The next exercise for a student, with the reason it was chosen (stored for later review).

    Without a seed the draw is seeded by the student and their latest response, so
    asking twice without answering gives the same exercise. ``focus``: choose among these skills and their
    prerequisites only (what an LMS course's link practises).
    """
    student = find_student(session, principal, student_id, Action.PRACTISE)
    snapshot = current_snapshot(session)
    config = policy_config()
    view, latest = _view(session, student, config, snapshot)
    if seed is None:
        seed = random.Random(f"{student.id}:{latest}").getrandbits(63)
    graph = focused(snapshot.graph, focus) if focus else snapshot.graph
    choice = choose_next_exercise(graph, snapshot.params, view, config, seed)
    stored = _store_recommendation(session, student.id, choice)
    NEXT_EXERCISES.labels(choice.reason).inc()
    exercise = snapshot.graph.exercises[choice.exercise_id] if choice.exercise_id else None
    state = view.model.skills.get(choice.skill_id) if choice.skill_id else None
    p_mastery = (
        state.p_mastery if state else (snapshot.params[choice.skill_id].prior if choice.skill_id else None)
    )
    paced = view.model.paced(choice.skill_id, snapshot.params[choice.skill_id]) if choice.skill_id else None
    return NextExercise(choice, exercise, stored, p_mastery, paced)


def _store_recommendation(session: Session, student_id: str, choice: Choice) -> int:
    latest = session.execute(
        select(
            Recommendation.id, Recommendation.exercise_id, Recommendation.reason, answered(Recommendation.id)
        )
        .where(Recommendation.student_id == student_id)
        .order_by(Recommendation.id.desc())
        .limit(1)
    ).first()
    if (
        latest is not None
        and latest[1] == choice.exercise_id
        and latest[2] == choice.reason
        and not latest[3]
    ):
        return int(latest[0])  # the same unanswered recommendation, served again
    row = Recommendation(
        student_id=student_id,
        exercise_id=choice.exercise_id,
        skill_id=choice.skill_id,
        policy=choice.policy,
        reason=choice.reason,
        explanation=choice.explanation,
        details=choice.details,
    )
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
        .order_by(Recommendation.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "id": rec.id,
            "created_at": rec.created_at,
            "exercise_id": rec.exercise_id,
            "skill_id": rec.skill_id,
            "policy": rec.policy,
            "reason": rec.reason,
            "explanation": rec.explanation,
            "details": rec.details,
            "response_id": response_id,
            "correct": correct,
        }
        for rec, response_id, correct in rows
    ]


def answered(recommendation_id: Any) -> Any:
    """SQL: whether an answer followed this recommendation (indexed lookup)."""
    return select(Response.id).where(Response.recommendation_id == recommendation_id).exists()
