"""The one place that decides which students and classes a caller can see.

Every read or write of a student or a class goes through a query scoped by the
principal, so a view cannot forget a check: someone else's student is simply not
found (404), exactly like a student that does not exist. Whether the caller's
role may attempt the action at all (403) is ``app.domain.access.ensure_allowed``.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, false, insert, select
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, Role, ensure_allowed
from app.domain.errors import UnknownClass, UnknownStudent
from app.models import AccessLogEntry, ClassMembership, SchoolClass, Student, utcnow


def _taught_by(teacher_id: int) -> ColumnElement[bool]:
    taught = (
        select(ClassMembership.student_id)
        .join(SchoolClass, SchoolClass.id == ClassMembership.class_id)
        .where(SchoolClass.teacher_id == teacher_id, SchoolClass.archived_at.is_(None))
    )
    return Student.id.in_(taught)


def student_scope(principal: Principal) -> ColumnElement[bool]:
    """The students ``principal`` may see, as a WHERE clause on Student."""
    if principal.role is Role.STUDENT:
        return Student.id == principal.id
    in_school = Student.school_id == principal.school_id
    if principal.role in (Role.APP, Role.ADMIN):
        return in_school
    if principal.role is Role.TEACHER:
        return in_school & _taught_by(int(principal.id))
    return false()


def class_scope(principal: Principal) -> ColumnElement[bool]:
    """The classes ``principal`` may see, as a WHERE clause on SchoolClass. An archived class: nobody (the
    admins' school pages, ``services/people/school_admin.py``, list it)."""
    in_school = (SchoolClass.school_id == principal.school_id) & SchoolClass.archived_at.is_(None)
    if principal.role in (Role.APP, Role.ADMIN):
        return in_school
    if principal.role is Role.TEACHER:
        return in_school & (SchoolClass.teacher_id == int(principal.id))
    return false()


def find_student(
    session: Session,
    principal: Principal,
    student_id: str,
    action: Action,
    *,
    lock: bool = False,
) -> Student:
    """The student, if ``principal`` may do ``action`` on them; else Forbidden or UnknownStudent.

    A lookup: it reads, and never writes or commits. A service that reads a student's data for someone
    else records that with ``record_access``, once per call, in its own transaction.
    """
    ensure_allowed(principal, action)
    query = select(Student).where(Student.id == student_id, student_scope(principal))
    if lock:
        # PostgreSQL: serialise answers of one student. SQLite: BEGIN IMMEDIATE already does.
        # populate_existing: a copy already in the session (read before the lock) would be stale.
        query = query.with_for_update(of=Student).execution_options(populate_existing=True)
    found: Student | None = session.scalar(query)
    if found is None:
        raise UnknownStudent(student_id)
    return found


def record_access(session: Session, principal: Principal, student_ids: list[str], what: str) -> None:
    """Log that ``principal`` read these students' data (not when students read their own).

    In the caller's transaction: the service that read the data calls this once and commits once, so a page
    or an API call that reads a student is one row, and a request that fails leaves none.
    """
    if principal.role is Role.STUDENT or not student_ids:
        return
    now = utcnow()
    session.execute(
        insert(AccessLogEntry),
        [
            {
                "student_id": sid,
                "actor": principal.actor,
                "actor_name": principal.name,
                "what": what,
                "created_at": now,
            }
            for sid in student_ids
        ],
    )


def find_class(session: Session, principal: Principal, class_id: int) -> SchoolClass:
    ensure_allowed(principal, Action.READ_CLASS)
    found: SchoolClass | None = session.scalar(
        select(SchoolClass).where(SchoolClass.id == class_id, class_scope(principal))
    )
    if found is None:
        raise UnknownClass(str(class_id))
    return found


def visible_classes(session: Session, principal: Principal) -> list[SchoolClass]:
    ensure_allowed(principal, Action.READ_CLASS)
    return list(
        session.scalars(
            select(SchoolClass).where(class_scope(principal)).order_by(SchoolClass.name, SchoolClass.id)
        )
    )
