"""Operator commands for schools, staff, classes, enrollment and keys: the README's set-up, for real."""

from __future__ import annotations

import csv
import io

import sqlalchemy as sa
from flask import Flask

from app.extensions import db
from app.models import ClassMembership, School, StaffUser, Student, StudentCredential
from tests.conftest import Actor


def invoke(runner, *args: str, input: str | None = None, env: dict[str, str] | None = None):
    return runner.invoke(args=list(args), input=input, env=env)


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def set_up_class(runner) -> str:
    assert invoke(runner, "create-school", "Hill School").exit_code == 0
    made = invoke(
        runner, "create-teacher", "T@Hill.test", "--name", "Ms T", env={"TUTOR_PASSWORD": "a long password"}
    )
    assert made.exit_code == 0 and "Created teacher t@hill.test" in made.output, made.output
    created = invoke(runner, "create-class", "Maths 7B", "--teacher", "t@hill.test")
    assert created.exit_code == 0, created.output
    return created.output.strip().splitlines()[-1]


def test_operator_sets_up_a_school_teacher_class_and_students(app: Flask, runner) -> None:
    first = invoke(runner, "create-school", "Hill School")
    assert first.output.startswith("Created school")
    join_code = set_up_class(runner)
    assert invoke(runner, "create-school", "Hill School").output.startswith("Already exists:")
    assert len(join_code) == 8 and join_code.isalnum()
    enrolled = invoke(runner, "enroll", join_code, "-", input="external_id\ns-01\ns-02\n")
    assert enrolled.exit_code == 0, enrolled.output
    rows = list(csv.DictReader(io.StringIO(enrolled.stdout)))
    assert [r["external_id"] for r in rows] == ["s-01", "s-02"]
    assert all(r["status"] == "new student" and len(r["personal_code"]) == 12 for r in rows)
    # A student signs in with the class code and the printed personal code.
    student = Actor("s-01", app.test_client())
    assert student.sign_in_student(join_code, rows[0]["personal_code"]).status_code == 302
    assert "Hello, s-01" in student.request("GET", "/me").get_data(as_text=True)
    # Running it again keeps the codes; --reissue makes new ones.
    same = list(
        csv.DictReader(
            io.StringIO(invoke(runner, "enroll", join_code, "-", input="external_id\ns-01\n").stdout)
        )
    )
    assert same == [{"external_id": "s-01", "personal_code": "(unchanged)", "status": "already in class"}]
    new = list(
        csv.DictReader(
            io.StringIO(
                invoke(runner, "enroll", join_code, "-", "--reissue", input="external_id\ns-01\n").stdout
            )
        )
    )
    assert new[0]["personal_code"] not in ("(unchanged)", rows[0]["personal_code"])
    # The teacher signs in with the password given to create-teacher.
    teacher = Actor("t", app.test_client())
    assert teacher.sign_in_staff("t@hill.test", "a long password").status_code == 302
    classes = teacher.request("GET", "/classes").get_data(as_text=True)
    assert "Maths 7B" in classes and "<td>2</td>" in classes
    with app.app_context():
        assert count(ClassMembership) == 2 and count(StudentCredential) == 2


def test_a_bad_roster_enrolls_nobody(app: Flask, runner) -> None:
    join_code = set_up_class(runner)
    bad = invoke(runner, "enroll", join_code, "-", input="external_id\ns-01\n\ns-01\n" + "x" * 201 + "\n")
    assert bad.exit_code == 1
    assert "line 4: 's-01' repeats line 2" in bad.output and "line 5: external_id must be" in bad.output
    no_column = invoke(runner, "enroll", join_code, "-", input="name\nAnna\n")
    assert no_column.exit_code == 1 and "needs a header row with an 'external_id' column" in no_column.output
    unknown_class = invoke(runner, "enroll", "NOPE1234", "-", input="external_id\ns\n")
    assert unknown_class.exit_code == 1 and "no class has the join code" in unknown_class.output
    with app.app_context():
        assert count(Student) == count(ClassMembership) == count(StudentCredential) == 0


def test_staff_and_class_commands_fail_clearly(app: Flask, runner) -> None:
    no_school = invoke(runner, "create-teacher", "x@y.test", "--name", "X", env={"TUTOR_PASSWORD": "p" * 12})
    assert no_school.exit_code == 1 and "there is no school yet" in no_school.output
    set_up_class(runner)
    duplicate = invoke(
        runner, "create-teacher", "t@hill.test", "--name", "Again", env={"TUTOR_PASSWORD": "p" * 12}
    )
    assert duplicate.exit_code == 1 and "already exists" in duplicate.output
    short = invoke(runner, "create-teacher", "u@hill.test", "--name", "U", env={"TUTOR_PASSWORD": "short"})
    assert short.exit_code == 1 and "a password must be 10 to 200 characters" in short.output
    not_email = invoke(runner, "create-teacher", "nope", "--name", "U", env={"TUTOR_PASSWORD": "p" * 12})
    assert not_email.exit_code == 1 and "is not an email address" in not_email.output
    prompted = invoke(
        runner,
        "create-teacher",
        "admin@hill.test",
        "--name",
        "Boss",
        "--admin",
        input="typed password\ntyped password\n",
    )
    assert prompted.exit_code == 0 and "Created admin admin@hill.test" in prompted.output
    same_class = invoke(runner, "create-class", "Maths 7B", "--teacher", "t@hill.test")
    assert same_class.exit_code == 1 and "already has a class called 'Maths 7B'" in same_class.output
    no_teacher = invoke(runner, "create-class", "Art", "--teacher", "ghost@hill.test")
    assert no_teacher.exit_code == 1 and "Unknown staff user" in no_teacher.output
    with app.app_context():
        assert count(StaffUser) == 2 and count(School) == 1
        admin = db.session.scalar(sa.select(StaffUser).where(StaffUser.role == "admin"))
        assert admin.password_hash.startswith("scrypt:") and "typed password" not in admin.password_hash


def test_revoke_api_key(app: Flask, runner, client) -> None:
    invoke(runner, "create-school", "Hill School")
    key = invoke(runner, "create-api-key", "quiz").output.strip().splitlines()[-1]
    app_actor = Actor("quiz", client, key)
    assert app_actor.request("GET", "/api/v1/skills").status_code == 200
    prefix = key.split("_")[1]
    revoked = invoke(runner, "revoke-api-key", prefix)
    assert revoked.exit_code == 0 and f"Revoked key {prefix}" in revoked.output
    assert app_actor.request("GET", "/api/v1/skills").status_code == 401
    unknown = invoke(runner, "revoke-api-key", "ffffffff")
    assert unknown.exit_code == 1 and "Unknown API key 'ffffffff'" in unknown.output
