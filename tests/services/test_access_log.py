"""Lookups only read; the service a page or an API call makes records the access once, in its transaction."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, Role
from app.domain.errors import UnknownStudent
from app.extensions import db
from app.models import AccessLogEntry, StaffUser
from app.services.people.access import find_student
from tests.conftest import World


@contextmanager
def counted_commits() -> Iterator[list[Session]]:
    """Every commit of any session meanwhile (the request's, the test's)."""
    commits: list[Session] = []

    def seen(session: Session) -> None:
        commits.append(session)

    event.listen(Session, "after_commit", seen)
    try:
        yield commits
    finally:
        event.remove(Session, "after_commit", seen)


@contextmanager
def counted_writes(app: Flask) -> Iterator[list[str]]:
    """The statements that are not SELECTs (nor BEGIN/COMMIT) sent meanwhile."""
    writes: list[str] = []

    def seen(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        verb = statement.split()[0].upper()
        if verb not in ("SELECT", "BEGIN", "COMMIT", "ROLLBACK", "PRAGMA", "SAVEPOINT", "RELEASE"):
            writes.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", seen)
    try:
        yield writes
    finally:
        event.remove(engine, "before_cursor_execute", seen)


def access_rows(app: Flask, student_id: str) -> list[tuple[str, str]]:
    with app.app_context():
        return [
            (actor.split(":")[0], what)
            for actor, what in db.session.execute(
                sa.select(AccessLogEntry.actor, AccessLogEntry.what)
                .where(AccessLogEntry.student_id == student_id)
                .order_by(AccessLogEntry.id)
            )
        ]


def teacher_a(world: World) -> Principal:
    teacher = db.session.scalars(sa.select(StaffUser).where(StaffUser.email == "a@north.test")).one()
    return Principal(Role.TEACHER, str(teacher.id), world.north, teacher.name)


def test_find_student_reads_and_never_writes_or_commits(app: Flask, world: World) -> None:
    with app.app_context():
        principal = teacher_a(world)
        session = db.session()
        session.commit()  # start clean: nothing pending, no open transaction
        with counted_commits() as commits, counted_writes(app) as writes:
            found = find_student(session, principal, world.student_a, Action.READ_STUDENT).id
            with pytest.raises(UnknownStudent):  # another teacher's student: not found, and nothing written
                find_student(session, principal, world.student_b, Action.READ_STUDENT)
            locked = find_student(
                session, principal, world.student_a, Action.SET_PERSONALIZATION, lock=True
            ).id
            assert not (session.new or session.dirty or session.deleted)
        session.rollback()
    assert found == locked == world.student_a
    assert commits == [] and writes == []
    assert access_rows(app, world.student_a) == []


def test_a_teacher_page_of_a_student_is_one_access_and_one_commit(app: Flask, world: World) -> None:
    """The page shows the report, the mastery history and the recommendations: before, each read logged and
    committed on its own (three rows, three commits)."""
    teacher = world.actors["teacher_a"]
    with counted_commits() as commits:
        page = teacher.request("GET", f"/students/{world.student_a}")
    assert page.status_code == 200
    assert access_rows(app, world.student_a) == [("teacher", "student page")]
    assert len(commits) == 1


@pytest.mark.parametrize(
    ("path", "what"),
    [
        ("", "profile"),
        ("/progress", "progress"),
        ("/report", "report"),
        ("/recommendations", "recommendations"),
        ("/export", "export"),
    ],
)
def test_each_api_read_of_a_student_is_one_access_and_one_commit(
    app: Flask, world: World, path: str, what: str
) -> None:
    app1 = world.actors["app1"]
    # A key notes when it was last used (at most once a minute, in a commit of its own): done here first.
    assert app1.request("GET", "/api/v1/skills").status_code == 200
    with counted_commits() as commits:
        response = app1.request("GET", f"/api/v1/students/{world.student_a}{path}")
    assert response.status_code == 200, response.get_json()
    assert access_rows(app, world.student_a) == [("app", what)]
    assert len(commits) == 1


def test_a_class_report_logs_each_member_once_in_one_commit(app: Flask, world: World) -> None:
    teacher = world.actors["teacher_a"]
    with counted_commits() as commits:
        assert teacher.request("GET", f"/api/v1/classes/{world.class_a}/report").status_code == 200
        assert teacher.request("GET", f"/api/v1/classes/{world.class_a}").status_code == 200
    assert access_rows(app, world.student_a) == [("teacher", "class report"), ("teacher", "class roster")]
    assert len(commits) == 2


def test_a_refused_read_logs_nothing(app: Flask, world: World) -> None:
    other = world.actors["teacher_other"]
    assert other.request("GET", f"/students/{world.student_a}").status_code == 404
    assert other.request("GET", f"/api/v1/students/{world.student_a}/progress").status_code == 404
    assert access_rows(app, world.student_a) == []


def test_students_reading_their_own_data_log_nothing(app: Flask, world: World) -> None:
    student = world.actors["student_a"]
    for url in ("/me", f"/api/v1/students/{world.student_a}/progress", f"/api/v1/students/{world.student_a}"):
        assert student.request("GET", url).status_code == 200, url
    assert access_rows(app, world.student_a) == []
