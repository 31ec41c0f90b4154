"""Schools, staff users, classes, enrollment, and signing in.

Passwords and personal codes are hashed with werkzeug's scrypt. Sign-in failures
never say which part was wrong (no user enumeration) and take about as long
whether or not the account exists; after ``max_failures`` failures in a row the
account is locked for a while.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.domain.access import Action, Principal, Role, ensure_allowed
from app.domain.errors import Conflict, DomainError, NotFound
from app.models import (
    ClassMembership,
    LearningApp,
    School,
    SchoolClass,
    StaffUser,
    Student,
    StudentCredential,
    utcnow,
)

# Codes children type from a card: no 0/O, 1/I/L.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
JOIN_CODE_LENGTH = 8
LOGIN_PREFIX_LENGTH = 5
CODE_SECRET_LENGTH = 6
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 200
EXTERNAL_ID = re.compile(r"^[^\x00-\x1f\x7f]{1,200}$")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class AccountError(DomainError):
    """An operator or form input that cannot be accepted; the message says why."""


class UnknownSchool(NotFound):
    kind = "school"


class UnknownStaffUser(NotFound):
    kind = "staff user"


@dataclass(frozen=True)
class LoginPolicy:
    max_failures: int = 5
    lockout: timedelta = timedelta(minutes=15)


def _random_code(length: int) -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(length))


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # Checked against when there is no account, so a miss costs as much as a wrong password.
    return generate_password_hash(secrets.token_hex(16))


# --- schools ---------------------------------------------------------------------------------


def create_school(session: Session, name: str) -> tuple[School, bool]:
    """The school called ``name``, created if new. Returns (school, created); commits."""
    name = name.strip()
    if not name or len(name) > 200:
        raise AccountError("a school name must be 1 to 200 characters")
    existing = session.scalar(select(School).where(School.name == name))
    if existing is not None:
        return existing, False
    school = School(name=name)
    session.add(school)
    session.commit()
    return school, True


def resolve_school(session: Session, name: str | None) -> School:
    """The school called ``name``; without a name, the only school (an error if there are 0 or 2+)."""
    if name is not None:
        school: School | None = session.scalar(select(School).where(School.name == name.strip()))
        if school is None:
            raise UnknownSchool(name)
        return school
    schools = list(session.scalars(select(School).order_by(School.id).limit(2)))
    if not schools:
        raise AccountError("there is no school yet: create one with 'flask create-school NAME'")
    if len(schools) > 1:
        raise AccountError("there are several schools: say which one with --school NAME")
    return schools[0]


# --- staff -----------------------------------------------------------------------------------


def check_password_rules(password: str) -> None:
    if not MIN_PASSWORD_LENGTH <= len(password) <= MAX_PASSWORD_LENGTH:
        raise AccountError(
            f"a password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long")


def create_staff_user(
    session: Session, school: School, email: str, name: str, password: str, *, role: Role
) -> StaffUser:
    if role not in (Role.TEACHER, Role.ADMIN):
        raise AccountError("staff users are teachers or admins")
    email = email.strip().lower()
    if not EMAIL.match(email) or len(email) > 254:
        raise AccountError(f"{email!r} is not an email address")
    name = name.strip()
    if not name or len(name) > 200:
        raise AccountError("a name must be 1 to 200 characters")
    check_password_rules(password)
    if session.scalar(select(StaffUser.id).where(StaffUser.email == email)) is not None:
        raise Conflict(f"a staff user with email {email!r} already exists")
    user = StaffUser(school_id=school.id, email=email, name=name, role=role.value,
                     password_hash=generate_password_hash(password))
    session.add(user)
    session.commit()
    return user


def find_staff_user(session: Session, email: str) -> StaffUser:
    user: StaffUser | None = session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None:
        raise UnknownStaffUser(email)
    return user


def change_password(session: Session, principal: Principal, current: str, new: str) -> StaffUser:
    """Set a new password for the signed-in staff user; every other session ends. Commits."""
    ensure_allowed(principal, Action.CHANGE_PASSWORD)
    user = session.get(StaffUser, int(principal.id), with_for_update=True)
    if user is None or not check_password_hash(user.password_hash, current):
        raise AccountError("the current password is not correct")
    check_password_rules(new)
    user.password_hash = generate_password_hash(new)
    user.session_version += 1
    session.commit()
    return user


def verify_staff_login(session: Session, email: str, password: str, policy: LoginPolicy) -> StaffUser | None:
    """The user when email and password match and the account is not locked; else None."""
    user: StaffUser | None = session.scalar(
        select(StaffUser).where(StaffUser.email == email.strip().lower()).with_for_update())
    if user is None or _is_locked(user):
        _refuse(session, password)
        return None
    if not check_password_hash(user.password_hash, password):
        _count_failure(user, policy)
        session.commit()
        return None
    _count_success(user)
    session.commit()
    return user


def _is_locked(account: StaffUser | StudentCredential) -> bool:
    return account.locked_until is not None and account.locked_until > utcnow()


def _refuse(session: Session, secret: str) -> None:
    # The same hash work as a wrong password, so timing does not tell whether the account exists.
    check_password_hash(_dummy_hash(), secret)
    session.rollback()


def _count_success(account: StaffUser | StudentCredential) -> None:
    account.failed_logins = 0
    account.locked_until = None
    account.last_login_at = utcnow()


def _count_failure(account: StaffUser | StudentCredential, policy: LoginPolicy) -> None:
    account.failed_logins += 1
    if account.failed_logins >= policy.max_failures:
        account.locked_until = utcnow() + policy.lockout
        account.failed_logins = 0


# --- classes and enrollment --------------------------------------------------------------------


def create_class(session: Session, teacher: StaffUser, name: str) -> SchoolClass:
    name = name.strip()
    if not name or len(name) > 200:
        raise AccountError("a class name must be 1 to 200 characters")
    if session.scalar(select(SchoolClass.id).where(
            SchoolClass.teacher_id == teacher.id, SchoolClass.name == name)) is not None:
        raise Conflict(f"{teacher.email} already has a class called {name!r}")
    code = _random_code(JOIN_CODE_LENGTH)
    while session.scalar(select(SchoolClass.id).where(SchoolClass.join_code == code)) is not None:
        code = _random_code(JOIN_CODE_LENGTH)  # 31**8 codes: a clash is rare, two in a row rarer
    klass = SchoolClass(school_id=teacher.school_id, teacher_id=teacher.id, name=name, join_code=code)
    session.add(klass)
    session.commit()
    return klass


def find_class_by_code(session: Session, join_code: str) -> SchoolClass:
    klass: SchoolClass | None = session.scalar(
        select(SchoolClass).where(SchoolClass.join_code == _normalise_code(join_code)))
    if klass is None:
        raise AccountError(f"no class has the join code {join_code!r}")
    return klass


def read_roster(text: str) -> list[str]:
    """External ids from a roster CSV with an ``external_id`` column; every bad row is reported at once."""
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or "external_id" not in [f.strip() for f in reader.fieldnames]:
        raise AccountError("the roster CSV needs a header row with an 'external_id' column")
    reader.fieldnames = [f.strip() for f in reader.fieldnames]
    ids: list[str] = []
    problems: list[str] = []
    seen: dict[str, int] = {}
    for row in reader:
        line = reader.line_num
        value = (row.get("external_id") or "").strip()
        if not EXTERNAL_ID.match(value):
            problems.append(f"line {line}: external_id must be 1-200 printable characters")
        elif value in seen:
            problems.append(f"line {line}: {value!r} repeats line {seen[value]}")
        else:
            seen[value] = line
            ids.append(value)
    if problems:
        raise AccountError("the roster has bad rows, nothing was enrolled: " + "; ".join(problems))
    if not ids:
        raise AccountError("the roster lists no students")
    return ids


@dataclass(frozen=True)
class Enrollment:
    external_id: str
    student_id: str
    created: bool  # a new student
    added: bool  # newly added to the class
    code: str | None  # a newly issued personal code (shown once), else None


def enroll(session: Session, klass: SchoolClass, external_ids: Iterable[str], *,
           reissue: bool = False) -> list[Enrollment]:
    """Add students (created when new) to a class and issue personal codes, all in one transaction.

    A student who already has a code keeps it unless ``reissue``.
    """
    ids = list(external_ids)
    existing = {s.external_id: s for s in session.scalars(
        select(Student).where(Student.school_id == klass.school_id, Student.external_id.in_(ids)))}
    members = set(session.scalars(
        select(ClassMembership.student_id).where(ClassMembership.class_id == klass.id)))
    taken_prefixes = set(session.scalars(select(StudentCredential.login_prefix)))
    results: list[Enrollment] = []
    for external_id in ids:
        student = existing.get(external_id)
        created = student is None
        if student is None:
            student = Student(school_id=klass.school_id, external_id=external_id)
            session.add(student)
            session.flush()
        added = student.id not in members
        if added:
            session.add(ClassMembership(class_id=klass.id, student_id=student.id))
        credential = session.get(StudentCredential, student.id)
        code = None
        if credential is None or reissue:
            code, prefix = _new_code(taken_prefixes)
            if credential is None:
                credential = StudentCredential(student_id=student.id, login_prefix=prefix, version=0)
                session.add(credential)
            else:
                credential.login_prefix = prefix
                credential.version += 1
            credential.code_hash = generate_password_hash(code)
            credential.failed_logins = 0
            credential.locked_until = None
            credential.issued_at = utcnow()
        results.append(Enrollment(external_id, student.id, created, added, code))
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("another enrollment ran at the same time; run the command again") from None
    return results


def _new_code(taken_prefixes: set[str]) -> tuple[str, str]:
    while True:
        prefix = _random_code(LOGIN_PREFIX_LENGTH)
        if prefix not in taken_prefixes:
            taken_prefixes.add(prefix)
            return f"{prefix}-{_random_code(CODE_SECRET_LENGTH)}", prefix


def _normalise_code(code: str) -> str:
    return re.sub(r"\s+", "", code).upper()


def verify_student_login(
    session: Session, join_code: str, personal_code: str, policy: LoginPolicy
) -> tuple[Student, int] | None:
    """(student, credential version) when the code is theirs and they are in the class; else None."""
    code = _normalise_code(personal_code)
    prefix, _, secret = code.partition("-")
    credential = None
    if len(prefix) == LOGIN_PREFIX_LENGTH and secret:
        credential = session.scalar(
            select(StudentCredential).where(StudentCredential.login_prefix == prefix).with_for_update())
    if credential is None or _is_locked(credential):
        _refuse(session, code)
        return None
    in_class = session.scalar(
        select(func.count()).select_from(ClassMembership)
        .join(SchoolClass, SchoolClass.id == ClassMembership.class_id)
        .where(SchoolClass.join_code == _normalise_code(join_code),
               ClassMembership.student_id == credential.student_id))
    if not check_password_hash(credential.code_hash, code) or not in_class:
        _count_failure(credential, policy)
        session.commit()
        return None
    _count_success(credential)
    student = session.get(Student, credential.student_id)
    session.commit()
    assert student is not None  # the credential's foreign key guarantees it
    return student, credential.version


# --- sessions ------------------------------------------------------------------------------------


def staff_session_id(user: StaffUser) -> str:
    return f"staff:{user.id}:{user.session_version}"


def student_session_id(student_id: str, version: int) -> str:
    return f"student:{student_id}:{version}"


def staff_principal(user: StaffUser) -> Principal:
    return Principal(Role(user.role), str(user.id), user.school_id, user.name)


def student_principal(student: Student) -> Principal:
    return Principal(Role.STUDENT, student.id, student.school_id, student.external_id)


def app_principal(app: LearningApp) -> Principal:
    return Principal(Role.APP, str(app.id), app.school_id, app.name)


def load_session_principal(session: Session, session_id: str) -> Principal | None:
    """The principal a session cookie names, or None when it ended (password or code changed)."""
    kind, _, rest = session_id.partition(":")
    key, _, version = rest.rpartition(":")
    if not version.isdigit():
        return None
    if kind == "staff" and key.isdigit():
        user = session.get(StaffUser, int(key))
        if user is not None and user.session_version == int(version):
            return staff_principal(user)
    elif kind == "student":
        row = session.execute(
            select(Student, StudentCredential.version)
            .join(StudentCredential, StudentCredential.student_id == Student.id)
            .where(Student.id == key)).first()
        if row is not None and row[1] == int(version):
            return student_principal(row[0])
    return None
