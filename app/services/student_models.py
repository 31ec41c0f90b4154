"""Loading and storing the domain ``StudentModel`` (student row + mastery rows)."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from app.domain.tracking import SPEED_PRIOR, SkillState, StudentModel
from app.models import Mastery, Response, Student, StudentBaseline


def state_of(row: Mastery) -> SkillState:
    return SkillState(
        p_mastery=row.p_mastery, p_by_speed=list(row.p_by_speed), attempts=row.attempts,
        correct_count=row.correct_count, mastered_at=row.mastered_at,
        attempts_at_mastery=row.attempts_at_mastery, last_practiced_at=row.updated_at,
        review_successes=row.review_successes,
    )


def row_values(state: SkillState) -> dict[str, Any]:
    """Mastery columns for a skill state (everything but the keys and parameters_id)."""
    return {
        "p_mastery": state.p_mastery, "p_by_speed": list(state.p_by_speed), "attempts": state.attempts,
        "correct_count": state.correct_count, "mastered_at": state.mastered_at,
        "attempts_at_mastery": state.attempts_at_mastery, "updated_at": state.last_practiced_at,
        "review_successes": state.review_successes,
    }


def refresh_answer_counts(session: Session, student_ids: Collection[str]) -> None:
    """Recount ``answer_count`` and ``last_answer_at`` of these students from the log (and what was
    folded into their baseline when old answers were purged)."""
    folded = select(StudentBaseline.answer_count).where(StudentBaseline.student_id == Student.id)
    folded_last = select(StudentBaseline.last_answer_at).where(StudentBaseline.student_id == Student.id)
    answers = (select(func.count()).where(Response.student_id == Student.id).scalar_subquery()
               + func.coalesce(folded.scalar_subquery(), 0))
    last = func.coalesce(
        select(func.max(Response.created_at)).where(Response.student_id == Student.id).scalar_subquery(),
        folded_last.scalar_subquery())
    ids = list(student_ids)
    for start in range(0, len(ids), 500):
        session.execute(update(Student).where(Student.id.in_(ids[start:start + 500]))
                        .values(answer_count=answers, last_answer_at=last))


def load_model(
    session: Session, student: Student, skill_ids: Collection[str] | None = None
) -> tuple[StudentModel, dict[str, Mastery]]:
    """The student's model (all skills, or only ``skill_ids``) and the rows it came from."""
    query = select(Mastery).where(Mastery.student_id == student.id)
    if skill_ids is not None:
        query = query.where(Mastery.skill_id.in_(list(skill_ids)))
    rows = {m.skill_id: m for m in session.scalars(query)}
    model = StudentModel(
        speed_weights=list(student.speed_weights or SPEED_PRIOR),
        skills={skill_id: state_of(row) for skill_id, row in rows.items()},
    )
    return model, rows
