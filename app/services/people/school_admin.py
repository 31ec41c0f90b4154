"""A school's administration as its admins do it from the web: teachers (add, deactivate, a new password,
admin or not), classes (create, give to another teacher, archive), rosters (a CSV previewed, then enrolled),
new class and personal codes. The CLI's services underneath (``accounts``), so both agree.

Every change is recorded in ``admin_changes`` (``record_change``, its one writer) in the transaction that
makes it: one commit, or nothing written and nothing recorded. An admin reaches only their own school: a
teacher or class of another school is not found (404), exactly as one that does not exist.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from app.domain.access import Action, Principal, Role, ensure_allowed
from app.domain.errors import Conflict, UnknownClass
from app.models import (
    AdminChange,
    ClassMembership,
    SchoolClass,
    StaffUser,
    Student,
    StudentCredential,
    utcnow,
)
from app.services.people import accounts
from app.services.people.accounts import AccountError, UnknownStaffUser

CHANGES_SHOWN = 200


def record_change(session: Session, by: Principal, action: str, subject: str, detail: str = "") -> None:
    """Record that admin ``by`` changed something, in the caller's transaction (the caller commits)."""
    session.execute(
        insert(AdminChange).values(
            school_id=by.school_id,
            actor=by.actor,
            actor_name=by.name,
            action=action,
            subject=subject[:300],
            detail=detail[:500],
            created_at=utcnow(),
        )
    )


# --- what the pages list ---------------------------------------------------------------------------


@dataclass(frozen=True)
class StaffRow:
    id: int
    name: str
    email: str
    role: str
    active: bool
    last_login_at: datetime | None
    classes: int  # open classes they teach


@dataclass(frozen=True)
class ClassRow:
    id: int
    name: str
    teacher_id: int
    teacher: str
    teacher_active: bool
    join_code: str
    students: int
    archived_at: datetime | None


def school_staff(session: Session, by: Principal) -> list[StaffRow]:
    """The school's teachers and admins, active first, by name."""
    ensure_allowed(by, Action.MANAGE_SCHOOL)
    classes = dict(
        session.execute(
            select(SchoolClass.teacher_id, func.count())
            .where(SchoolClass.school_id == by.school_id, SchoolClass.archived_at.is_(None))
            .group_by(SchoolClass.teacher_id)
        ).all()
    )
    users = session.scalars(
        select(StaffUser)
        .where(StaffUser.school_id == by.school_id)
        .order_by(StaffUser.deactivated_at.is_not(None), StaffUser.name, StaffUser.id)
    )
    return [
        StaffRow(
            u.id, u.name, u.email, u.role, u.deactivated_at is None, u.last_login_at, classes.get(u.id, 0)
        )
        for u in users
    ]


def school_classes(session: Session, by: Principal) -> list[ClassRow]:
    """Every class of the school, the archived ones last."""
    ensure_allowed(by, Action.MANAGE_SCHOOL)
    counts = dict(
        session.execute(
            select(ClassMembership.class_id, func.count())
            .join(SchoolClass, SchoolClass.id == ClassMembership.class_id)
            .where(SchoolClass.school_id == by.school_id)
            .group_by(ClassMembership.class_id)
        ).all()
    )
    rows = session.execute(
        select(SchoolClass, StaffUser.name, StaffUser.deactivated_at)
        .join(StaffUser, StaffUser.id == SchoolClass.teacher_id)
        .where(SchoolClass.school_id == by.school_id)
        .order_by(SchoolClass.archived_at.is_not(None), SchoolClass.name, SchoolClass.id)
    ).all()
    return [
        ClassRow(
            c.id, c.name, c.teacher_id, name, gone is None, c.join_code, counts.get(c.id, 0), c.archived_at
        )
        for c, name, gone in rows
    ]


def recent_changes(session: Session, by: Principal, limit: int = CHANGES_SHOWN) -> list[AdminChange]:
    """The school's latest changes, newest first."""
    ensure_allowed(by, Action.MANAGE_SCHOOL)
    return list(
        session.scalars(
            select(AdminChange)
            .where(AdminChange.school_id == by.school_id)
            .order_by(AdminChange.id.desc())
            .limit(limit)
        )
    )


def _staff(session: Session, by: Principal, staff_id: int) -> StaffUser:
    ensure_allowed(by, Action.MANAGE_SCHOOL)
    user: StaffUser | None = session.scalar(
        select(StaffUser).where(StaffUser.id == staff_id, StaffUser.school_id == by.school_id)
    )
    if user is None:
        raise UnknownStaffUser(str(staff_id))
    return user


def _class(session: Session, by: Principal, class_id: int, *, open_only: bool = True) -> SchoolClass:
    ensure_allowed(by, Action.MANAGE_SCHOOL)
    klass: SchoolClass | None = session.scalar(
        select(SchoolClass).where(SchoolClass.id == class_id, SchoolClass.school_id == by.school_id)
    )
    if klass is None:
        raise UnknownClass(str(class_id))
    if open_only and klass.archived_at is not None:
        raise AccountError(f"the class {klass.name!r} is archived")
    return klass


def open_class(session: Session, by: Principal, class_id: int) -> SchoolClass:
    """An open class of the admin's school (a lookup: UnknownClass, or AccountError when archived)."""
    return _class(session, by, class_id)


def _not_yourself(by: Principal, user: StaffUser, what: str) -> None:
    if str(user.id) == by.id:
        raise AccountError(f"you cannot {what} yourself: ask another admin of your school")


def _label(user: StaffUser) -> str:
    return f"{user.name} <{user.email}>"


# --- teachers --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IssuedPassword:
    """A password made for someone, shown once to the admin who hands it over; only its hash is kept."""

    user: StaffUser
    password: str


def _new_password() -> str:
    return secrets.token_urlsafe(12)  # 16 characters, 96 bits


def add_teacher(
    session: Session, by: Principal, email: str, name: str, *, admin: bool = False
) -> IssuedPassword:
    """A new teacher (or admin) of the admin's school with a first password made here; commits."""
    ensure_allowed(by, Action.MANAGE_SCHOOL)
    password = _new_password()
    role = Role.ADMIN if admin else Role.TEACHER
    user = accounts.add_staff_user(session, by.school_id, email, name, password, role=role)
    record_change(session, by, f"{role.value} added", _label(user))
    _commit(session, "someone else added this email at the same time")
    return IssuedPassword(user, password)


def reset_password(session: Session, by: Principal, staff_id: int) -> IssuedPassword:
    """A new password for a colleague (their sessions end); commits. Your own: the Password page."""
    user = _staff(session, by, staff_id)
    _not_yourself(by, user, "reset the password of")
    password = _new_password()
    user.password_hash = generate_password_hash(password)
    user.session_version += 1
    record_change(session, by, "password reset", _label(user))
    session.commit()
    return IssuedPassword(user, password)


def set_active(session: Session, by: Principal, staff_id: int, *, active: bool) -> StaffUser:
    """Deactivate (no sign-in; every session ends at once) or reactivate a colleague; commits. Their classes
    stay theirs until given to another teacher."""
    user = _staff(session, by, staff_id)
    _not_yourself(by, user, "deactivate" if not active else "reactivate")
    if (user.deactivated_at is None) != active:
        user.deactivated_at = None if active else utcnow()
        user.session_version += 1
        record_change(session, by, "reactivated" if active else "deactivated", _label(user))
    session.commit()
    return user


def set_admin(session: Session, by: Principal, staff_id: int, *, admin: bool) -> StaffUser:
    """Make a colleague a school admin, or a teacher again; commits (the next request already sees it)."""
    user = _staff(session, by, staff_id)
    _not_yourself(by, user, "change the role of")
    role = Role.ADMIN if admin else Role.TEACHER
    if user.role != role.value:
        user.role = role.value
        record_change(session, by, "made admin" if admin else "made teacher", _label(user))
    session.commit()
    return user


# --- classes ---------------------------------------------------------------------------------------


def _teacher_for(session: Session, by: Principal, teacher_id: int) -> StaffUser:
    teacher = _staff(session, by, teacher_id)
    if teacher.deactivated_at is not None:
        raise AccountError(f"{teacher.name} is deactivated: choose an active teacher")
    return teacher


def create_class(session: Session, by: Principal, name: str, teacher_id: int) -> SchoolClass:
    """A new class of the school, taught by ``teacher_id``; commits."""
    teacher = _teacher_for(session, by, teacher_id)
    klass = accounts.add_class(session, teacher, name)
    record_change(session, by, "class created", klass.name, f"teacher {_label(teacher)}")
    _commit(session, "a class of that name was made at the same time")
    return klass


def assign_teacher(session: Session, by: Principal, class_id: int, teacher_id: int) -> SchoolClass:
    """Give the class to another teacher (the previous one no longer sees it); commits."""
    klass = _class(session, by, class_id)
    teacher = _teacher_for(session, by, teacher_id)
    if klass.teacher_id != teacher.id:
        clash = session.scalar(
            select(SchoolClass.id).where(SchoolClass.teacher_id == teacher.id, SchoolClass.name == klass.name)
        )
        if clash is not None:
            raise Conflict(f"{teacher.name} already has a class called {klass.name!r}")
        before = session.get(StaffUser, klass.teacher_id)
        klass.teacher_id = teacher.id
        record_change(
            session,
            by,
            "teacher changed",
            klass.name,
            f"{_label(before) if before else '?'} -> {_label(teacher)}",
        )
    _commit(session, "the class changed at the same time")
    return klass


def archive_class(session: Session, by: Principal, class_id: int) -> SchoolClass:
    """Archive the class: out of every list and scope, its join code signs nobody in; the students and their
    data stay (and keep their other classes). Commits; archiving it again changes nothing."""
    klass = _class(session, by, class_id, open_only=False)
    if klass.archived_at is None:
        klass.archived_at = utcnow()
        record_change(session, by, "class archived", klass.name)
    session.commit()
    return klass


def new_join_code(session: Session, by: Principal, class_id: int) -> SchoolClass:
    """A new join code for the class: the old one signs nobody in from now on. Commits."""
    klass = _class(session, by, class_id)
    klass.join_code = accounts.new_join_code(session)
    record_change(session, by, "class code reissued", klass.name)
    _commit(session, "another code was issued at the same time")
    return klass


# --- rosters and personal codes ---------------------------------------------------------------------


@dataclass(frozen=True)
class Slip:
    external_id: str
    code: str | None  # a personal code issued now (shown once); None: they keep the one they have
    status: str


@dataclass(frozen=True)
class CodeSlips:
    """What a print-out of code slips shows: the class, its code, each student's personal code."""

    class_id: int
    class_name: str
    join_code: str
    slips: list[Slip]


@dataclass(frozen=True)
class RosterPlan:
    """What enrolling a roster CSV in a class would change (nothing is written to find out)."""

    class_id: int
    class_name: str
    new_students: list[str]
    added: list[str]  # students of the school who join the class
    already: list[str]  # in the class already
    codes_issued: int  # personal codes that would be issued now

    @property
    def changes_anything(self) -> bool:
        return bool(self.new_students or self.added or self.codes_issued)


def preview_roster(session: Session, by: Principal, class_id: int, text: str, *, reissue: bool) -> RosterPlan:
    """Read the roster (every bad row named with its line: AccountError); what enrolling it would do."""
    klass = _class(session, by, class_id)
    ids = accounts.read_roster(text)
    existing = dict(
        session.execute(
            select(Student.external_id, Student.id).where(
                Student.school_id == klass.school_id, Student.external_id.in_(ids)
            )
        ).all()
    )
    members = set(
        session.scalars(select(ClassMembership.student_id).where(ClassMembership.class_id == klass.id))
    )
    with_code = set(
        session.scalars(
            select(StudentCredential.student_id).where(StudentCredential.student_id.in_(existing.values()))
        )
    )
    session.commit()  # end the read
    new = [e for e in ids if e not in existing]
    added = [e for e in ids if e in existing and existing[e] not in members]
    already = [e for e in ids if e in existing and existing[e] in members]
    without_code = sum(1 for e in ids if e in existing and existing[e] not in with_code)
    codes = len(ids) if reissue else len(new) + without_code
    return RosterPlan(klass.id, klass.name, new, added, already, codes)


def enroll_roster(session: Session, by: Principal, class_id: int, text: str, *, reissue: bool) -> CodeSlips:
    """Enroll the roster's students in the class (new ones created, codes issued): all or nothing. Commits."""
    klass = _class(session, by, class_id)
    results = accounts.enroll_in(session, klass, accounts.read_roster(text), reissue=reissue)
    created = sum(r.created for r in results)
    added = sum(r.added for r in results)
    codes = sum(r.code is not None for r in results)
    record_change(
        session,
        by,
        "roster enrolled",
        klass.name,
        f"{len(results)} student(s): {created} new, {added} added to the class, {codes} code(s) issued",
    )
    _commit(session, "another enrollment ran at the same time; upload the roster again")
    return _slips(klass, [(r.external_id, r.code, _status(r)) for r in results])


def reissue_codes(session: Session, by: Principal, class_id: int) -> CodeSlips:
    """New personal codes for every student of the class: their old codes sign nobody in from now on (their
    sessions end). Commits."""
    klass = _class(session, by, class_id)
    ids = list(
        session.scalars(
            select(Student.external_id)
            .join(ClassMembership, ClassMembership.student_id == Student.id)
            .where(ClassMembership.class_id == klass.id)
            .order_by(Student.external_id)
        )
    )
    if not ids:
        raise AccountError(f"the class {klass.name!r} has no students yet")
    results = accounts.enroll_in(session, klass, ids, reissue=True)
    record_change(session, by, "personal codes reissued", klass.name, f"{len(results)} student(s)")
    _commit(session, "another enrollment ran at the same time; try again")
    return _slips(klass, [(r.external_id, r.code, "new code") for r in results])


def _status(row: accounts.Enrollment) -> str:
    return "new student" if row.created else ("added to class" if row.added else "already in class")


def _slips(klass: SchoolClass, rows: list[tuple[str, str | None, str]]) -> CodeSlips:
    return CodeSlips(klass.id, klass.name, klass.join_code, [Slip(*row) for row in rows])


def _commit(session: Session, clash: str) -> None:
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(clash) from None
