"""LTI 1.3 launches from a real platform (the ``lti1p3platform`` package, tests/web/lti_platform.py) over real
HTTP into the tutor, in a real browser (Debian's Chromium): login initiation -> the platform's authentication
response -> the launch. A learner lands on /practice and answers; an instructor lands on the course's class.
Each failure (tampered, expired, replayed, foreign-key, wrong-audience and unknown-deployment tokens, an
unknown issuer, a launch from another browser) is a 4xx page that names the problem and writes nothing.

The platform is addressed as ``localhost`` and the tutor as ``127.0.0.1``: two sites, so the launch POST is
cross-site, as it is from a real LMS."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import expect

from app.extensions import db
from app.models import (
    ClassMembership,
    LtiAccount,
    LtiContext,
    LtiLogin,
    LtiResourceLink,
    LtiScore,
    Response,
    SchoolClass,
    StaffUser,
    Student,
)
from tests.web.lti_platform import (
    CLIENT_ID,
    COURSE,
    DEPLOYMENT_ID,
    Platform,
)
from tests.web.test_practice_browser import answer_current

WRITTEN = (
    Student,
    StaffUser,
    SchoolClass,
    ClassMembership,
    LtiAccount,
    LtiContext,
    LtiResourceLink,
    Response,
)


def counts(app: Flask) -> dict[str, int]:
    with app.app_context():
        found = {
            m.__tablename__: db.session.scalar(sa.select(sa.func.count()).select_from(m)) or 0
            for m in WRITTEN
        }
        found["used logins"] = (
            db.session.scalar(
                sa.select(sa.func.count()).select_from(LtiLogin).where(LtiLogin.used_at.is_not(None))
            )
            or 0
        )
        db.session.commit()
        return found


def launch(page: Any, platform: Platform, user: str, mode: str = "valid", *, link: str = "link-1") -> Any:
    """Start a launch of the course's ``link`` at the platform; the tutor's response to the launch POST."""
    with page.expect_response(lambda r: urlsplit(r.url).path == "/lti/launch") as answered:
        page.goto(f"{platform.base}/start/{user}?mode={mode}&link={link}")
    page.wait_for_load_state()
    return answered.value


def stored_text(app: Flask) -> str:
    """Every row a launch may write, as text: no name or email from the platform may be in it."""
    with app.app_context():
        rows = [
            list(row)
            for model in (Student, StaffUser, SchoolClass, LtiAccount, LtiContext, LtiResourceLink)
            for row in db.session.execute(sa.select(model.__table__)).all()
        ]
        db.session.commit()
    return repr(rows)


def test_a_learner_launches_lands_on_practice_and_answers(
    app: Flask, platform: Platform, page: Any, shipped_graph: Any, browser: Any, live_server: str
) -> None:
    posted: list[str] = []
    page.on(
        "request",
        lambda r: posted.append(r.post_data or "") if urlsplit(r.url).path == "/lti/launch" else None,
    )
    answered = launch(page, platform, "ada")
    assert answered.status == 303
    assert urlsplit(page.url).path == "/practice"
    expect(page.locator("section.exercise")).to_be_visible()
    answer_current(page, shipped_graph, right=True)

    with app.app_context():
        account = db.session.scalar(sa.select(LtiAccount))
        assert account is not None and account.sub == "lms-user-77" and account.staff_user_id is None
        student = db.session.get(Student, account.student_id)
        assert student is not None and student.external_id.startswith("lms-")
        [response] = db.session.scalars(sa.select(Response)).all()
        assert response.student_id == student.id
        context = db.session.scalar(sa.select(LtiContext))
        assert context is not None and context.context_id == COURSE["id"]
        assert context.lineitems_url == f"{platform.base}/ags/course-101/lineitems"
        assert context.context_memberships_url == f"{platform.base}/nrps/course-101/memberships"
        klass = db.session.get(SchoolClass, context.class_id)
        assert klass is not None and klass.name == COURSE["title"]
        assert db.session.get(ClassMembership, (klass.id, student.id)) is not None
        link = db.session.scalar(sa.select(LtiResourceLink))
        assert link is not None and link.resource_link_id == "link-1"
        assert link.lineitem_url == f"{platform.base}/ags/course-101/lineitems/1"
        db.session.commit()
    text = stored_text(app)
    assert "Ada" not in text and "ada@example.edu" not in text and "Lovelace" not in text

    # The launched session's pages may be framed by this platform (and only by it); other sessions by nobody.
    framed = page.goto(f"{live_server}/me")
    assert framed is not None and framed.status == 200
    policy = framed.headers["content-security-policy"]
    assert policy.endswith(f"frame-ancestors 'self' {platform.base}") and "script-src 'self'" in policy
    assert "x-frame-options" not in framed.headers
    unframed = browser.new_context()
    try:
        login_page = unframed.new_page().goto(f"{live_server}/login")
        assert (
            login_page is not None
            and "frame-ancestors 'none'" in login_page.headers["content-security-policy"]
        )
        assert login_page.headers["x-frame-options"] == "DENY"
    finally:
        unframed.close()

    # The same launch again (the browser still holds its state cookie): the nonce is spent.
    before = counts(app)
    [form] = [p for p in posted if "id_token=" in p]
    with page.expect_response(lambda r: urlsplit(r.url).path == "/lti/launch") as replayed:
        page.goto(f"{platform.base}/replay?{urlencode({'to': f'{live_server}/lti/launch', 'form': form})}")
    assert replayed.value.status == 403
    expect(page.locator("main")).to_contain_text("nonce was already used")
    assert counts(app) == before

    # The same form from another browser (no state cookie): refused before the token is even read.
    other = browser.new_context()
    try:
        tab = other.new_page()
        with tab.expect_response(lambda r: urlsplit(r.url).path == "/lti/launch") as stolen:
            tab.goto(f"{platform.base}/replay?{urlencode({'to': f'{live_server}/lti/launch', 'form': form})}")
        assert stolen.value.status == 403
        expect(tab.locator("main")).to_contain_text("state not found")
    finally:
        other.close()
    assert counts(app) == before

    # A new launch: the same student, nothing new made.
    assert launch(page, platform, "ada").status == 303
    after = counts(app)
    assert after["students"] == before["students"] and after["lti_accounts"] == before["lti_accounts"]


def test_an_instructor_launches_onto_the_course_class(app: Flask, platform: Platform, page: Any) -> None:
    assert (
        launch(page, platform, "ada").status == 303
    )  # a learner first: the class exists, with no teacher yet
    page.context.clear_cookies()
    answered = launch(page, platform, "grace")
    assert answered.status == 303
    with app.app_context():
        context = db.session.scalar(sa.select(LtiContext))
        assert context is not None
        assert urlsplit(page.url).path == f"/classes/{context.class_id}"
        account = db.session.scalar(sa.select(LtiAccount).where(LtiAccount.sub == "lms-teacher-9"))
        assert account is not None and account.staff_user_id is not None and account.student_id is None
        teacher = db.session.get(StaffUser, account.staff_user_id)
        assert teacher is not None and teacher.role == "teacher" and teacher.email.endswith("@lms.invalid")
        assert teacher.password_hash == "!lms"  # signs in only through the LMS
        klass = db.session.get(SchoolClass, context.class_id)
        assert klass is not None and klass.teacher_id == teacher.id  # taken over from the placeholder
        student = db.session.scalar(sa.select(Student))
        assert student is not None
        db.session.commit()
    expect(page.locator("main")).to_contain_text(COURSE["title"])
    expect(page.locator("main")).to_contain_text(student.external_id)  # the learner is in the class
    text = stored_text(app)
    assert "Grace" not in text and "Hopper" not in text and "grace@example.edu" not in text


@pytest.mark.parametrize(
    ("mode", "says"),
    [
        ("tampered", "Signature verification failed"),
        ("foreign_key", "Signature verification failed"),
        ("expired", "Signature has expired"),
        ("wrong_audience", "registration not found"),
        ("unknown_deployment", 'deployment ID "deployment-unknown" is not recognised'),
    ],
)
def test_a_bad_token_is_refused_and_writes_nothing(
    app: Flask, platform: Platform, page: Any, mode: str, says: str
) -> None:
    before = counts(app)
    answered = launch(page, platform, "ada", mode)
    assert answered.status == 403
    expect(page.locator("main")).to_contain_text("The LMS launch was refused")
    expect(page.locator("main")).to_contain_text(says)
    assert counts(app) == before


def test_an_unknown_issuer_cannot_start_a_login(
    app: Flask, platform: Platform, page: Any, live_server: str
) -> None:
    query = urlencode(
        {
            "iss": "https://lms.unknown.example",
            "login_hint": "x",
            "target_link_uri": f"{live_server}/lti/launch",
        }
    )
    answered = page.goto(f"{live_server}/lti/login?{query}")
    assert answered.status == 403
    expect(page.locator("main")).to_contain_text("could not find registration details")
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LtiLogin)) == 0
        db.session.commit()


def test_a_launched_student_is_exported_and_deleted_with_their_lms_account(
    app: Flask, platform: Platform, page: Any, runner: Any
) -> None:
    assert launch(page, platform, "ada").status == 303
    with app.app_context():
        student_id = db.session.scalar(sa.select(LtiAccount.student_id))
        db.session.commit()
    assert student_id is not None
    exported = runner.invoke(args=["export-student", student_id])
    assert exported.exit_code == 0, exported.output
    [account] = json.loads(exported.output)["lms_accounts"]
    assert account["lms"] == "Test LMS" and account["lms_user_id"] == "lms-user-77"
    [score] = json.loads(exported.output)["lms_scores"]  # link-1 is graded: its score row, nothing sent yet
    assert (score["lms"], score["course"], score["link"], score["practises"]) == (
        "Test LMS",
        COURSE["id"],
        "link-1",
        "curriculum",
    )
    deleted = runner.invoke(args=["delete-student", student_id, "--yes"])
    assert deleted.exit_code == 0, deleted.output
    assert "lti_accounts 1" in deleted.output and "lti_scores 1" in deleted.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LtiAccount)) == 0
        assert db.session.scalar(sa.select(sa.func.count()).select_from(LtiScore)) == 0
        db.session.commit()
    # The same LMS user launching again is a new pseudonymous student (nothing of the old one is left).
    assert launch(page, platform, "ada").status == 303
    with app.app_context():
        again = db.session.scalar(sa.select(LtiAccount.student_id))
        db.session.commit()
    assert again is not None and again != student_id


def test_launches_the_tutor_has_no_place_for_are_refused_and_write_nothing(
    app: Flask, platform: Platform, page: Any
) -> None:
    assert launch(page, platform, "grace").status == 303  # the course's class, and its teacher
    page.context.clear_cookies()
    before = counts(app)
    second = launch(page, platform, "linus")  # one teacher per course for now
    assert second.status == 403
    expect(page.locator("main")).to_contain_text("belongs to another teacher")
    page.context.clear_cookies()
    mentor = launch(page, platform, "mona")
    assert mentor.status == 400
    expect(page.locator("main")).to_contain_text("neither a learner's nor an instructor's")
    assert counts(app) == before


def test_a_course_whose_class_was_archived_takes_no_launches(
    app: Flask, platform: Platform, page: Any
) -> None:
    assert launch(page, platform, "ada").status == 303
    with app.app_context():
        context = db.session.scalar(sa.select(LtiContext))
        assert context is not None
        klass = db.session.get(SchoolClass, context.class_id)
        assert klass is not None
        klass.archived_at = sa.func.now()  # a school admin archived it (services/people/school_admin.py)
        db.session.commit()
    for user in ("grace", "ada"):  # neither the instructor nor a learner lands on a closed class
        page.context.clear_cookies()
        before = counts(app)
        answered = launch(page, platform, user)
        assert answered.status == 403
        expect(page.locator("main")).to_contain_text("is archived in the tutor")
        assert counts(app) == before


def test_a_login_posted_by_the_lms_redirects_to_its_authentication_url(
    app: Flask, platform: Platform, live_server: str
) -> None:
    """Moodle posts the login form: the redirect carries a new state and nonce; the state cookie is the
    launch-only one (SameSite=None; Secure; Partitioned, on /lti/ only)."""
    client = app.test_client()
    answered = client.post(
        "/lti/login",
        data={
            "iss": platform.issuer,
            "login_hint": "lms-user-77",
            "target_link_uri": f"{live_server}/lti/launch",
            "lti_message_hint": "ada|valid",
            "client_id": CLIENT_ID,
            "lti_deployment_id": DEPLOYMENT_ID,
        },
    )
    assert answered.status_code == 302
    location = urlsplit(answered.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{platform.base}/authorize"
    query = dict(parse_qsl(location.query))
    assert (
        query["client_id"] == CLIENT_ID
        and query["response_mode"] == "form_post"
        and query["prompt"] == "none"
    )
    assert query["redirect_uri"] == "http://localhost/lti/launch" and query["login_hint"] == "lms-user-77"
    [cookie] = answered.headers.getlist("Set-Cookie")
    assert cookie.startswith(f"lti1p3-{query['state']}={query['state']};")
    for attribute in ("Secure", "HttpOnly", "SameSite=None", "Partitioned", "Path=/lti/", "Max-Age=300"):
        assert attribute in cookie, cookie
    with app.app_context():
        login = db.session.get(LtiLogin, query["state"])
        assert login is not None and login.nonce == query["nonce"] and login.used_at is None
        db.session.commit()


def test_a_learner_practises_inside_the_lms_iframe(
    app: Flask, platform: Platform, page: Any, shipped_graph: Any, live_server: str
) -> None:
    """The whole loop inside the platform's page: the tutor's pages let that platform frame them, and the
    launched session's cookie (SameSite=None; Secure; Partitioned) is sent inside the frame."""
    page.goto(f"{platform.base}/course/ada")
    frame = page.frame_locator("iframe[title=Tutor]")
    expect(frame.locator("section.exercise")).to_be_visible()
    exercise = shipped_graph.exercises[frame.locator("section.exercise").get_attribute("data-exercise-id")]
    if exercise.answer_kind == "multiple_choice":
        frame.get_by_label(exercise.answers[0], exact=True).check()
    else:
        frame.locator("#answer").fill(exercise.answers[0])
    frame.locator("section.exercise").get_by_role("button").last.click()
    expect(frame.locator("ul.changes")).to_be_visible()  # the result page, still inside the frame
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Response)) == 1
        db.session.commit()
    [session_cookie] = [c for c in page.context.cookies(live_server) if c["name"] == "session"]
    assert session_cookie["sameSite"] == "None" and session_cookie["secure"] and session_cookie["httpOnly"]
