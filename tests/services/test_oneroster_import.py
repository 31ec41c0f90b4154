"""OneRoster imports through the service and ``flask import-oneroster``, on both databases: what a bundle
makes, that no student's name or email is stored, re-imports (renames, the same students, ended enrolments:
bulk, tobedeleted, delta), dry runs, and all or nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.domain.access import Principal, Role
from app.domain.oneroster import BundleProblems, Mode
from app.extensions import db
from app.models import AdminChange, ClassMembership, School, SchoolClass, StaffUser, Student
from app.services.people.accounts import add_members, create_school, create_staff_user
from app.services.people.oneroster import import_roster
from app.services.reporting import privacy
from app.services.tutoring.config import policy_config
from app.services.tutoring.students import add_students
from tests.services.oneroster_builder import Roster, hill_roster

NAMES = ("Ann", "Smith", "Bob", "Jones", "Brown", "home.example")


def admin_of(school: str) -> Principal:
    school_id = db.session.scalar(sa.select(School.id).where(School.name == school))
    return Principal(Role.ADMIN, "operator", school_id, "operator")


def counts() -> dict[str, int]:
    """Rows of every table but the content's."""
    return {
        table.name: db.session.scalar(sa.select(sa.func.count()).select_from(table)) or 0
        for table in db.metadata.sorted_tables
        if table.name
        not in ("skills", "skill_prerequisites", "exercises", "exercise_skills", "skill_parameters")
    }


def every_text() -> str:
    """Every text value the database holds (but the content's), to look for what must never be stored."""
    found = []
    for table in db.metadata.sorted_tables:
        columns = [c for c in table.columns if isinstance(c.type, sa.String | sa.Text)]
        if not columns or table.name in ("skills", "exercises"):
            continue
        for row in db.session.execute(sa.select(*columns)):
            found += [str(v) for v in row if v is not None]
    return "\n".join(found)


def roster_of_school() -> dict[str, Any]:
    classes = db.session.scalars(sa.select(SchoolClass).order_by(SchoolClass.sourced_id)).all()
    return {
        klass.name: (
            db.session.get(StaffUser, klass.teacher_id).email,
            sorted(
                db.session.scalars(
                    sa.select(Student.external_id)
                    .join(ClassMembership, ClassMembership.student_id == Student.id)
                    .where(ClassMembership.class_id == klass.id)
                )
            ),
        )
        for klass in classes
    }


@pytest.fixture
def hill(app: Flask) -> Any:
    with app.app_context():
        create_school(db.session(), "Hill School")
        yield admin_of("Hill School")


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_an_import_makes_classes_teachers_and_pseudonymous_students(
    app: Flask, hill: Principal, version: str
):
    data = hill_roster(version).bundle()
    before = counts()
    preview = import_roster(db.session(), hill, data, dry_run=True)
    assert counts() == before  # a dry run writes nothing
    assert preview.counts == {
        "classes_added": 2,
        "classes_renamed": 0,
        "classes_reassigned": 0,
        "teachers_added": 2,
        "teachers_linked": 0,
        "students_added": 3,
        "enrolments_added": 4,
        "enrolments_ended": 0,
    }
    assert preview.students_added == ["s-1", "s-2", "s-3"]
    assert preview.teachers_added == ["t.lee@hill.example", "m.kim@hill.example"]
    assert ("Maths 7B", "s-2") in preview.enrolments_added

    done = import_roster(db.session(), hill, data)
    assert done.counts == preview.counts and not done.dry_run
    assert roster_of_school() == {
        "Maths 7B": ("t.lee@hill.example", ["s-1", "s-2", "s-3"]),
        "Science 7B": ("m.kim@hill.example", ["s-1"]),
    }
    students = db.session.scalars(sa.select(Student).order_by(Student.external_id)).all()
    assert [(s.external_id, s.sourced_id) for s in students] == [
        ("s-1", "s-1"),
        ("s-2", "s-2"),
        ("s-3", "s-3"),
    ]
    teacher = db.session.scalar(sa.select(StaffUser).where(StaffUser.sourced_id == "t-kim"))
    assert (teacher.name, teacher.role, teacher.school_id) == ("Mia Kim", "teacher", hill.school_id)
    stored = every_text()
    assert not [name for name in NAMES if name in stored], "a student's name or email was stored"
    # Nothing more to do: the same bundle again changes nothing.
    assert not import_roster(db.session(), hill, data).changes_anything
    logged = db.session.execute(sa.select(AdminChange.action, AdminChange.detail)).all()
    assert logged == [  # the import, counted, once: the empty re-import is not a change
        ("OneRoster imported", "2 classes added, 2 teachers added, 3 students added, 4 enrolments added")
    ]


@pytest.mark.parametrize("version", ["1.1", "1.2"])
def test_a_reimport_renames_classes_keeps_students_and_ends_enrolments(
    app: Flask, hill: Principal, version: str
):
    roster = hill_roster(version)
    import_roster(db.session(), hill, roster.bundle())
    ids = dict(db.session.execute(sa.select(Student.external_id, Student.id)).all())
    klass = db.session.scalar(sa.select(SchoolClass).where(SchoolClass.sourced_id == "k-maths"))
    # A teacher adds a student by hand: an import never ends that membership.
    [made] = add_students(db.session(), hill.school_id, ["hand"])
    hand = made.id
    add_members(db.session(), klass.id, [hand])
    db.session.commit()

    roster.klass("k-maths", "Maths 7B (set 1)").unenrol("k-maths", "s-2").student("s-4", "Dee", "Brown")
    roster.enrol("k-science", "s-4")
    changes = import_roster(db.session(), hill, roster.bundle())
    assert changes.classes_renamed == [("Maths 7B", "Maths 7B (set 1)")]
    assert changes.enrolments_ended == [("Maths 7B (set 1)", "s-2")]
    assert changes.students_added == ["s-4"] and changes.enrolments_added == [("Science 7B", "s-4")]
    db.session.expire_all()
    assert db.session.get(SchoolClass, klass.id).name == "Maths 7B (set 1)"  # the same class, renamed
    assert dict(db.session.execute(sa.select(Student.external_id, Student.id)).all()) == {
        **ids,
        "hand": hand,
        "s-4": db.session.scalar(sa.select(Student.id).where(Student.external_id == "s-4")),
    }  # the same students: s-2 left the class and is still there
    assert roster_of_school()["Maths 7B (set 1)"][1] == ["hand", "s-1", "s-3"]

    # A delta: the enrollment of s-3 is to be deleted, and so is student s-1 (their data stays).
    delta = Roster(version).klass("k-maths", "Maths 7B (set 1)").teacher("t-lee", "t.lee@hill.example")
    delta.student("s-3").student("s-1", status="tobedeleted").enrol("k-maths", "s-3", status="tobedeleted")
    delta.enrollments["enr-k-maths-s-3"] = ("k-maths", "s-3", "student", "", "tobedeleted")
    changes = import_roster(db.session(), hill, delta.bundle(Mode.DELTA, ("users", "roles", "enrollments")))
    assert changes.enrolments_ended == [
        ("Maths 7B (set 1)", "s-1"),
        ("Maths 7B (set 1)", "s-3"),
        ("Science 7B", "s-1"),
    ]
    assert not changes.students_added and not changes.classes_added
    assert roster_of_school() == {
        "Maths 7B (set 1)": ("t.lee@hill.example", ["hand"]),
        "Science 7B": ("m.kim@hill.example", ["s-4"]),
    }
    assert db.session.get(Student, ids["s-1"]) is not None  # ended enrolments, never deleted students

    # A class to be deleted ends its imported enrolments; the class and its hand-made member stay.
    gone = Roster(version).klass("k-science", "Science 7B", status="tobedeleted")
    changes = import_roster(db.session(), hill, gone.bundle(Mode.DELTA, ("classes",)))
    assert changes.enrolments_ended == [("Science 7B", "s-4")]
    assert roster_of_school()["Science 7B"] == ("m.kim@hill.example", [])


def test_existing_staff_are_matched_by_email_and_other_schools_are_refused(app: Flask, hill: Principal):
    hill_school = db.session.get(School, hill.school_id)
    other, _ = create_school(db.session(), "Dale School")
    create_staff_user(
        db.session(), hill_school, "t.lee@hill.example", "Mr Lee", "a password 123", role=Role.TEACHER
    )
    create_staff_user(
        db.session(), other, "m.kim@hill.example", "Ms Kim", "a password 123", role=Role.TEACHER
    )
    data = hill_roster().bundle()
    before = counts()
    with pytest.raises(BundleProblems) as caught:
        import_roster(db.session(), hill, data)
    assert [str(p) for p in caught.value.problems] == [
        "classes.csv:3: class 'k-science' has no teacher here (no enrollment with role teacher of a "
        "teacher of this school)",
        "users.csv:3: email 'm.kim@hill.example' is the login of a staff user of another school",
    ]
    assert counts() == before
    roster = hill_roster().teacher("t-kim", "mia.kim@hill.example", "Mia", "Kim")
    changes = import_roster(db.session(), hill, roster.bundle())
    assert changes.teachers_linked == ["t.lee@hill.example"] and changes.teachers_added == [
        "mia.kim@hill.example"
    ]
    lee = db.session.scalar(sa.select(StaffUser).where(StaffUser.email == "t.lee@hill.example"))
    assert (lee.sourced_id, lee.name) == ("t-lee", "Mr Lee")  # matched, and otherwise left as it was


def test_one_bad_row_refuses_the_whole_bundle(app: Flask, hill: Principal):
    import_roster(db.session(), hill, hill_roster().bundle())
    before, stored = counts(), roster_of_school()
    roster = hill_roster().klass("k-maths", "Maths 7B renamed").klass("k-art", "Art")
    roster.student("ann@home.example").enrol("k-maths", "ann@home.example")  # a sourcedId that is an email
    roster.enrollments["enr-x"] = ("k-missing", "s-1", "student", "", "")
    with pytest.raises(BundleProblems) as caught:
        import_roster(db.session(), hill, roster.bundle())
    assert [str(p) for p in caught.value.problems] == [
        "enrollments.csv:9: unknown reference classSourcedId 'k-missing' (not in classes.csv)",
    ]
    del roster.enrollments["enr-x"]
    with pytest.raises(BundleProblems) as caught:
        import_roster(db.session(), hill, roster.bundle())
    assert [str(p) for p in caught.value.problems] == [
        "classes.csv:4: class 'k-art' has no teacher here (no enrollment with role teacher of a teacher "
        "of this school)",
        "users.csv:7: a student's sourcedId is their external id here, and it looks like an email: it "
        "must be pseudonymous",
    ]
    assert counts() == before and roster_of_school() == stored  # the rename did not happen either


def test_the_school_org_is_the_only_one_or_the_one_named(app: Flask, hill: Principal):
    roster = hill_roster()
    roster.orgs["org-dale"] = ("Dale School", "school")
    roster.klass("k-dale", "Dale maths", org="org-dale").teacher("t-dale", "d@dale.example", org="org-dale")
    roster.enrol("k-dale", "t-dale")
    data = roster.bundle()
    with pytest.raises(BundleProblems, match="several school orgs"):
        import_roster(db.session(), hill, data, dry_run=True)
    with pytest.raises(BundleProblems, match="no org has the sourcedId 'org-nope'"):
        import_roster(db.session(), hill, data, org="org-nope", dry_run=True)
    changes = import_roster(db.session(), hill, data, org="org-hill")
    assert sorted(changes.classes_added) == ["Maths 7B", "Science 7B"]
    assert "d@dale.example" not in changes.teachers_added
    assert changes.skipped == {
        "classes of other orgs": 1,
        "enrollments in classes of other orgs": 1,
        "users of other orgs": 1,
    }


def test_the_command_lists_every_problem_and_writes_nothing(
    app: Flask, hill: Principal, runner, tmp_path: Path
):
    good, bad = tmp_path / "good.zip", tmp_path / "bad.zip"
    good.write_bytes(hill_roster().bundle())
    roster = hill_roster()
    roster.enrollments["enr-x"] = ("k-maths", "s-missing", "student", "", "")
    roster.users["t-kim"] = ("teacher", "Mia", "Kim", "", "")  # no email: no login
    bad.write_bytes(roster.bundle())
    before = counts()
    result = runner.invoke(args=["import-oneroster", str(bad)])
    assert result.exit_code != 0
    assert (
        "enrollments.csv:8: unknown reference userSourcedId 's-missing' (not in users.csv)" in result.output
    )
    assert "1 problem(s) in" in result.output and "nothing was imported" in result.output
    # The file's own problems first; then those only the school's data shows.
    del roster.enrollments["enr-x"]
    bad.write_bytes(roster.bundle())
    result = runner.invoke(args=["import-oneroster", str(bad)])
    assert result.exit_code != 0
    assert "users.csv:3: teacher 't-kim' has no email (their login here)" in result.output
    result = runner.invoke(args=["import-oneroster", str(good), "--dry-run", "--school", "Hill School"])
    assert result.exit_code == 0, result.output
    assert "Students added would be 3" in result.output and "  s-2" in result.output
    assert counts() == before
    result = runner.invoke(args=["import-oneroster", str(good)])
    assert result.exit_code == 0, result.output
    assert "Classes added were 2" in result.output
    assert roster_of_school()["Science 7B"] == ("m.kim@hill.example", ["s-1"])
    result = runner.invoke(args=["import-oneroster", str(tmp_path / "missing.zip")])
    assert result.exit_code != 0 and "cannot read" in result.output


def test_what_an_import_stores_about_a_student_is_exported_and_deleted_with_them(app: Flask, hill: Principal):
    import_roster(db.session(), hill, hill_roster().bundle())
    student = db.session.scalar(sa.select(Student).where(Student.sourced_id == "s-1"))
    policy = policy_config()
    export = privacy.export_student(
        db.session(),
        hill,
        student.id,
        threshold=policy.mastery_threshold,
        target_success=policy.target_success,
    ).as_json()
    assert export["profile"]["oneroster_sourced_id"] == "s-1"
    assert sorted(c["oneroster_enrollment_sourced_id"] for c in export["classes"]) == [
        "enr-k-maths-s-1",
        "enr-k-science-s-1",
    ]
    privacy.delete_student(db.session(), student.id, by=hill, actor="admin:operator")
    assert (
        db.session.scalar(
            sa.select(sa.func.count())
            .select_from(ClassMembership)
            .where(ClassMembership.student_id == student.id)
        )
        == 0
    )
    assert "s-1" not in every_text()


def test_a_reimport_leaves_a_class_archived_here_as_it_is(app: Flask, hill: Principal):
    """An admin archived a class; the next roster still lists it, with a new student: the class is not
    renamed, nobody joins it, and the counts say why (the student's other classes still change)."""
    from app.services.people.school_admin import archive_class

    roster = hill_roster("1.2")
    import_roster(db.session(), hill, roster.bundle())
    maths = db.session.scalar(sa.select(SchoolClass).where(SchoolClass.sourced_id == "k-maths"))
    before = roster_of_school()["Maths 7B"]
    archive_class(db.session(), hill, maths.id)

    roster.klass("k-maths", "Maths 7B (renamed)").student("s-9", "Zed", "Brown").enrol("k-maths", "s-9")
    roster.enrol("k-science", "s-9")
    changes = import_roster(db.session(), hill, roster.bundle())
    assert changes.classes_renamed == []
    assert changes.enrolments_added == [("Science 7B", "s-9")]
    assert changes.skipped["classes archived here (left as they are, with their enrolments)"] == 1
    assert changes.skipped["enrollments in classes archived here"] >= 1
    db.session.expire_all()
    kept = db.session.get(SchoolClass, maths.id)
    assert kept.name == "Maths 7B" and kept.archived_at is not None
    assert roster_of_school()["Maths 7B"] == before
