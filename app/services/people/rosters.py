"""Classes as their teachers, admins and apps see them: who is in them and how far each has got; the school's
students as a searchable list; putting existing students into a class and taking them out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import SQLColumnExpression, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, ensure_allowed
from app.domain.errors import Conflict, InvalidInput, NotInClass, UnknownStudents
from app.domain.tracking import MasteryStatus, estimate_of, status_from
from app.models import ClassMembership, Mastery, SchoolClass, StaffUser, Student, utcnow
from app.services.people import accounts
from app.services.people.access import class_scope, find_class, record_access, student_scope, visible_classes
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


# --- the school's students as a list ---------------------------------------------------------------

# How GET /students can order a page (a leading "-": descending). Students without answers come last in
# either direction of last_active_at; equal keys are ordered by id, so pages never overlap or skip.
STUDENT_SORTS = (
    "external_id",
    "-external_id",
    "created_at",
    "-created_at",
    "last_active_at",
    "-last_active_at",
)
MAX_PER_PAGE = 200


@dataclass(frozen=True)
class ListedStudent:
    id: str
    external_id: str
    created_at: datetime
    personalized: bool
    personalization_changed_at: datetime | None
    last_active_at: datetime | None  # the latest answer (purged ones included); None: never answered
    answers: int  # answers recorded (one per answer, however many skills the exercise has)


@dataclass(frozen=True)
class StudentPage:
    items: list[ListedStudent]
    page: int
    per_page: int
    total: int  # students matching the filters, on every page
    next_page: int | None


def _code_point_order(session: Session, column: SQLColumnExpression[str]) -> SQLColumnExpression[str]:
    """``column`` ordered by code point on every backend: SQLite compares text byte by byte (UTF-8, so by code
    point); PostgreSQL would use the database's locale, which may ignore case and punctuation."""
    if session.get_bind().dialect.name == "postgresql":
        return column.collate("C")
    return column


def _student_order(session: Session, sort: str) -> list[SQLColumnExpression[Any]]:
    if sort not in STUDENT_SORTS:
        raise InvalidInput(f"sort must be one of {', '.join(STUDENT_SORTS)}")
    descending = sort.startswith("-")
    key: SQLColumnExpression[Any] = {
        "external_id": _code_point_order(session, Student.external_id),
        "created_at": Student.created_at,
        "last_active_at": Student.last_answer_at,
    }[sort.lstrip("-")]
    ordered = key.desc() if descending else key.asc()
    if sort.endswith("last_active_at"):  # never answered: last, whichever the direction (portable NULLS LAST)
        return [Student.last_answer_at.is_(None).asc(), ordered, Student.id.asc()]
    return [ordered, Student.id.asc()]


def list_students(
    session: Session,
    principal: Principal,
    *,
    external_id: str | None = None,
    prefix: str | None = None,
    class_id: int | None = None,
    active_since: datetime | None = None,
    active_before: datetime | None = None,
    sort: str = "external_id",
    page: int = 1,
    per_page: int = 50,
) -> StudentPage:
    """One page of the students ``principal`` may see (an app or an admin: the school's; a teacher: their
    classes'), filtered (all filters at once) and ordered by ``sort``. Two queries whatever the page: the
    count and the page; the read of the page's students is logged.

    ``prefix`` matches the start of the external id without regard to case (A-Z on every database; PostgreSQL
    folds other letters too). ``active_since`` (inclusive) and ``active_before`` (exclusive) bound the time of
    the latest answer: students who never answered match neither.
    """
    ensure_allowed(principal, Action.LIST_STUDENTS)
    if not 1 <= per_page <= MAX_PER_PAGE or page < 1:
        raise InvalidInput(f"page must be 1 or more and per_page 1 to {MAX_PER_PAGE}")
    conditions = [student_scope(principal)]
    if class_id is not None:
        klass = find_class(session, principal, class_id)
        members = select(ClassMembership.student_id).where(ClassMembership.class_id == klass.id)
        conditions.append(Student.id.in_(members))
    if external_id is not None:
        conditions.append(Student.external_id == external_id)
    if prefix is not None:
        conditions.append(Student.external_id.istartswith(prefix, autoescape=True))
    if active_since is not None:
        conditions.append(Student.last_answer_at >= active_since)
    if active_before is not None:
        conditions.append(Student.last_answer_at < active_before)
    total = session.scalar(select(func.count()).select_from(Student).where(*conditions)) or 0
    rows = session.execute(
        select(
            Student.id,
            Student.external_id,
            Student.created_at,
            Student.personalized,
            Student.personalization_changed_at,
            Student.last_answer_at,
            Student.answer_count,
        )
        .where(*conditions)
        .order_by(*_student_order(session, sort))
        .offset((page - 1) * per_page)
        .limit(per_page)
    ).all()
    items = [
        ListedStudent(
            row.id,
            row.external_id,
            row.created_at,
            row.personalized,
            row.personalization_changed_at,
            row.last_answer_at,
            row.answer_count,  # the counter kept with every answer, as the reports read it
        )
        for row in rows
    ]
    record_access(session, principal, [s.id for s in items], "student list")
    session.commit()  # the access-log rows, recorded above
    return StudentPage(items, page, per_page, total, page + 1 if page * per_page < total else None)


# --- who is in a class -------------------------------------------------------------------------------

# Names of a refused request shown in its message; the rest are counted.
SHOWN_REFUSED = 10


@dataclass(frozen=True)
class ClassEnrolment:
    class_id: int
    enrolled: list[str]  # student ids newly made members, in the order asked
    already_enrolled: list[str]


@dataclass(frozen=True)
class ClassRemoval:
    class_id: int
    student_id: str
    removed: bool


def _named(values: list[str]) -> str:
    shown = ", ".join(repr(v) for v in values[:SHOWN_REFUSED])
    more = len(values) - SHOWN_REFUSED
    return f"{shown} and {more} more" if more > 0 else shown


def enrol_students(
    session: Session,
    principal: Principal,
    class_id: int,
    *,
    student_ids: list[str] | None = None,
    external_ids: list[str] | None = None,
) -> ClassEnrolment:
    """Make existing students of the caller's school members of the class (apps and admins: any class of the
    school; a teacher: their own). Exactly one of ``student_ids`` and ``external_ids``; repeats count once.

    All or nothing: one id that is not a student of the school refuses the whole request. Idempotent: members
    already are reported as such. No personal code is issued: an app's students practise through the app, and
    a code is shown only once, to whoever enrolls (``flask enroll`` issues one to a student without a code,
    and keeps their memberships). A student who has a code can sign in with this class's join code too.
    """
    ensure_allowed(principal, Action.MANAGE_CLASS_MEMBERS)
    if (student_ids is None) == (external_ids is None):
        raise InvalidInput("send exactly one of 'student_ids' and 'external_ids'")
    try:
        return _enrol(session, principal, class_id, student_ids, external_ids)
    except IntegrityError:
        # One of them was deleted meanwhile (a membership's foreign key): once more, it is reported missing.
        session.rollback()
    try:
        return _enrol(session, principal, class_id, student_ids, external_ids)
    except IntegrityError:
        session.rollback()
        raise Conflict("students were deleted while being enrolled; send the request again") from None


def _enrol(
    session: Session,
    principal: Principal,
    class_id: int,
    student_ids: list[str] | None,
    external_ids: list[str] | None,
) -> ClassEnrolment:
    klass = find_class(session, principal, class_id)
    by_id = student_ids is not None
    wanted = list(dict.fromkeys(student_ids if student_ids is not None else external_ids or []))
    key = Student.id if by_id else Student.external_id
    found: dict[str, str] = {
        named: sid
        for named, sid in session.execute(
            select(key, Student.id).where(Student.school_id == principal.school_id, key.in_(wanted))
        )
    }
    missing = [value for value in wanted if value not in found]
    if missing:
        session.rollback()  # nothing was written; end the read
        if by_id:
            raise UnknownStudents(
                missing,
                "student_ids",
                f"Not students of this school: {_named(missing)}. Nothing was enrolled.",
            )
        raise UnknownStudents(
            missing,
            "external_ids",
            f"No student of this school has the external id {_named(missing)}: create the students first "
            "(POST /api/v1/students), then enrol them. Nothing was enrolled.",
        )
    ids = [found[value] for value in wanted]
    added = accounts.add_members(session, klass.id, ids)
    session.commit()
    return ClassEnrolment(
        klass.id, [sid for sid in ids if sid in added], [sid for sid in ids if sid not in added]
    )


def remove_from_class(session: Session, principal: Principal, class_id: int, student_id: str) -> ClassRemoval:
    """Take the student out of the class (same callers as ``enrol_students``): the student and their data
    stay. A student who is not in it (or does not exist) is NotInClass."""
    ensure_allowed(principal, Action.MANAGE_CLASS_MEMBERS)
    klass = find_class(session, principal, class_id)
    if not accounts.remove_member(session, klass.id, student_id):
        session.rollback()
        raise NotInClass(student_id, klass.id)
    session.commit()
    return ClassRemoval(klass.id, student_id, True)
