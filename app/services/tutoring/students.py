"""Student rows: made here (``add_students``, for the API, enrollment and log imports), looked up, and
personalization switched on or off.

A student the caller may not see is indistinguishable from one that does not exist
(``app.services.people.access``).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, Role, ensure_allowed
from app.models import ConsentEvent, Student, utcnow
from app.services.people.access import find_student, record_access


def get_or_create_student(session: Session, principal: Principal, external_id: str) -> tuple[Student, bool]:
    """The school's student with this external id, created if new. Returns (student, created)."""
    ensure_allowed(principal, Action.CREATE_STUDENT)
    query = select(Student).where(
        Student.school_id == principal.school_id, Student.external_id == external_id
    )
    student = session.scalar(query)
    if student is not None:
        return student, False
    created_by = int(principal.id) if principal.role is Role.APP else None
    try:
        student = add_students(session, principal.school_id, [external_id], app_id=created_by)[0]
        session.commit()
    except IntegrityError:
        # Two concurrent first requests for the same student: the other one won.
        session.rollback()
        existing = session.scalar(query)
        if existing is None:
            raise
        return existing, False
    return student, True


def add_students(
    session: Session, school_id: int, external_ids: Iterable[str], *, app_id: int | None = None
) -> list[Student]:
    """New student rows, flushed so they have ids (the one place student rows are made: the API, enrollment
    and log imports all come here). The caller checks access and commits."""
    students = [Student(school_id=school_id, app_id=app_id, external_id=e) for e in external_ids]
    session.add_all(students)
    session.flush()
    return students


def get_student(session: Session, principal: Principal, student_id: str) -> Student:
    """The student whose data ``principal`` wants to read (a lookup: it records nothing)."""
    return find_student(session, principal, student_id, Action.READ_STUDENT)


def student_profile(session: Session, principal: Principal, student_id: str) -> Student:
    """The student's profile, the read logged for anyone but the student."""
    student = get_student(session, principal, student_id)
    record_access(session, principal, [student.id], "profile")
    session.commit()
    return student


def set_personalization(session: Session, principal: Principal, student_id: str, *, enabled: bool) -> Student:
    """Switch personalization on or off (off: fixed curriculum order); records when and by whom."""
    student = find_student(session, principal, student_id, Action.SET_PERSONALIZATION, lock=True)
    if student.personalized != enabled:
        now = utcnow()
        student.personalized = enabled
        student.personalization_changed_at = now
        student.personalization_changed_by = principal.actor
        session.add(
            ConsentEvent(
                student_id=student.id,
                kind="personalization",
                granted=enabled,
                actor=principal.actor,
                created_at=now,
            )
        )
    session.commit()
    return student
