"""Classes as their teachers, admins and apps see them: who is in them and how far each has got."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.access import Principal
from app.domain.tracking import MasteryStatus, estimate_of, status_from
from app.models import ClassMembership, Mastery, SchoolClass, StaffUser, Student, utcnow
from app.services.people.access import class_scope, find_class, record_access, visible_classes
from app.services.tutoring.config import mastery_rules
from app.services.tutoring.student_models import by_hypothesis, memory_of, weights_of


@dataclass(frozen=True)
class ClassMember:
    id: str
    external_id: str
    attempts: int
    skills_mastered: int
    last_active_at: datetime | None


@dataclass(frozen=True)
class ClassSummary:
    id: int
    name: str
    teacher: str
    join_code: str
    student_count: int
    created_at: datetime
    students: list[ClassMember] = field(default_factory=list)


def class_summaries(session: Session, principal: Principal) -> list[ClassSummary]:
    classes = visible_classes(session, principal)
    counts = dict(
        session.execute(
            select(ClassMembership.class_id, func.count())
            .join(SchoolClass, SchoolClass.id == ClassMembership.class_id)
            .where(class_scope(principal))
            .group_by(ClassMembership.class_id)
        ).all()
    )
    teachers = dict(
        session.execute(
            select(StaffUser.id, StaffUser.name).where(StaffUser.id.in_({c.teacher_id for c in classes}))
        ).all()
    )
    return [
        ClassSummary(c.id, c.name, teachers[c.teacher_id], c.join_code, counts.get(c.id, 0), c.created_at)
        for c in classes
    ]


def _mastered_now(session: Session, members: list[Student]) -> dict[str, int]:
    """Skills each student has mastered now (earned, and the estimate still at the review level): the count
    the class report, its CSV and the pages show. Only earned skills are read."""
    rules, now = mastery_rules(), utcnow()
    weights = {s.id: weights_of(s.speed_weights) for s in members}
    table = Mastery.__table__
    counts: dict[str, int] = {}
    for start in range(0, len(members), 500):
        chunk = [s.id for s in members[start : start + 500]]
        for row in session.execute(
            select(
                table.c.student_id,
                table.c.p_by_speed,
                table.c.attempts,
                table.c.memory_stability,
                table.c.memory_difficulty,
                table.c.memory_reviewed_at,
                table.c.memory_reviews,
                table.c.memory_lapses,
            ).where(table.c.student_id.in_(chunk), table.c.mastered_at.is_not(None))
        ):
            level = estimate_of(
                weights[row.student_id], by_hypothesis(list(row.p_by_speed)), memory_of(row), now, rules
            )
            if status_from(row.attempts, True, level, rules) is MasteryStatus.MASTERED:
                counts[row.student_id] = counts.get(row.student_id, 0) + 1
    return counts


def class_detail(session: Session, principal: Principal, class_id: int) -> ClassSummary:
    klass = find_class(session, principal, class_id)
    teacher = session.get(StaffUser, klass.teacher_id)
    members = list(
        session.scalars(
            select(Student)
            .join(ClassMembership, ClassMembership.student_id == Student.id)
            .where(ClassMembership.class_id == klass.id)
            .order_by(Student.external_id)
        )
    )
    ids = [s.id for s in members]
    record_access(session, principal, ids, "class roster")
    mastered = _mastered_now(session, members)
    # The counters kept with every answer (purged answers included), as the class report and its CSV count.
    students = [
        ClassMember(s.id, s.external_id, s.answer_count, mastered.get(s.id, 0), s.last_answer_at)
        for s in members
    ]
    session.commit()  # the access-log rows, recorded above
    return ClassSummary(
        klass.id,
        klass.name,
        teacher.name if teacher else "",
        klass.join_code,
        len(students),
        klass.created_at,
        students,
    )
