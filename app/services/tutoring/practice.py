"""The web practice loop for a signed-in student: the exercise, hints on request, an answer, its result.

Answers go through ``answers.record_response`` like the API's, with ``web-<recommendation id>`` as the
client response id: a double click, a refresh or the back button can never record an answer twice.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal
from app.domain.content import Exercise
from app.domain.errors import Conflict, NotFound
from app.domain.grading import Answer, answer_of, readable_answer
from app.domain.wording import Change, answer_changes, input_mode
from app.models import Recommendation, Response
from app.services.people.access import find_student
from app.services.tutoring.answers import RecordedResponse, record_response, result_of
from app.services.tutoring.content import current_snapshot, load_exercise
from app.services.tutoring.next_exercise import NextExercise, next_exercise


class UnknownRecommendation(NotFound):
    kind = "exercise suggestion"


class UnknownAnswer(NotFound):
    kind = "answer"


@dataclass(frozen=True)
class PracticeItem:
    """What the practice page shows: the exercise, why it was chosen, and the hints revealed so far."""

    next: NextExercise
    hints: list[str]  # revealed so far
    hints_left: int
    input_mode: str = "text"  # the phone keyboard for the answer box (a fraction or a minus needs "text")


def current_item(
    session: Session, principal: Principal, *, focus: Collection[str] | None = None
) -> PracticeItem:
    """The exercise to practise now (``focus``: among these skills, as ``next_exercise``)."""
    chosen = next_exercise(session, principal, principal.id, focus=focus)
    shown = 0
    if chosen.recommendation_id is not None:
        shown = (
            session.scalar(
                select(Recommendation.hints_shown).where(Recommendation.id == chosen.recommendation_id)
            )
            or 0
        )
    hints = list(chosen.exercise.hints) if chosen.exercise else []
    return PracticeItem(
        chosen,
        hints[:shown],
        max(len(hints) - shown, 0),
        input_mode(chosen.exercise) if chosen.exercise else "text",
    )


def _own_recommendation(session: Session, principal: Principal, recommendation_id: int) -> Recommendation:
    student = find_student(session, principal, principal.id, Action.PRACTISE, lock=True)
    rec: Recommendation | None = session.scalar(
        select(Recommendation).where(
            Recommendation.id == recommendation_id, Recommendation.student_id == student.id
        )
    )
    if rec is None or rec.exercise_id is None:
        raise UnknownRecommendation(str(recommendation_id))
    return rec


def reveal_hint(session: Session, principal: Principal, recommendation_id: int) -> int:
    """Show one more hint of the recommended exercise (recorded: the answer will carry it). Commits."""
    rec = _own_recommendation(session, principal, recommendation_id)
    exercise = load_exercise(session, rec.exercise_id or "")
    answered = session.scalar(select(Response.id).where(Response.recommendation_id == rec.id).limit(1))
    if exercise is not None and answered is None and rec.hints_shown < len(exercise.hints):
        rec.hints_shown += 1
    shown = rec.hints_shown
    session.commit()
    return shown


def answer(
    session: Session, principal: Principal, recommendation_id: int, text: Answer
) -> tuple[RecordedResponse, bool]:
    """Grade and record the answer to a recommended exercise.

    A repeat (double click, back button, another tab) returns the first result, even with another
    answer: an exercise counts once, as first answered.
    """
    rec = _own_recommendation(session, principal, recommendation_id)
    client_id = f"web-{rec.id}"
    try:
        # A repeat of the same answer comes back as the first result from here.
        return record_response(
            session,
            principal,
            principal.id,
            exercise_id=rec.exercise_id or "",
            answer=text,
            client_response_id=client_id,
            hints_used=rec.hints_shown,
        )
    except Conflict:  # the same exercise again, with another answer
        session.rollback()
        first = session.scalar(
            select(Response).where(
                Response.student_id == rec.student_id, Response.client_response_id == client_id
            )
        )
        assert first is not None  # the conflict was with it
        return result_of(session, first), False


@dataclass(frozen=True)
class AnswerResult:
    result: RecordedResponse
    exercise: Exercise | None
    answer: str | None
    skill_names: dict[str, str]
    # Each skill's mastery estimate before -> after, with a note where the direction could puzzle.
    changes: list[Change]


def answer_result(session: Session, principal: Principal, response_id: int) -> AnswerResult:
    student = find_student(session, principal, principal.id, Action.PRACTISE)
    response: Response | None = session.scalar(
        select(Response).where(Response.id == response_id, Response.student_id == student.id)
    )
    if response is None:
        raise UnknownAnswer(str(response_id))
    snapshot = current_snapshot(session)
    names = {
        s: snapshot.graph.skills[s].name
        for s in [step.skill_id for step in response.skills]
        if s in snapshot.graph.skills
    }
    exercise = load_exercise(session, response.exercise_id) if response.exercise_id else None
    result = result_of(session, response)
    # Answers stored before estimates were kept: the paced P(L) after them (never standard P(L)).
    fallback = {
        s.skill_id: s.p_mastery_after if s.p_mastery_paced_after is None else s.p_mastery_paced_after
        for s in result.skills
    }
    changes = answer_changes(
        result.skills, names, correct=result.correct, hints_used=result.hints_used, fallback_after=fallback
    )
    # As the student reads it: "A, C" for a selection, "1. a; 2. b" for an order (stored as JSON).
    given = (
        None if response.answer is None else readable_answer(exercise, answer_of(exercise, response.answer))
    )
    return AnswerResult(result, exercise, given, names, changes)
