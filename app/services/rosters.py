"""Classes as their teachers, admins and apps see them: who is in them and how far each has got."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.access import Principal
from app.models import ClassMembership, Mastery, Response, SchoolClass, StaffUser, Student
from app.services.access import class_scope, find_class, record_access, visible_classes


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
    counts = dict(session.execute(
        select(ClassMembership.class_id, func.count())
        .join(SchoolClass, SchoolClass.id == ClassMembership.class_id)
        .where(class_scope(principal)).group_by(ClassMembership.class_id)).all())
    teachers = dict(session.execute(
        select(StaffUser.id, StaffUser.name).where(StaffUser.id.in_({c.teacher_id for c in classes}))).all())
    return [ClassSummary(c.id, c.name, teachers[c.teacher_id], c.join_code, counts.get(c.id, 0), c.created_at)
            for c in classes]


def class_detail(session: Session, principal: Principal, class_id: int) -> ClassSummary:
    klass = find_class(session, principal, class_id)
    teacher = session.get(StaffUser, klass.teacher_id)
    members = list(session.scalars(
        select(Student).join(ClassMembership, ClassMembership.student_id == Student.id)
        .where(ClassMembership.class_id == klass.id).order_by(Student.external_id)))
    ids = [s.id for s in members]
    record_access(session, principal, ids, "class roster")
    answers = {sid: (n, last) for sid, n, last in session.execute(
        select(Response.student_id, func.count(), func.max(Response.created_at))
        .where(Response.student_id.in_(ids)).group_by(Response.student_id)).all()}
    mastered = dict(session.execute(
        select(Mastery.student_id, func.count())
        .where(Mastery.student_id.in_(ids), Mastery.mastered_at.is_not(None))
        .group_by(Mastery.student_id)).all())
    students = [ClassMember(s.id, s.external_id, answers.get(s.id, (0, None))[0], mastered.get(s.id, 0),
                            answers.get(s.id, (0, None))[1]) for s in members]
    session.commit()  # the access-log rows, recorded above
    return ClassSummary(klass.id, klass.name, teacher.name if teacher else "", klass.join_code,
                        len(students), klass.created_at, students)
