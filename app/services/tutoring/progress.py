"""Where the student stands per skill: the mastery estimate, its status and review, in prerequisite order."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.domain.access import Principal
from app.domain.reports import judged_speed, speed_reason
from app.domain.tracking import MasteryStatus, status_of
from app.models import utcnow
from app.services.people.access import record_access
from app.services.tutoring.config import mastery_rules
from app.services.tutoring.content import current_snapshot
from app.services.tutoring.student_models import load_model
from app.services.tutoring.students import get_student
from app.settings import current_settings


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
    speed: float | None  # None until there are enough answers to tell the student's pace
    prior_knowledge: float | None  # ... and so is how much they knew to begin with
    min_correct: int
    personalized: bool
    answers: int  # answers recorded (an answer to an exercise of two skills counts once)
    skills: list[SkillProgress]

    @property
    def speed_reason(self) -> str | None:
        return speed_reason(self.speed)


def progress(session: Session, principal: Principal, student_id: str) -> Progress:
    """Mastery of every practicable skill (and any other the student has answers on), in prerequisite order.

    Skills known only from imported logs have no exercises; they are listed only for
    students who have answers on them.
    """
    student = get_student(session, principal, student_id)
    record_access(session, principal, [student.id], "progress")  # committed with the read, below
    snapshot = current_snapshot(session)
    rules = mastery_rules()
    model, _ = load_model(session, student, snapshot, rules)  # a student behind: as replayed
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
        out.append(
            SkillProgress(
                skill_id=skill_id,
                name=snapshot.graph.skills[skill_id].name,
                p_mastery=state.p_mastery if state else params.prior,
                p_mastery_paced=model.paced(skill_id, params),
                mastery=estimate,
                status=status,
                p_correct=model.paced_correct(skill_id, params, now, rules),
                attempts=state.attempts if state else 0,
                correct_count=state.correct_count if state else 0,
                mastered=status is MasteryStatus.MASTERED,
                mastered_at=state.mastered_at if state else None,
                last_practiced_at=state.last_practiced_at if state else None,
                recall=model.recall(skill_id, now, rules) if earned else None,
                review_due=status in (MasteryStatus.DUE_FOR_REVIEW, MasteryStatus.NEEDS_RELEARNING),
            )
        )
    session.commit()
    speed = judged_speed(model.speed, student.answer_count, current_settings().reports)
    return Progress(
        speed=speed,
        prior_knowledge=None if speed is None else model.prior_knowledge,
        min_correct=rules.min_correct,
        personalized=student.personalized,
        answers=student.answer_count,
        skills=out,
    )
