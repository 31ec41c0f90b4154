"""Schools, staff users, classes, enrollment, and signing in.

Passwords and personal codes are hashed with werkzeug's scrypt. Sign-in failures
never say which part was wrong (no user enumeration) and take about as long
whether or not the account exists. Failed attempts are throttled per client
address, and per address and account (``services/people/throttle.py``), never for the
account as a whole: nobody can lock the owner out. Hashing runs outside any
database transaction (on SQLite every transaction holds the write lock) and in
one of a few hashing slots per host.
"""

from __future__ import annotations

import csv
import io
import re
import secrets
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from functools import lru_cache

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from app.domain.access import Action, Principal, Role, ensure_allowed
from app.domain.errors import Conflict, DomainError, NotFound
from app.domain.external_ids import EXTERNAL_ID_RULE, clean_external_id
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
from app.observability.metrics import SIGN_IN_FAILURES
from app.services.people import throttle
from app.services.people.throttle import HashSlots, LoginPolicy
from app.services.tutoring.students import add_students

# Codes children type from a card: no 0/O, 1/I/L.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
JOIN_CODE_LENGTH = 8
LOGIN_PREFIX_LENGTH = 5
CODE_SECRET_LENGTH = 6
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 200
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
log = structlog.stdlib.get_logger(__name__)


class AccountError(DomainError):
    """An operator or form input that cannot be accepted; the message says why."""


class UnknownSchool(NotFound):
    kind = "school"


class UnknownStaffUser(NotFound):
    kind = "staff user"


@dataclass(frozen=True)
class SignedIn:
    principal: Principal
    session_id: str  # what the session cookie names (see load_session_principal)


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
            f"a password must be {MIN_PASSWORD_LENGTH} to {MAX_PASSWORD_LENGTH} characters long"
        )


def create_staff_user(
    session: Session, school: School, email: str, name: str, password: str, *, role: Role
) -> StaffUser:
    user = add_staff_user(session, school.id, email, name, password, role=role)
    session.commit()
    return user


def add_staff_user(
    session: Session, school_id: int, email: str, name: str, password: str, *, role: Role
) -> StaffUser:
    """A new teacher or admin, in the caller's transaction (flushed, not committed)."""
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
    user = StaffUser(
        school_id=school_id,
        email=email,
        name=name,
        role=role.value,
        password_hash=generate_password_hash(password),
    )
    session.add(user)
    session.flush()
    return user


def find_staff_user(session: Session, email: str) -> StaffUser:
    user: StaffUser | None = session.scalar(select(StaffUser).where(StaffUser.email == email.strip().lower()))
    if user is None:
        raise UnknownStaffUser(email)
    return user


def change_password(
    session: Session, principal: Principal, current: str, new: str, *, slots: HashSlots
) -> StaffUser:
    """Set a new password for the signed-in staff user; every other session ends. Commits."""
    ensure_allowed(principal, Action.CHANGE_PASSWORD)
    throttle.begin_read(session)
    user = session.get(StaffUser, int(principal.id))
    stored = user.password_hash if user is not None else _dummy_hash()
    session.commit()  # end the read (objects stay loaded): hash outside any transaction
    with slots.hold():
        if user is None or not check_password_hash(stored, current):
            raise AccountError("the current password is not correct")
        check_password_rules(new)
        new_hash = generate_password_hash(new)
    changed = session.execute(
        update(StaffUser)
        .where(StaffUser.id == user.id, StaffUser.password_hash == stored)
        .values(password_hash=new_hash, session_version=StaffUser.session_version + 1)
    )
    if getattr(changed, "rowcount", 1) != 1:  # changed meanwhile, in another session
        session.rollback()
        raise AccountError("the password was changed meanwhile in another session: sign in again")
    session.commit()
    refreshed = session.get(StaffUser, user.id, populate_existing=True)
    session.commit()
    assert refreshed is not None
    return refreshed


def sign_in_staff(
    session: Session, email: str, password: str, *, address: str, policy: LoginPolicy, slots: HashSlots
) -> SignedIn | None:
    """Who signs in when email and password match; else None (the same work whether or not the account
    exists). Raises SignInPaused (throttled, or every hashing slot busy) before checking anything."""
    email = email.strip().lower()
    account = throttle.staff_account(email)
    with slots.hold():
        throttle.admit(session, policy, address, account)
        throttle.begin_read(session)
        user: StaffUser | None = session.scalar(select(StaffUser).where(StaffUser.email == email))
        session.commit()  # end the read (objects stay loaded): hash outside any transaction
        right = check_password_hash(user.password_hash if user else _dummy_hash(), password)
    if user is None or not right:
        sign_in_failed(
            "staff", "wrong_credentials", throttle.log_key(policy, account), user.id if user else None
        )
        return None
    if user.deactivated_at is not None:  # the page says the same as for a wrong password
        sign_in_failed("staff", "deactivated", throttle.log_key(policy, account), user.id)
        return None
    session.execute(update(StaffUser).where(StaffUser.id == user.id).values(last_login_at=utcnow()))
    throttle.succeeded(session, policy, address, account)
    session.commit()
    log.info("sign_in.succeeded", kind="staff", staff_user_id=user.id)
    return SignedIn(staff_principal(user), staff_session_id(user))


def sign_in_failed(kind: str, reason: str, account: str | None, known_id: int | str | None = None) -> None:
    """Log and count a refused sign-in. Never the email, password or code: the account by its log key
    (``throttle.log_key``), and the staff user's or student's id when the email or the code's prefix named
    one (so an operator can follow one person's failures and the lockout they lead to)."""
    SIGN_IN_FAILURES.labels(kind, reason).inc()
    ids = {} if known_id is None else {"staff_user_id" if kind == "staff" else "student_id": known_id}
    log.info("sign_in.failed", kind=kind, reason=reason, account=account, **ids)


def end_sessions(session: Session, principal: Principal) -> None:
    """Sign-out: every session of this staff user or student ends, copies of the cookie included (their
    version is bumped, as a password change or a new personal code does). Commits."""
    if principal.role in (Role.TEACHER, Role.ADMIN):
        session.execute(
            update(StaffUser)
            .where(StaffUser.id == int(principal.id))
            .values(session_version=StaffUser.session_version + 1)
        )
    elif principal.role is Role.STUDENT:
        session.execute(
            update(StudentCredential)
            .where(StudentCredential.student_id == principal.id)
            .values(version=StudentCredential.version + 1)
        )
    session.commit()


# --- classes and enrollment --------------------------------------------------------------------


def create_class(session: Session, teacher: StaffUser, name: str) -> SchoolClass:
    klass = add_class(session, teacher, name)
    session.commit()
    return klass


def new_join_code(session: Session) -> str:
    """A join code no class has."""
    code = _random_code(JOIN_CODE_LENGTH)
    while session.scalar(select(SchoolClass.id).where(SchoolClass.join_code == code)) is not None:
        code = _random_code(JOIN_CODE_LENGTH)  # 31**8 codes: a clash is rare, two in a row rarer
    return code


def add_class(session: Session, teacher: StaffUser, name: str) -> SchoolClass:
    """A new class of ``teacher``, in the caller's transaction (flushed, not committed)."""
    name = name.strip()
    if not name or len(name) > 200:
        raise AccountError("a class name must be 1 to 200 characters")
    if (
        session.scalar(
            select(SchoolClass.id).where(SchoolClass.teacher_id == teacher.id, SchoolClass.name == name)
        )
        is not None
    ):
        raise Conflict(f"{teacher.email} already has a class called {name!r}")
    klass = SchoolClass(
        school_id=teacher.school_id, teacher_id=teacher.id, name=name, join_code=new_join_code(session)
    )
    session.add(klass)
    session.flush()
    return klass


def find_class_by_code(session: Session, join_code: str) -> SchoolClass:
    klass: SchoolClass | None = session.scalar(
        select(SchoolClass).where(SchoolClass.join_code == _normalise_code(join_code))
    )
    if klass is None:
        raise AccountError(f"no class has the join code {join_code!r}")
    if klass.archived_at is not None:
        raise AccountError(f"the class {klass.name!r} is archived")
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
        value = clean_external_id(row.get("external_id") or "")
        if value is None:
            problems.append(f"line {line}: external_id {EXTERNAL_ID_RULE}")
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


def enroll(
    session: Session, klass: SchoolClass, external_ids: Iterable[str], *, reissue: bool = False
) -> list[Enrollment]:
    """Add students (created when new) to a class and issue personal codes, all in one transaction.

    A student who already has a code keeps it unless ``reissue``.
    """
    results = enroll_in(session, klass, external_ids, reissue=reissue)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("another enrollment ran at the same time; run the command again") from None
    return results


def enroll_in(
    session: Session, klass: SchoolClass, external_ids: Iterable[str], *, reissue: bool = False
) -> list[Enrollment]:
    """``enroll`` in the caller's transaction (the caller commits, and turns an IntegrityError at the commit
    into a Conflict: another enrollment of the same students ran at the same time)."""
    ids = list(external_ids)
    existing = {
        s.external_id: s
        for s in session.scalars(
            select(Student).where(Student.school_id == klass.school_id, Student.external_id.in_(ids))
        )
    }
    members = set(
        session.scalars(select(ClassMembership.student_id).where(ClassMembership.class_id == klass.id))
    )
    taken_prefixes = set(session.scalars(select(StudentCredential.login_prefix)))
    results: list[Enrollment] = []
    for external_id in ids:
        student = existing.get(external_id)
        created = student is None
        if student is None:
            student = add_students(session, klass.school_id, [external_id])[0]
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
            credential.issued_at = utcnow()
        results.append(Enrollment(external_id, student.id, created, added, code))
    return results


def add_members(session: Session, class_id: int, student_ids: Collection[str]) -> set[str]:
    """Make these students members of the class, in the caller's transaction (the caller checks access and
    commits); returns those who were not members yet. Members already, including those a concurrent request
    has just added, are left as they are. Issues no personal code (``enroll`` does, for the web sign-in)."""
    if not student_ids:
        return set()
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    now = utcnow()
    added = session.scalars(
        insert(ClassMembership)
        .values([{"class_id": class_id, "student_id": sid, "added_at": now} for sid in student_ids])
        .on_conflict_do_nothing(index_elements=["class_id", "student_id"])
        .returning(ClassMembership.student_id)
    )
    return set(added)


def remove_member(session: Session, class_id: int, student_id: str) -> bool:
    """End the student's membership of the class, in the caller's transaction; False when they were not in
    it. The student, their data and their personal code stay."""
    removed = session.scalar(
        delete(ClassMembership)
        .where(ClassMembership.class_id == class_id, ClassMembership.student_id == student_id)
        .returning(ClassMembership.student_id)
    )
    return removed is not None


def _new_code(taken_prefixes: set[str]) -> tuple[str, str]:
    while True:
        prefix = _random_code(LOGIN_PREFIX_LENGTH)
        if prefix not in taken_prefixes:
            taken_prefixes.add(prefix)
            return f"{prefix}-{_random_code(CODE_SECRET_LENGTH)}", prefix


def _normalise_code(code: str) -> str:
    return re.sub(r"\s+", "", code).upper()


def sign_in_student(
    session: Session,
    join_code: str,
    personal_code: str,
    *,
    address: str,
    policy: LoginPolicy,
    slots: HashSlots,
) -> SignedIn | None:
    """The student when the personal code is theirs and they are in the class of ``join_code``; else None
    (the same hash work whatever was wrong). Raises SignInPaused before checking anything."""
    code = _normalise_code(personal_code)
    prefix, _, secret = code.partition("-")
    account = throttle.student_account(prefix)
    found = None
    in_class = False
    with slots.hold():
        throttle.admit(session, policy, address, account)
        throttle.begin_read(session)
        if len(prefix) == LOGIN_PREFIX_LENGTH and secret:
            found = session.execute(
                select(StudentCredential, Student)
                .join(Student, Student.id == StudentCredential.student_id)
                .where(StudentCredential.login_prefix == prefix)
            ).first()
        if found is not None:
            in_class = bool(
                session.scalar(
                    select(func.count())
                    .select_from(ClassMembership)
                    .join(SchoolClass, SchoolClass.id == ClassMembership.class_id)
                    .where(
                        SchoolClass.join_code == _normalise_code(join_code),
                        SchoolClass.archived_at.is_(None),
                        ClassMembership.student_id == found[1].id,
                    )
                )
            )
        session.commit()  # end the read (objects stay loaded): hash outside any transaction
        right = check_password_hash(found[0].code_hash if found else _dummy_hash(), code)
    if found is None or not right or not in_class:
        student_id = found[1].id if found is not None else None
        sign_in_failed("student", "wrong_credentials", throttle.log_key(policy, account), student_id)
        return None
    credential, student = found
    session.execute(
        update(StudentCredential)
        .where(StudentCredential.student_id == student.id)
        .values(last_login_at=utcnow())
    )
    throttle.succeeded(session, policy, address, account)
    session.commit()
    log.info("sign_in.succeeded", kind="student", student_id=student.id)
    return SignedIn(student_principal(student), student_session_id(student.id, credential.version))


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
    """The principal a session cookie names, or None when it ended (signed out, password or code changed)."""
    kind, _, rest = session_id.partition(":")
    key, _, version = rest.rpartition(":")
    if not version.isdigit():
        return None
    if kind == "staff" and key.isdigit():
        user = session.get(StaffUser, int(key))
        if user is not None and user.session_version == int(version) and user.deactivated_at is None:
            return staff_principal(user)
    elif kind == "student":
        row = session.execute(
            select(Student, StudentCredential.version)
            .join(StudentCredential, StudentCredential.student_id == Student.id)
            .where(Student.id == key)
        ).first()
        if row is not None and row[1] == int(version):
            return student_principal(row[0])
    return None


# --- people and classes made by LMS launches (services/integration/lti.py) -------------------------------
# In the caller's transaction (the launch commits once, or rolls everything back).

LMS_ONLY_PASSWORD = "!lms"  # not a werkzeug hash: check_password_hash is False for every password


def add_launched_teacher(session: Session, school_id: int, email: str, name: str) -> StaffUser:
    """A teacher who signs in only through their LMS (no password); ``email`` is a made-up unique address
    (``...@lms.invalid``), never theirs."""
    user = StaffUser(
        school_id=school_id,
        email=email,
        name=name[:200],
        role=Role.TEACHER.value,
        password_hash=LMS_ONLY_PASSWORD,
    )
    session.add(user)
    session.flush()
    return user


def add_launched_class(session: Session, teacher: StaffUser, name: str) -> SchoolClass:
    """A class for an LMS course, named after it (made unique for this teacher with a number)."""
    taken = set(session.scalars(select(SchoolClass.name).where(SchoolClass.teacher_id == teacher.id)))
    base, unique, n = name.strip()[:150] or "LMS course", name.strip()[:150] or "LMS course", 1
    while unique in taken:
        n += 1
        unique = f"{base} ({n})"
    code = _random_code(JOIN_CODE_LENGTH)
    while session.scalar(select(SchoolClass.id).where(SchoolClass.join_code == code)) is not None:
        code = _random_code(JOIN_CODE_LENGTH)
    klass = SchoolClass(school_id=teacher.school_id, teacher_id=teacher.id, name=unique, join_code=code)
    session.add(klass)
    session.flush()
    return klass


def add_launch_credential(session: Session, student_id: str) -> StudentCredential:
    """The credential row a student's web session names (``student:<id>:<version>``), for a student who
    signs in through their LMS: its personal code is random and never shown, so it signs nobody in."""
    taken = set(session.scalars(select(StudentCredential.login_prefix)))
    _, prefix = _new_code(taken)
    credential = StudentCredential(
        student_id=student_id,
        login_prefix=prefix,
        version=0,
        code_hash=generate_password_hash(secrets.token_hex(16)),
    )
    session.add(credential)
    session.flush()
    return credential


def launched_session(
    principal: Principal, user: StaffUser | None, credential: StudentCredential | None
) -> SignedIn:
    """What a launch signs in: the same session ids as a password or code sign-in."""
    if user is not None:
        return SignedIn(principal, staff_session_id(user))
    assert credential is not None
    return SignedIn(principal, student_session_id(credential.student_id, credential.version))
