"""The school administration services (services/people/school_admin.py) on both databases: each change is
what the CLI's services would do, is recorded in the change log in the same commit, reaches only the admin's
school, and a refused change writes nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy.orm import Session

from app.domain.access import Principal, Role
from app.domain.errors import Conflict, Forbidden, UnknownClass
from app.extensions import db
from app.models import AdminChange, ClassMembership, SchoolClass, StaffUser, Student
from app.services.people import accounts, apps, rosters, school_admin
from app.services.people.access import visible_classes
from app.services.people.accounts import AccountError, UnknownStaffUser
from app.sessions import hash_slots, login_policy
from tests.conftest import PASSWORD, World


@pytest.fixture
def session(app: Flask, world: World) -> Iterator[Session]:
    # After the world (its sign-ins are requests, which must not share this app context's g).
    with app.app_context():
        yield db.session()


def admin_of(session: Session, world: World) -> Principal:
    user = session.scalar(sa.select(StaffUser).where(StaffUser.email == "admin@north.test"))
    assert user is not None
    return accounts.staff_principal(user)


def staff_id(session: Session, email: str) -> int:
    found = session.scalar(sa.select(StaffUser.id).where(StaffUser.email == email))
    assert found is not None
    return found


def changes(session: Session) -> list[tuple[str, str, str]]:
    rows = session.execute(
        sa.select(AdminChange.actor, AdminChange.action, AdminChange.subject).order_by(AdminChange.id)
    ).all()
    session.commit()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def signs_in(session: Session, email: str, password: str) -> bool:
    return (
        accounts.sign_in_staff(
            session, email, password, address="192.0.2.1", policy=login_policy(), slots=hash_slots()
        )
        is not None
    )


def student_signs_in(session: Session, join_code: str, code: str) -> bool:
    return (
        accounts.sign_in_student(
            session, join_code, code, address="192.0.2.2", policy=login_policy(), slots=hash_slots()
        )
        is not None
    )


def test_an_added_teacher_signs_in_with_the_password_shown_once(session: Session, world: World) -> None:
    admin = admin_of(session, world)
    issued = school_admin.add_teacher(session, admin, " New@North.test ", "Nia New")
    assert issued.user.email == "new@north.test" and issued.user.role == "teacher"
    assert issued.user.school_id == world.north
    assert signs_in(session, "new@north.test", issued.password)
    assert changes(session) == [(admin.actor, "teacher added", "Nia New <new@north.test>")]

    with pytest.raises(Conflict):
        school_admin.add_teacher(session, admin, "new@north.test", "Again")
    session.rollback()
    with pytest.raises(AccountError, match="not an email"):
        school_admin.add_teacher(session, admin, "not-an-email", "Nobody")
    session.rollback()
    assert len(changes(session)) == 1  # the refused ones recorded nothing
    assert session.scalar(sa.select(sa.func.count()).select_from(StaffUser)) == 4


def test_a_deactivated_teacher_cannot_sign_in_and_their_session_ends(session: Session, world: World) -> None:
    admin = admin_of(session, world)
    teacher = session.get(StaffUser, staff_id(session, "a@north.test"))
    assert teacher is not None
    cookie = accounts.staff_session_id(teacher)
    assert accounts.load_session_principal(session, cookie) is not None

    school_admin.set_active(session, admin, teacher.id, active=False)
    assert not signs_in(session, "a@north.test", PASSWORD)
    assert accounts.load_session_principal(session, cookie) is None
    assert [r.active for r in school_admin.school_staff(session, admin) if r.email == "a@north.test"] == [
        False
    ]

    school_admin.set_active(session, admin, teacher.id, active=True)
    assert signs_in(session, "a@north.test", PASSWORD)
    assert [c[1] for c in changes(session)] == ["deactivated", "reactivated"]


def test_an_admin_cannot_lock_themself_out_nor_reach_another_school(session: Session, world: World) -> None:
    admin = admin_of(session, world)
    south_school = session.get(accounts.School, world.south)
    assert south_school is not None
    south_teacher = accounts.create_staff_user(
        session, south_school, "t@south.test", "South T", PASSWORD, role=Role.TEACHER
    )
    with pytest.raises(AccountError, match="yourself"):
        school_admin.set_active(session, admin, int(admin.id), active=False)
    with pytest.raises(AccountError, match="yourself"):
        school_admin.set_admin(session, admin, int(admin.id), admin=False)
    with pytest.raises(UnknownStaffUser):
        school_admin.set_active(session, admin, south_teacher.id, active=False)
    with pytest.raises(UnknownStaffUser):
        school_admin.reset_password(session, admin, south_teacher.id)
    teacher = accounts.staff_principal(session.get(StaffUser, staff_id(session, "a@north.test")))  # type: ignore[arg-type]
    with pytest.raises(Forbidden):
        school_admin.school_staff(session, teacher)
    with pytest.raises(Forbidden):
        school_admin.add_teacher(session, teacher, "x@north.test", "X")
    session.rollback()
    assert signs_in(session, "t@south.test", PASSWORD)
    assert changes(session) == []


def test_a_password_reset_ends_the_old_password_and_a_promotion_takes_effect(
    session: Session, world: World
) -> None:
    admin = admin_of(session, world)
    b = staff_id(session, "b@north.test")
    issued = school_admin.reset_password(session, admin, b)
    assert not signs_in(session, "b@north.test", PASSWORD)
    assert signs_in(session, "b@north.test", issued.password)

    school_admin.set_admin(session, admin, b, admin=True)
    user = session.get(StaffUser, b)
    assert user is not None
    principal = accounts.load_session_principal(session, accounts.staff_session_id(user))
    assert principal is not None and principal.role is Role.ADMIN
    assert [c[1] for c in changes(session)] == ["password reset", "made admin"]


def test_classes_created_given_to_another_teacher_and_archived(session: Session, world: World) -> None:
    admin = admin_of(session, world)
    a, b = staff_id(session, "a@north.test"), staff_id(session, "b@north.test")
    teacher_a = accounts.staff_principal(session.get(StaffUser, a))  # type: ignore[arg-type]
    teacher_b = accounts.staff_principal(session.get(StaffUser, b))  # type: ignore[arg-type]
    klass = school_admin.create_class(session, admin, "Maths 8", a)
    assert [c.name for c in rosters.class_summaries(session, teacher_a)] == ["Class A", "Maths 8"]

    school_admin.assign_teacher(session, admin, klass.id, b)
    assert [c.name for c in rosters.class_summaries(session, teacher_a)] == ["Class A"]
    assert [c.name for c in rosters.class_summaries(session, teacher_b)] == ["Class B", "Maths 8"]

    # Teacher B has a "Class B": giving them teacher A's class of that name would clash; nothing changes.
    clash = school_admin.create_class(session, admin, "Class B", a)
    with pytest.raises(Conflict, match="already has a class"):
        school_admin.assign_teacher(session, admin, clash.id, b)
    session.rollback()
    assert session.get(SchoolClass, clash.id).teacher_id == a  # type: ignore[union-attr]

    # Archived: gone from every list and scope (students' data stays), its code signs nobody in.
    assert student_signs_in(session, world.join_a, world.code_a)
    school_admin.archive_class(session, admin, world.class_a)
    assert "Class A" not in [c.name for c in rosters.class_summaries(session, teacher_a)]
    assert "Class A" not in [c.name for c in visible_classes(session, admin)]
    assert not student_signs_in(session, world.join_a, world.code_a)
    assert session.get(Student, world.student_a) is not None
    listed = {c.name: c.archived_at is not None for c in school_admin.school_classes(session, admin)}
    assert listed["Class A"] is True and listed["Maths 8"] is False
    with pytest.raises(AccountError, match="archived"):
        school_admin.assign_teacher(session, admin, world.class_a, b)
    with pytest.raises(AccountError, match="archived"):
        accounts.find_class_by_code(session, world.join_a)  # the CLI's enroll refuses it too
    assert [c[1] for c in changes(session)] == [
        "class created",
        "teacher changed",
        "class created",
        "class archived",
    ]


def test_a_new_join_code_retires_the_old_one(session: Session, world: World) -> None:
    admin = admin_of(session, world)
    old = world.join_a
    klass = school_admin.new_join_code(session, admin, world.class_a)
    assert klass.join_code != old
    assert not student_signs_in(session, old, world.code_a)
    assert student_signs_in(session, klass.join_code, world.code_a)
    with pytest.raises(UnknownClass):
        school_admin.new_join_code(session, admin, 10**6)


def test_a_roster_preview_writes_nothing_and_a_bad_row_is_named(session: Session, world: World) -> None:
    admin = admin_of(session, world)
    students = session.scalar(sa.select(sa.func.count()).select_from(Student))
    plan = school_admin.preview_roster(
        session, admin, world.class_a, "external_id\nstudent-a\nstudent-b\nnew-1\nnew-2\n", reissue=False
    )
    assert plan.new_students == ["new-1", "new-2"]
    assert plan.added == ["student-b"] and plan.already == ["student-a"]
    assert plan.codes_issued == 2  # student B keeps their code
    assert session.scalar(sa.select(sa.func.count()).select_from(Student)) == students
    with pytest.raises(AccountError, match=r"line 3: 'new-1' repeats line 2"):
        school_admin.enroll_roster(
            session, admin, world.class_a, "external_id\nnew-1\nnew-1\n", reissue=False
        )
    session.rollback()
    with pytest.raises(AccountError, match="line 3: external_id"):
        school_admin.preview_roster(session, admin, world.class_a, "external_id\nok-1\n  \n", reissue=False)
    session.rollback()
    assert session.scalar(sa.select(sa.func.count()).select_from(Student)) == students
    assert changes(session) == []

    slips = school_admin.enroll_roster(
        session, admin, world.class_a, "external_id\nstudent-a\nstudent-b\nnew-1\nnew-2\n", reissue=False
    )
    codes = {s.external_id: s.code for s in slips.slips}
    assert codes["student-a"] is None and codes["student-b"] is None
    assert codes["new-1"] and codes["new-2"]
    assert student_signs_in(session, world.join_a, codes["new-1"])
    members = session.scalar(
        sa.select(sa.func.count())
        .select_from(ClassMembership)
        .where(ClassMembership.class_id == world.class_a)
    )
    assert members == 4
    assert [c[1] for c in changes(session)] == ["roster enrolled"]


def test_reissued_personal_codes_replace_the_old_ones(session: Session, world: World) -> None:
    admin = admin_of(session, world)
    slips = school_admin.reissue_codes(session, admin, world.class_a)
    [slip] = slips.slips
    assert slip.external_id == "student-a" and slip.code and slip.code != world.code_a
    assert not student_signs_in(session, world.join_a, world.code_a)
    assert student_signs_in(session, world.join_a, slip.code)
    empty = school_admin.create_class(session, admin, "Empty", staff_id(session, "a@north.test"))
    with pytest.raises(AccountError, match="no students"):
        school_admin.reissue_codes(session, admin, empty.id)


def test_api_keys_issued_and_revoked_by_an_admin_are_recorded(session: Session, world: World) -> None:
    admin = admin_of(session, world)
    issued = apps.issue_api_key(session, admin, "Quiz app")
    apps.revoke_api_key(session, issued.prefix, by=admin)
    apps.revoke_api_key(session, issued.prefix, by=admin)  # again: nothing changes, nothing recorded
    assert changes(session) == [
        (admin.actor, "API key issued", "Quiz app"),
        (admin.actor, "API key revoked", "Quiz app"),
    ]
    assert [c.action for c in school_admin.recent_changes(session, admin)] == [
        "API key revoked",
        "API key issued",
    ]
