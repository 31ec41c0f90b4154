"""OneRoster imports: a school's roster from its information system (a OneRoster 1.1 or 1.2 CSV bundle, read
by ``app.domain.oneroster``) mapped onto the school of the admin who imports it.

The school's org (the one the admin names, or the bundle's only org of type school) is this school; its
classes become classes, kept by sourcedId (``classes.sourced_id``: a re-import renames them and keeps their
members); users with role teacher become the school's teachers (by sourcedId; their email is their login
here, and only a teacher's); users with role student become pseudonymous students whose external id is their
sourcedId: a student's names, email, username, phone or grades are never read into the database (and a
sourcedId that looks like an email is refused). Enrollments give class membership (students) and the class's
teacher (the primary teacher, else the first).

All or nothing: the whole plan is worked out first, and a single bad row (the reader's problems, or those
only the database shows: an email of another school, a class without a teacher, a name taken twice) refuses
the whole bundle, listing every problem, before anything is written; the changes then commit once.
Enrolments end, and never a student or their data, when the enrollment's row is ``tobedeleted``, when its
class or student is, or when a bulk enrollments file no longer has it (only the memberships an import made
are ended: a student a teacher added by hand stays). A delta file leaves the rows it does not name as they
are, as the binding says.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

import structlog
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, ensure_allowed
from app.domain.errors import Conflict
from app.domain.external_ids import EXTERNAL_ID_RULE, clean_external_id
from app.domain.oneroster import Bundle, BundleProblems, Enrollment, Mode, Problem, User, read_bundle
from app.models import ClassMembership, SchoolClass, StaffUser, Student, utcnow
from app.services.people.accounts import CODE_ALPHABET, EMAIL, JOIN_CODE_LENGTH
from app.services.people.school_admin import record_change
from app.services.tutoring.students import add_students

log = structlog.stdlib.get_logger(__name__)
# Staff made by an import have no password yet: no password hash matches this (werkzeug reads it as none).
NO_PASSWORD = "!oneroster: no password set"
CHUNK = 500


@dataclass
class RosterChanges:
    """What an import changes (or, in a dry run, would change). Students are named by external id only."""

    version: str
    org: str | None  # the sourcedId of the school's org (None: the bundle has no orgs file)
    dry_run: bool
    classes_added: list[str] = field(default_factory=list)
    classes_renamed: list[tuple[str, str]] = field(default_factory=list)  # (old name, new name)
    classes_reassigned: list[tuple[str, str]] = field(default_factory=list)  # (class, new teacher's email)
    teachers_added: list[str] = field(default_factory=list)  # emails
    teachers_linked: list[str] = field(default_factory=list)  # existing staff now known by their sourcedId
    students_added: list[str] = field(default_factory=list)  # external ids
    enrolments_added: list[tuple[str, str]] = field(default_factory=list)  # (class, student's external id)
    enrolments_ended: list[tuple[str, str]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # what the bundle has that the school does not take

    @property
    def counts(self) -> dict[str, int]:
        return {
            "classes_added": len(self.classes_added),
            "classes_renamed": len(self.classes_renamed),
            "classes_reassigned": len(self.classes_reassigned),
            "teachers_added": len(self.teachers_added),
            "teachers_linked": len(self.teachers_linked),
            "students_added": len(self.students_added),
            "enrolments_added": len(self.enrolments_added),
            "enrolments_ended": len(self.enrolments_ended),
        }

    @property
    def changes_anything(self) -> bool:
        return any(self.counts.values())

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("classes_renamed", "classes_reassigned", "enrolments_added", "enrolments_ended"):
            data[key] = [list(pair) for pair in data[key]]
        return {**data, "counts": self.counts}


def _chunks(values: Iterable[str]) -> Iterable[list[str]]:
    items = sorted(set(values))
    for start in range(0, len(items), CHUNK):
        yield items[start : start + CHUNK]


def _join_code(session: Session, taken: set[str]) -> str:
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(JOIN_CODE_LENGTH))
        if code in taken:
            continue
        taken.add(code)
        if session.scalar(select(SchoolClass.id).where(SchoolClass.join_code == code)) is None:
            return code


@dataclass
class _Teacher:
    sourced_id: str
    email: str
    name: str
    staff: StaffUser | None  # None: made by this import
    link: bool = False  # an existing staff user, matched by email, gets the sourcedId


@dataclass
class _Student:
    sourced_id: str
    external_id: str
    student: Student | None  # None: made by this import
    link: bool = False


@dataclass
class _Class:
    sourced_id: str
    title: str
    teacher: _Teacher | None  # None: keeps the teacher it has
    klass: SchoolClass | None  # None: made by this import


class _Planner:
    """Works out every change (reading only), collecting the problems only the database shows."""

    def __init__(self, session: Session, school_id: int, bundle: Bundle, org: str | None) -> None:
        self.session, self.school_id, self.bundle = session, school_id, bundle
        self.problems: list[Problem] = []
        self.skipped: dict[str, int] = {}
        self.org = self._school_org(org)
        self.users = {u.sourced_id: u for u in bundle.users}
        # Indexes of the bundle, so that no step loops over one file per row of another.
        self.enrollments_of: dict[str, list[Enrollment]] = {}
        self.teaching: dict[str, list[Enrollment]] = {}  # a class's teacher enrollments
        for row in bundle.enrollments:
            self.enrollments_of.setdefault(row.user_sourced_id, []).append(row)
            if row.role == "teacher" and not row.deleted:
                self.teaching.setdefault(row.class_sourced_id, []).append(row)
        self.roles_of: dict[str, set[str]] = {}
        self.role_orgs_of: dict[str, set[str]] = {}
        if bundle.version == "1.1":
            for user in bundle.users:
                self.roles_of.setdefault(user.sourced_id, set()).add(user.role)
        # 1.2: a user whose every role row is to be deleted no longer has a role here (as if to be deleted).
        self.roles_ended: set[str] = {r.user_sourced_id for r in bundle.roles if r.deleted}
        for role in bundle.roles:
            self.role_orgs_of.setdefault(role.user_sourced_id, set()).add(role.org_sourced_id)
            self.roles_of.setdefault(role.user_sourced_id, set()).add(role.role)
            if not role.deleted:
                self.roles_ended.discard(role.user_sourced_id)

    def problem(self, file: str, line: int, message: str) -> None:
        self.problems.append(Problem(file, line, message))

    def skip(self, what: str, count: int = 1) -> None:
        if count:
            self.skipped[what] = self.skipped.get(what, 0) + count

    # -- which org is this school ---------------------------------------------------------------------

    def _school_org(self, named: str | None) -> str | None:
        orgs = {o.sourced_id: o for o in self.bundle.orgs}
        if named is not None:
            named = named.strip()
            if self.bundle.mode("orgs") is Mode.BULK and named not in orgs:
                known = ", ".join(sorted(o.sourced_id for o in self.bundle.orgs if o.type == "school"))
                self.problem("orgs.csv", 0, f"no org has the sourcedId {named!r} (the school orgs: {known})")
            elif named in orgs and orgs[named].type != "school":
                self.problem(
                    "orgs.csv", orgs[named].line, f"org {named!r} is a {orgs[named].type}, not a school"
                )
            return named
        schools = [o for o in self.bundle.orgs if o.type == "school" and not o.deleted]
        if len(schools) == 1:
            return schools[0].sourced_id
        if not schools:
            if self.bundle.mode("orgs") is Mode.ABSENT:
                return None  # every class of the bundle is this school's
            self.problem("orgs.csv", 0, "no org of type school: name the school's org (its sourcedId)")
            return None
        listed = ", ".join(f"{o.sourced_id} ({o.name})" for o in schools)
        self.problem("orgs.csv", 0, f"several school orgs ({listed}): name the one that is this school")
        return None

    # -- reading what the school has --------------------------------------------------------------------

    def load(self) -> None:
        s, school = self.session, self.school_id
        self.classes_by_sid = {
            c.sourced_id or "": c
            for c in s.scalars(
                select(SchoolClass).where(
                    SchoolClass.school_id == school, SchoolClass.sourced_id.is_not(None)
                )
            )
        }
        self.staff_by_sid = {
            u.sourced_id or "": u
            for u in s.scalars(
                select(StaffUser).where(StaffUser.school_id == school, StaffUser.sourced_id.is_not(None))
            )
        }
        emails = {self._email_of(u) for u in self.bundle.users} - {""}
        self.staff_by_email: dict[str, StaffUser] = {}
        for chunk in _chunks(emails):
            for user in s.scalars(select(StaffUser).where(StaffUser.email.in_(chunk))):
                self.staff_by_email[user.email] = user
        ids = {u.sourced_id for u in self.bundle.users} | {e.user_sourced_id for e in self.bundle.enrollments}
        self.students_by_sid: dict[str, Student] = {}
        self.students_by_external: dict[str, Student] = {}
        for chunk in _chunks(ids):
            for student in s.scalars(
                select(Student).where(Student.school_id == school, Student.sourced_id.in_(chunk))
            ):
                self.students_by_sid[student.sourced_id or ""] = student
            for student in s.scalars(
                select(Student).where(Student.school_id == school, Student.external_id.in_(chunk))
            ):
                self.students_by_external[student.external_id] = student

    @staticmethod
    def _email_of(user: User) -> str:
        for value in (user.email, user.username):
            if EMAIL.match(value.strip()) and len(value.strip()) <= 254:
                return value.strip().lower()
        return ""

    # -- people -----------------------------------------------------------------------------------------

    def _role(self, user: User) -> str | None:
        roles = self.roles_of.get(user.sourced_id, set()) & {"teacher", "student"}
        enrolled = {e.role for e in self.enrollments_of.get(user.sourced_id, []) if not e.deleted} & {
            "teacher",
            "student",
        }
        roles = roles or enrolled
        if len(roles) > 1:
            self.problem("users.csv", user.line, f"user {user.sourced_id!r} is both a teacher and a student")
            return None
        return next(iter(roles), None)

    def _belongs(self, user: User, in_scope: set[str]) -> bool:
        if self.org is None:
            return True
        orgs = set(user.org_sourced_ids) | self.role_orgs_of.get(user.sourced_id, set())
        enrolled = any(e.class_sourced_id in in_scope for e in self.enrollments_of.get(user.sourced_id, []))
        return self.org in orgs or enrolled

    def people(self, in_scope: set[str]) -> None:
        self.teachers: dict[str, _Teacher] = {}
        self.students: dict[str, _Student] = {}
        self.deleted_students: set[str] = set()
        emails: dict[str, int] = {}
        for user in self.bundle.users:
            role = self._role(user)
            if role is None:
                self.skip("users who are neither teachers nor students")
                continue
            if not self._belongs(user, in_scope):
                self.skip("users of other orgs")
                continue
            if role == "student":
                self._student(user)
                continue
            if user.deleted or user.sourced_id in self.roles_ended:
                self.skip("teachers to be deleted (staff accounts are kept)")
                continue
            email = self._email_of(user)
            if not email:
                self.problem(
                    "users.csv", user.line, f"teacher {user.sourced_id!r} has no email (their login here)"
                )
                continue
            if email in emails:
                self.problem("users.csv", user.line, f"email {email!r} repeats line {emails[email]}")
                continue
            emails[email] = user.line
            self._teacher(user, email)

    def _teacher(self, user: User, email: str) -> None:
        name = f"{user.given_name} {user.family_name}".strip()[:200]
        known = self.staff_by_sid.get(user.sourced_id)
        if known is not None:
            self.teachers[user.sourced_id] = _Teacher(user.sourced_id, known.email, known.name, known)
            return
        same_email = self.staff_by_email.get(email)
        if same_email is None:
            self.teachers[user.sourced_id] = _Teacher(user.sourced_id, email, name, None)
        elif same_email.school_id != self.school_id:
            self.problem(
                "users.csv", user.line, f"email {email!r} is the login of a staff user of another school"
            )
        elif same_email.sourced_id is not None:
            self.problem(
                "users.csv",
                user.line,
                f"email {email!r} is the login of the teacher with sourcedId {same_email.sourced_id!r}",
            )
        else:
            self.teachers[user.sourced_id] = _Teacher(
                user.sourced_id, email, same_email.name, same_email, True
            )

    def _student(self, user: User) -> None:
        # Only the sourcedId is read: never a student's names, username or email.
        if user.deleted or user.sourced_id in self.roles_ended:
            self.deleted_students.add(user.sourced_id)
            return
        external_id = clean_external_id(user.sourced_id)
        if external_id is None or "@" in user.sourced_id:
            why = (
                EXTERNAL_ID_RULE if external_id is None else "it looks like an email: it must be pseudonymous"
            )
            self.problem(
                "users.csv", user.line, f"a student's sourcedId is their external id here, and {why}"
            )
            return
        known = self.students_by_sid.get(user.sourced_id)
        if known is not None:
            self.students[user.sourced_id] = _Student(user.sourced_id, known.external_id, known)
            return
        same = self.students_by_external.get(external_id)
        if same is not None and same.sourced_id is not None:
            self.problem(
                "users.csv", user.line, f"external id {external_id!r} belongs to another roster's student"
            )
            return
        self.students[user.sourced_id] = _Student(user.sourced_id, external_id, same, same is not None)

    # -- classes ----------------------------------------------------------------------------------------

    def scope(self) -> set[str]:
        """The bundle's classes of this school (their sourcedIds)."""
        chosen = {
            c.sourced_id for c in self.bundle.classes if self.org is None or c.school_sourced_id == self.org
        }
        self.skip("classes of other orgs", len(self.bundle.classes) - len(chosen))
        return chosen

    def _class_teacher(self, class_sid: str) -> _Teacher | None:
        rows = list(self.teaching.get(class_sid, []))
        rows.sort(key=lambda e: (e.primary != "true", e.line))
        for row in rows:
            teacher = self.teachers.get(row.user_sourced_id)
            if teacher is not None:
                return teacher
            known = self.staff_by_sid.get(row.user_sourced_id)
            if known is not None:
                return _Teacher(known.sourced_id or "", known.email, known.name, known)
        return None

    def classes(self, in_scope: set[str]) -> None:
        self.planned: dict[str, _Class] = {}
        self.deleted_classes: set[str] = set()
        names: dict[tuple[str, str], int] = {}
        for row in self.bundle.classes:
            if row.sourced_id not in in_scope:
                continue
            if row.deleted:
                self.deleted_classes.add(row.sourced_id)
                continue
            existing = self.classes_by_sid.get(row.sourced_id)
            if existing is not None and existing.archived_at is not None:
                # An admin archived it here: the school's decision stands over the roster's (no new
                # enrolments into a class nobody can see); counted, so the preview says so.
                self.skip("classes archived here (left as they are, with their enrolments)")
                continue
            teacher = self._class_teacher(row.sourced_id)
            if len(row.title) > 200:
                self.problem("classes.csv", row.line, "a class title must be at most 200 characters")
                continue
            if teacher is None and existing is None:
                self.problem(
                    "classes.csv",
                    row.line,
                    f"class {row.sourced_id!r} has no teacher here (no enrollment with role teacher "
                    "of a teacher of this school)",
                )
                continue
            planned = _Class(row.sourced_id, row.title, teacher, existing)
            owner = teacher.email if teacher else self._owner_email(existing)
            key = (owner, row.title)
            if key in names:
                self.problem(
                    "classes.csv",
                    row.line,
                    f"{owner} would have two classes called {row.title!r} (line {names[key]})",
                )
                continue
            names[key] = row.line
            self.planned[row.sourced_id] = planned
        # Classes made any other way keep their names: a clash with one of them is a problem too.
        taken = {
            (email, name): klass_id
            for klass_id, name, email in self.session.execute(
                select(SchoolClass.id, SchoolClass.name, StaffUser.email)
                .join(StaffUser, StaffUser.id == SchoolClass.teacher_id)
                .where(SchoolClass.school_id == self.school_id)
            )
        }
        moving = {p.klass.id for p in self.planned.values() if p.klass is not None}
        for (owner, title), line in names.items():
            klass_id = taken.get((owner, title))
            if klass_id is not None and klass_id not in moving:
                self.problem("classes.csv", line, f"{owner} already has a class called {title!r}")

    def _owner_email(self, klass: SchoolClass | None) -> str:
        if klass is None:
            return ""
        owner = self.session.get(StaffUser, klass.teacher_id)
        return owner.email if owner else ""

    # -- enrolments -------------------------------------------------------------------------------------

    def enrolments(self, in_scope: set[str]) -> None:
        """The student memberships wanted ((class sourcedId, student sourcedId) -> enrollment sourcedId) and
        the enrollments whose memberships end."""
        self.wanted: dict[tuple[str, str], str] = {}
        self.ending: list[Enrollment] = []
        bundle_classes = {c.sourced_id for c in self.bundle.classes}
        for row in self.bundle.enrollments:
            if row.role not in ("teacher", "student"):
                self.skip("enrollments of other roles")
                continue
            if row.class_sourced_id in bundle_classes and row.class_sourced_id not in in_scope:
                self.skip("enrollments in classes of other orgs")
                continue
            archived = self.classes_by_sid.get(row.class_sourced_id)
            if archived is not None and archived.archived_at is not None:
                self.skip("enrollments in classes archived here")
                continue
            known_class = row.class_sourced_id in self.planned or row.class_sourced_id in self.classes_by_sid
            if not known_class and row.class_sourced_id not in self.deleted_classes:
                if row.class_sourced_id not in bundle_classes:
                    self.problem(
                        "enrollments.csv",
                        row.line,
                        f"unknown reference classSourcedId {row.class_sourced_id!r} (not in classes.csv nor "
                        "imported before)",
                    )
                continue  # its class has a problem of its own
            if row.role == "teacher":
                self._teacher_row(row)
                continue
            if row.user_sourced_id in self.teachers or row.user_sourced_id in self.staff_by_sid:
                self.problem(
                    "enrollments.csv",
                    row.line,
                    f"user {row.user_sourced_id!r} is a teacher, enrolled as a student",
                )
                continue
            if row.deleted:
                self.ending.append(row)
                continue
            if row.user_sourced_id in self.deleted_students or row.class_sourced_id in self.deleted_classes:
                continue  # ends with its student or class
            if row.user_sourced_id not in self.students:
                if row.user_sourced_id in self.students_by_sid:
                    known = self.students_by_sid[row.user_sourced_id]
                    self.students[row.user_sourced_id] = _Student(
                        row.user_sourced_id, known.external_id, known
                    )
                elif row.user_sourced_id not in self.users:
                    self.problem(
                        "enrollments.csv",
                        row.line,
                        f"unknown reference userSourcedId {row.user_sourced_id!r} (not in users.csv "
                        "nor imported before)",
                    )
                    continue
                else:
                    continue  # the user has a problem of their own
            self.wanted[(row.class_sourced_id, row.user_sourced_id)] = row.sourced_id

    def _teacher_row(self, row: Enrollment) -> None:
        user = row.user_sourced_id
        if user in self.students or user in self.students_by_sid:
            self.problem("enrollments.csv", row.line, f"user {user!r} is a student, enrolled as a teacher")
        elif user not in self.teachers and user not in self.staff_by_sid and user not in self.users:
            self.problem(
                "enrollments.csv",
                row.line,
                f"unknown reference userSourcedId {user!r} (not in users.csv nor imported before)",
            )


def import_roster(
    session: Session,
    principal: Principal,
    data: bytes,
    *,
    org: str | None = None,
    dry_run: bool = False,
    progress: Callable[[str], None] | None = None,
) -> RosterChanges:
    """Import the OneRoster bundle ``data`` (a zip) into ``principal``'s school (admins), or with ``dry_run``
    only say what it would change. BundleProblems (every problem, file:line: why) when any row is bad:
    nothing is written then. Commits once."""
    ensure_allowed(principal, Action.RUN_MAINTENANCE)
    say = progress or (lambda message: None)
    say("reading the bundle")
    bundle = read_bundle(data)
    planner = _Planner(session, principal.school_id, bundle, org)
    say("comparing with the school")
    planner.load()
    in_scope = planner.scope()
    planner.people(in_scope)
    planner.classes(in_scope)
    planner.enrolments(in_scope)
    if planner.problems:
        session.rollback()  # only read: end the transaction
        raise BundleProblems(sorted(planner.problems, key=lambda p: (p.file, p.line)))
    changes = RosterChanges(
        bundle.version, planner.org, dry_run, skipped=dict(sorted(planner.skipped.items()))
    )
    try:
        _apply(session, planner, bundle, changes, write=not dry_run)
        if dry_run:
            session.rollback()
        else:
            if changes.changes_anything:  # in the school's change log, counted (no student named)
                counted = ", ".join(
                    f"{n} {what.replace('_', ' ')}" for what, n in changes.counts.items() if n
                )
                record_change(session, principal, "OneRoster imported", planner.org or "the school", counted)
            say("saving")
            session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("the school's roster changed while it was imported: import the bundle again") from None
    log.info(
        "oneroster.imported" if not dry_run else "oneroster.previewed",
        school_id=principal.school_id,
        actor=principal.actor,
        version=bundle.version,
        **changes.counts,
    )
    return changes


def _apply(session: Session, plan: _Planner, bundle: Bundle, changes: RosterChanges, *, write: bool) -> None:
    """Record every change in ``changes``; with ``write``, make them in the session (not committed)."""
    school = plan.school_id
    # Teachers.
    for teacher in plan.teachers.values():
        if teacher.staff is None:
            changes.teachers_added.append(teacher.email)
            if write:
                teacher.staff = StaffUser(
                    school_id=school,
                    email=teacher.email,
                    name=teacher.name or teacher.email,
                    role="teacher",
                    password_hash=NO_PASSWORD,
                    sourced_id=teacher.sourced_id,
                )
                session.add(teacher.staff)
        elif teacher.link:
            changes.teachers_linked.append(teacher.email)
            if write:
                teacher.staff.sourced_id = teacher.sourced_id
    # Students: made or linked, never changed otherwise.
    new = [s for s in plan.students.values() if s.student is None]
    changes.students_added = sorted(s.external_id for s in new)
    if write:
        session.flush()
        made = add_students(session, school, [s.external_id for s in new])
        for student, wanted in zip(made, new, strict=True):
            student.sourced_id = wanted.sourced_id
            wanted.student = student
        for wanted in plan.students.values():
            if wanted.link and wanted.student is not None:
                wanted.student.sourced_id = wanted.sourced_id
    # Classes.
    codes: set[str] = set()
    for planned in plan.planned.values():
        owner = planned.teacher
        if planned.klass is None:
            changes.classes_added.append(planned.title)
            if write and owner is not None and owner.staff is not None:
                planned.klass = SchoolClass(
                    school_id=school,
                    teacher_id=owner.staff.id,
                    name=planned.title,
                    join_code=_join_code(session, codes),
                    sourced_id=planned.sourced_id,
                )
                session.add(planned.klass)
            continue
        if planned.klass.name != planned.title:
            changes.classes_renamed.append((planned.klass.name, planned.title))
            if write:
                planned.klass.name = planned.title
        if owner is not None and (owner.staff is None or owner.staff.id != planned.klass.teacher_id):
            changes.classes_reassigned.append((planned.title, owner.email))
            if write and owner.staff is not None:
                planned.klass.teacher_id = owner.staff.id
    if write:
        session.flush()
    _apply_enrolments(session, plan, bundle, changes, write=write)


def _class_name(plan: _Planner, class_sid: str) -> str:
    planned = plan.planned.get(class_sid)
    if planned is not None:
        return planned.title
    existing = plan.classes_by_sid.get(class_sid)
    return existing.name if existing is not None else class_sid


def _apply_enrolments(
    session: Session, plan: _Planner, bundle: Bundle, changes: RosterChanges, *, write: bool
) -> None:
    class_ids = {sid: k.id for sid, k in plan.classes_by_sid.items()}
    if write:
        class_ids.update({sid: p.klass.id for sid, p in plan.planned.items() if p.klass is not None})
    class_sids = {v: k for k, v in class_ids.items()}
    # Every membership of the classes concerned, with whose it is.
    members: dict[tuple[int, str], str | None] = {}
    for chunk in _chunks(str(i) for i in class_ids.values()):
        for member_class, member, sourced_id in session.execute(
            select(ClassMembership.class_id, ClassMembership.student_id, ClassMembership.sourced_id).where(
                ClassMembership.class_id.in_([int(i) for i in chunk])
            )
        ):
            members[(member_class, member)] = sourced_id
    students = {sid: s.student for sid, s in plan.students.items()} | {
        sid: s for sid, s in plan.students_by_sid.items() if sid not in plan.students
    }
    externals = {s.id: s.external_id for s in students.values() if s is not None}
    ended: set[tuple[int, str]] = set()

    def end(class_id: int, student_id: str) -> None:
        if (class_id, student_id) in members:
            ended.add((class_id, student_id))

    kept: set[tuple[int, str]] = set()
    added: list[dict[str, Any]] = []
    for (class_sid, user_sid), enrollment_sid in plan.wanted.items():
        student = students.get(user_sid)
        class_id = class_ids.get(class_sid)
        if student is None or class_id is None:  # made by this import: a dry run only counts them
            changes.enrolments_added.append(
                (_class_name(plan, class_sid), plan.students[user_sid].external_id)
            )
            continue
        kept.add((class_id, student.id))
        if (class_id, student.id) not in members:
            changes.enrolments_added.append((_class_name(plan, class_sid), student.external_id))
            added.append({"class_id": class_id, "student_id": student.id, "sourced_id": enrollment_sid})
        elif members[(class_id, student.id)] != enrollment_sid and write:
            session.execute(
                update(ClassMembership)
                .where(ClassMembership.class_id == class_id, ClassMembership.student_id == student.id)
                .values(sourced_id=enrollment_sid)
            )
    for row in plan.ending:  # enrollments to be deleted
        leaving = students.get(row.user_sourced_id)
        left = class_ids.get(row.class_sourced_id)
        if leaving is not None and left is not None and (left, leaving.id) not in kept:
            end(left, leaving.id)
    imported = [(key, sid) for key, sid in members.items() if sid is not None]
    gone_classes = {class_ids[c] for c in plan.deleted_classes if c in class_ids}
    gone_students = {s.id for sid, s in plan.students_by_sid.items() if sid in plan.deleted_students}
    bulk = bundle.mode("enrollments") is Mode.BULK
    in_bundle = {class_ids[c] for c in plan.planned if c in class_ids}
    if bundle.mode("classes") is Mode.BULK:
        # A class gone from a bulk classes file of this school's org is gone: its imported members end.
        listed = {c.sourced_id for c in bundle.classes}
        gone_classes |= {i for sid, i in class_ids.items() if sid not in listed}
    for (class_id, student_id), _ in imported:
        if (class_id, student_id) in kept:
            continue
        if class_id in gone_classes or student_id in gone_students or (bulk and class_id in in_bundle):
            end(class_id, student_id)
    unnamed = {student_id for _, student_id in ended} - set(externals)
    for chunk in _chunks(unnamed):
        externals.update(
            session.execute(select(Student.id, Student.external_id).where(Student.id.in_(chunk))).all()
        )
    changes.enrolments_ended = [(_class_name(plan, class_sids[c]), externals[s]) for c, s in ended]
    if write:
        now = utcnow()
        if added:
            session.execute(ClassMembership.__table__.insert(), [{**row, "added_at": now} for row in added])
        for class_id, student_id in ended:
            session.execute(
                delete(ClassMembership).where(
                    ClassMembership.class_id == class_id, ClassMembership.student_id == student_id
                )
            )
    changes.enrolments_added.sort()
    changes.enrolments_ended.sort()


def summary_lines(changes: RosterChanges, *, shown: int = 20) -> list[str]:
    """``changes`` in words, a line each (the shell command prints them; the page shows the same lists)."""
    verb = "would be" if changes.dry_run else "were"
    lines = [f"OneRoster {changes.version} bundle" + (f", school org {changes.org}" if changes.org else "")]

    def listed(title: str, items: list[str]) -> None:
        lines.append(f"{title} {verb} {len(items)}" if items else f"{title}: none")
        lines.extend(f"  {item}" for item in items[:shown])
        if len(items) > shown:
            lines.append(f"  ... and {len(items) - shown} more")

    listed("Classes added", changes.classes_added)
    listed("Classes renamed", [f"{old} -> {new}" for old, new in changes.classes_renamed])
    listed(
        "Classes given another teacher", [f"{name}: {email}" for name, email in changes.classes_reassigned]
    )
    listed("Teachers added", changes.teachers_added)
    listed("Teachers matched by email", changes.teachers_linked)
    listed("Students added", changes.students_added)
    listed("Enrolments added", [f"{name}: {student}" for name, student in changes.enrolments_added])
    listed("Enrolments ended", [f"{name}: {student}" for name, student in changes.enrolments_ended])
    for what, count in changes.skipped.items():
        lines.append(f"Not taken: {count} {what}")
    return lines
