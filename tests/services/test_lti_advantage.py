"""LTI Advantage's services against the real platform (tests/web/lti_platform.py served over HTTP), without a
browser: what is sent and what is not (a refusal is kept and not retried, no score scope, a student who left
the class), who may sync a class, that the answer hook reads nothing for a student who is not from an LMS,
the deep linking request's refusals, and that old grade-send jobs are forgotten."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from sqlalchemy import event

from app.domain.access import Principal, Role
from app.domain.errors import Conflict, Forbidden, InvalidInput, UnknownClass
from app.domain.lti import AGS_SCORE_SCOPE, DeepLinkRequest
from app.extensions import db
from app.models import (
    ClassMembership,
    Job,
    LtiContext,
    LtiPlatform,
    LtiResourceLink,
    LtiScore,
    School,
    StaffUser,
    Student,
    utcnow,
)
from app.services.integration import lti, lti_deep_linking, lti_grades, lti_roster
from app.services.integration.lti_services import Connector, PlatformUnavailable
from app.services.operations.jobs import forget_finished, lms_principal
from app.services.people.accounts import (
    create_class,
    create_staff_user,
    enroll,
    staff_principal,
    student_principal,
)
from tests.conftest import PASSWORD, ApiClient, issue_key, serve
from tests.web.lti_platform import CLIENT_ID, DEPLOYMENT_ID, LEARNER, Platform, User, platform_app

SUB = "lms-user-77"


@dataclass
class Course:
    lms: Platform
    platform_id: int
    school_id: int
    class_id: int
    student_id: str
    api: ApiClient
    teacher: Principal
    other_teacher: Principal


@pytest.fixture
def course(app: Flask, live_server: str, school: str) -> Iterator[Course]:
    """The platform, served and registered; a course's class with one learner (made as a launch makes
    them) and one graded link (the whole curriculum) of which they have a score row."""
    Connector._tokens.clear()  # noqa: SLF001 - no token of an earlier test's platform
    lms = Platform(tool_base=live_server)
    lms.users["ada"] = User(SUB, [LEARNER], "Ada Lovelace", "ada@example.edu")
    with serve(platform_app(lms)) as url, app.app_context():
        lms.base = url.replace("127.0.0.1", "localhost")
        session = db.session()
        tenant = session.scalar(sa.select(School).where(School.name == school))
        assert tenant is not None
        platform = lti.register_platform(
            session,
            None,
            tenant.id,
            lti.PlatformForm(
                name="Test LMS",
                issuer=lms.issuer,
                client_id=CLIENT_ID,
                auth_login_url=f"{lms.base}/authorize",
                auth_token_url=f"{lms.base}/token",
                key_set_url=f"{lms.base}/jwks",
                key_set=None,
                deployment_ids=[DEPLOYMENT_ID],
            ),
        )
        teacher = create_staff_user(session, tenant, "t@hill.test", "T", PASSWORD, role=Role.TEACHER)
        other = create_staff_user(session, tenant, "o@hill.test", "O", PASSWORD, role=Role.TEACHER)
        klass = create_class(session, teacher, "Algebra")
        student, _ = lti.learner(session, platform, SUB)
        session.add(ClassMembership(class_id=klass.id, student_id=student.id))
        context = LtiContext(
            platform_id=platform.id,
            context_id=lms.course["id"],
            class_id=klass.id,
            ags_scopes=[AGS_SCORE_SCOPE],
            context_memberships_url=f"{lms.base}/nrps/{lms.course['id']}/memberships",
        )
        session.add(context)
        session.flush()
        link = LtiResourceLink(
            context_id=context.id, resource_link_id="link-1", lineitem_url=lms.lineitem_url("1")
        )
        session.add(link)
        session.flush()
        assert lti_grades.open_score(session, link.id, student.id)
        session.commit()
        built = Course(
            lms,
            platform.id,
            tenant.id,
            klass.id,
            student.id,
            ApiClient(app.test_client(), issue_key(app, "app", school)),
            staff_principal(teacher),
            staff_principal(other),
        )
        yield built


def answer(course: Course, shipped_graph: Any, n: int) -> None:
    exercise = next(iter(shipped_graph.exercises))
    sent = course.api.post(
        f"/api/v1/students/{course.student_id}/responses",
        json={"exercise_id": exercise, "correct": True, "client_response_id": f"r-{n}"},
    )
    assert sent.status_code == 201, sent.get_json()


def send(course: Course) -> dict[str, int]:
    sent = lti_grades.send_scores(db.session(), lms_principal(course.school_id), course.platform_id)
    return {k: v for k, v in sent.items() if v}


def row() -> LtiScore:
    found = db.session.scalar(sa.select(LtiScore))
    assert found is not None
    db.session.refresh(found)
    return found


def test_a_score_goes_once_and_a_refusal_is_kept_not_retried(
    app: Flask, course: Course, shipped_graph: Any
) -> None:
    with app.app_context():
        assert send(course) == {"not_started": 1}  # launched, nothing practised
        answer(course, shipped_graph, 1)  # through the API: the hook bumps the row
        assert row().changes == 2 and row().handled == 1
        assert send(course) == {"sent": 1}
        [score] = course.lms.scores
        assert score["userId"] == SUB and score["activityProgress"] == "InProgress"
        assert send(course) == {}  # nothing due
        answer(course, shipped_graph, 2)
        assert send(course) == {"unchanged": 1}  # the same state: not sent again
        assert len(course.lms.scores) == 1

        # The LMS deleted the line item: a 404 is the request's fault, kept, not retried.
        item = course.lms.lineitems.pop("1")
        db.session.execute(sa.update(LtiScore).values(score_given=None))  # a state the platform lacks
        db.session.commit()
        answer(course, shipped_graph, 3)
        assert send(course) == {"refused": 1}
        refused = row()
        assert "HTTP 404" in (refused.last_error or "") and refused.next_attempt_at is None
        assert refused.changes == refused.handled and refused.attempts == 0
        assert lti_grades.queue_due_sends() == []  # nothing due: not retried
        course.lms.lineitems["1"] = item
        answer(course, shipped_graph, 4)  # a new change: tried again
        assert send(course) == {"sent": 1}
        assert row().last_error is None and len(course.lms.scores) == 2


def test_no_score_goes_without_the_score_scope_or_to_a_student_who_left(
    app: Flask, course: Course, shipped_graph: Any
) -> None:
    with app.app_context():
        answer(course, shipped_graph, 1)
        db.session.execute(sa.update(LtiContext).values(ags_scopes=["lineitem.readonly"]))
        db.session.commit()
        assert send(course) == {"refused": 1}
        assert "did not grant the tool the AGS score scope" in (row().last_error or "")
        db.session.execute(sa.update(LtiContext).values(ags_scopes=[AGS_SCORE_SCOPE]))
        db.session.execute(sa.delete(ClassMembership))
        db.session.commit()
        answer(course, shipped_graph, 2)
        assert send(course) == {"not_graded": 1}
        assert course.lms.scores == []


def test_only_the_class_s_teacher_or_an_admin_syncs_it(app: Flask, course: Course) -> None:
    with app.app_context():
        session = db.session()
        for call in (lti_roster.queue_sync, lti_grades.resend_class):
            with pytest.raises(UnknownClass):
                call(session, course.other_teacher, course.class_id)
            session.rollback()
            student = session.get(Student, course.student_id)
            assert student is not None
            with pytest.raises(Forbidden):
                call(session, student_principal(student), course.class_id)
            session.rollback()
        job = lti_roster.queue_sync(session, course.teacher, course.class_id)
        assert job.created_by == course.teacher.actor and job.kind == "lti_roster_sync"
        assert lti_roster.queue_sync(session, course.teacher, course.class_id).id == job.id  # the same job
        assert lti_grades.resend_class(session, course.teacher, course.class_id) == 1
        # The sync itself, as the teacher: the list (every user, active) keeps the learner.
        context = session.scalar(sa.select(LtiContext))
        assert context is not None
        result = lti_roster.sync_roster(session, course.teacher, context.id)
        assert result["kept"] == 1 and result["ended"] == 0 and result["new_students"] == 0
        # The platform down: a clear error, nothing written.
        course.lms.down = True
        with pytest.raises(PlatformUnavailable, match="HTTP 503"):
            lti_roster.sync_roster(session, course.teacher, context.id)


def test_the_answer_hook_reads_nothing_for_a_student_who_is_not_from_an_lms(
    app: Flask, course: Course
) -> None:
    with app.app_context():
        teacher = db.session.get(StaffUser, int(course.teacher.id))
        assert teacher is not None
        klass = create_class(db.session(), teacher, "Plain class")
        [enrolled] = enroll(db.session(), klass, ["plain-1"])
        student = db.session.get(Student, enrolled.student_id)
        assert student is not None
        statements: list[str] = []

        def record(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            lti_grades.answer_recorded(db.session(), student)
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        assert statements == []


def test_a_deep_linking_request_is_answered_once_by_its_instructor_in_time(
    app: Flask, course: Course
) -> None:
    with app.app_context():
        session = db.session()
        platform = session.get(LtiPlatform, course.platform_id)
        context = session.scalar(sa.select(LtiContext))
        teacher = session.get(StaffUser, int(course.teacher.id))
        assert platform is not None and context is not None and teacher is not None
        request = DeepLinkRequest(
            sub="t-1",
            context_id=context.context_id,
            context_title="Algebra",
            deployment_id=DEPLOYMENT_ID,
            return_url=f"{course.lms.base}/deep-link-return",
            data=None,
            name=None,
        )
        token = lti_deep_linking.open_request(session, platform, context, teacher, request)
        session.commit()
        with pytest.raises(lti_deep_linking.UnknownDeepLink):
            lti_deep_linking.request_page(session, course.other_teacher, token)
        page = lti_deep_linking.request_page(session, course.teacher, token)
        assert page.course == "Algebra" and page.whole.target == "curriculum"
        url = "https://tutor.test/lti/launch"
        with pytest.raises(InvalidInput, match="names no unit or skill"):
            lti_deep_linking.answer_request(session, course.teacher, token, "skill:nope", launch_url=url)
        with pytest.raises(InvalidInput):
            lti_deep_linking.answer_request(session, course.teacher, token, "lesson:1", launch_url=url)
        answer = lti_deep_linking.answer_request(
            session, course.teacher, token, "unit:Decimals", launch_url=url
        )
        assert (
            answer.return_origin == course.lms.base
            and answer.title == "Decimals"
            and answer.jwt.count(".") == 2
        )
        with pytest.raises(Conflict):
            lti_deep_linking.answer_request(session, course.teacher, token, "curriculum", launch_url=url)
        late = lti_deep_linking.open_request(session, platform, context, teacher, request)
        session.commit()
        session.execute(
            sa.update(lti_deep_linking.LtiDeepLink)
            .where(lti_deep_linking.LtiDeepLink.id == late)
            .values(created_at=utcnow() - timedelta(hours=2))
        )
        session.commit()
        with pytest.raises(Forbidden, match="expired"):
            lti_deep_linking.request_page(session, course.teacher, late)


def test_old_succeeded_grade_send_jobs_are_forgotten(app: Flask, course: Course) -> None:
    with app.app_context():
        session = db.session()
        now = utcnow()
        for kind, state, age in (
            ("lti_grade_send", "succeeded", 8),
            ("lti_grade_send", "succeeded", 1),
            ("lti_grade_send", "failed", 8),
            ("bias_check", "succeeded", 8),
        ):
            session.add(
                Job(
                    school_id=course.school_id,
                    kind=kind,
                    params={"age": age, "state": state},
                    params_digest=f"{kind}-{state}-{age}",
                    state=state,
                    created_by="admin:lms",
                    finished_at=now - timedelta(days=age),
                )
            )
        session.commit()
        assert forget_finished(session, "lti_grade_send", now - timedelta(days=7)) == 1
        left = session.execute(sa.select(Job.kind, Job.state)).all()
        assert sorted(left) == [
            ("bias_check", "succeeded"),
            ("lti_grade_send", "failed"),
            ("lti_grade_send", "succeeded"),
        ]
