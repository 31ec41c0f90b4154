"""Signing in and out, sessions, CSRF, throttling, headers: through real HTTP on the app."""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from flask import Flask

from app import create_app
from app.domain.access import Principal, Role
from app.extensions import db
from app.models import AdminChange, ApiKey, Response, SchoolClass, StaffUser, Student
from app.services.operations.job_kinds import start_purge
from app.services.people.accounts import enroll
from tests.conftest import PASSWORD, Actor, World, make_app


def fresh(app: Flask, name: str = "visitor") -> Actor:
    # A distinct client address per actor, so per-address rate limits of one test never meet another's.
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"
    return Actor(name, client)


def page(actor: Actor, url: str) -> str:
    response = actor.request("GET", url)
    assert response.status_code == 200, (url, response.status_code)
    return str(response.get_data(as_text=True))


def test_teacher_sees_own_classes_and_admin_sees_the_school(app: Flask, world: World) -> None:
    mine = page(world.actors["teacher_a"], "/classes")
    assert "Class A" in mine and "Class B" not in mine
    school = page(world.actors["admin"], "/classes")
    assert "Class A" in school and "Class B" in school
    roster = page(world.actors["teacher_a"], f"/classes/{world.class_a}")
    assert "student-a" in roster and "student-b" not in roster
    home = page(world.actors["student_a"], "/me")
    assert "Hello, student-a" in home and "You have mastered <strong>0</strong> of" in home
    assert "What to practise next" in home and "ready to start" in home


def test_sign_out_ends_the_session(app: Flask, world: World) -> None:
    teacher = world.actors["teacher_a"]
    assert teacher.request("POST", "/logout", form={}).status_code == 302
    response = teacher.request("GET", "/classes")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_sign_in_failures_do_not_reveal_accounts(app: Flask, world: World) -> None:
    known = fresh(app).sign_in_staff("a@north.test", "wrong password!")
    unknown = fresh(app).sign_in_staff("nobody@north.test", "wrong password!")
    assert known.status_code == unknown.status_code == 401
    message = "Sign-in failed: check what you typed."
    assert message in known.get_data(as_text=True) and message in unknown.get_data(as_text=True)
    for bad_code in ("AAAAA-BBBBBB", world.code_b, "nonsense"):  # B's real code with A's class code
        response = fresh(app).sign_in_student(world.join_a, bad_code)
        assert response.status_code == 401 and message in response.get_data(as_text=True)


def test_a_new_personal_code_ends_old_sessions(app: Flask, world: World) -> None:
    with app.app_context():
        klass = db.session.get(SchoolClass, world.class_a)
        [reissued] = enroll(db.session(), klass, ["student-a"], reissue=True)
    assert reissued.code and reissued.code != world.code_a
    # The session signed in with the old code has ended; the new code works, the old one no longer.
    assert world.actors["student_a"].request("GET", "/me").status_code == 302
    assert fresh(app).sign_in_student(world.join_a.lower(), reissued.code.lower()).status_code == 302
    assert fresh(app).sign_in_student(world.join_a, world.code_a).status_code == 401


def test_failed_sign_ins_are_limited_per_address(database_url: str, world: World) -> None:
    worker = make_app(database_url, RATELIMIT_LOGIN="3 per minute")
    try:
        visitor = fresh(worker)
        statuses = [visitor.sign_in_staff(f"nobody{i}@north.test", "x" * 12).status_code for i in range(4)]
        assert statuses == [401, 401, 401, 429]
        limited = visitor.sign_in_staff("a@north.test", PASSWORD)
        assert limited.status_code == 429 and limited.mimetype == "text/html"
        assert 0 < int(limited.headers["Retry-After"]) <= 60
        assert "Too many failed sign-ins from your network" in limited.get_data(as_text=True)
        assert fresh(worker).sign_in_staff("a@north.test", PASSWORD).status_code == 302  # another address
    finally:
        with worker.app_context():
            db.engine.dispose()


def test_behind_a_proxy_limits_count_clients_not_the_proxy(app: Flask, database_url: str) -> None:
    proxied = make_app(database_url, PROXY_COUNT=1, RATELIMIT_LOGIN="2 per minute")
    client = proxied.test_client()
    client.environ_base["REMOTE_ADDR"] = "10.9.9.9"  # the proxy
    for _ in range(2):
        for client_address in ("203.0.113.7", "203.0.113.8"):
            response = client.post(
                "/login",
                headers={"X-Forwarded-For": client_address},
                data={"email": "x@y.test", "password": "not it at all"},
            )
            assert response.status_code == 400  # no CSRF token: refused, but counted per client
    limited = client.post("/login", headers={"X-Forwarded-For": "203.0.113.7"}, data={})
    assert limited.status_code == 429
    with proxied.app_context():
        db.engine.dispose()


def test_the_api_is_rate_limited_per_key(app: Flask, world: World) -> None:
    limit = app.config["RATELIMIT_API"]
    app.config["RATELIMIT_API"] = "3 per minute"
    try:
        app1, app2 = world.actors["app1"], world.actors["app2"]
        answers = [app1.request("GET", "/api/v1/skills") for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        # A request that worked is not told to back off; the budget left is still said.
        assert ["Retry-After" in a.headers for a in answers] == [False, False, False, True]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers[:3]] == ["2", "1", "0"]
        limited = app1.request("GET", "/api/v1/skills")
        assert limited.get_json()["code"] == 429 and int(limited.headers["Retry-After"]) > 0
        assert app2.request("GET", "/api/v1/skills").status_code == 200
    finally:
        app.config["RATELIMIT_API"] = limit


def test_every_form_needs_its_csrf_token(app: Flask, world: World) -> None:
    posts = sorted(
        rule.rule
        for rule in app.url_map.iter_rules()
        if "POST" in rule.methods and not rule.rule.startswith("/api/")
    )
    assert posts  # discovered, so a new form cannot skip the check
    admin = world.actors["admin"]
    with app.app_context():
        key = db.session.scalar(sa.select(ApiKey.prefix).limit(1))
    suggestion = (
        world.actors["app1"]
        .request("GET", f"/api/v1/students/{world.student_a}/next-exercise")
        .get_json()["recommendation_id"]
    )
    with app.app_context():
        job = start_purge(db.session(), Principal(Role.ADMIN, "operator", world.north, "operator"))[0].id
        teacher_b = db.session.scalar(sa.select(StaffUser.id).where(StaffUser.email == "b@north.test"))
    for rule in posts:
        url = (
            rule.replace("<prefix>", key)
            .replace("<id:recommendation_id>", str(suggestion))
            .replace("<id:job_id>", str(job))
            .replace("<id:class_id>", str(world.class_a))
            .replace("<id:staff_id>", str(teacher_b))
            .replace("<token>", "any-request")
        )
        # Sign-in forms are posted by signed-out visitors (signed-in ones are sent home); practice and a
        # student's own pages by the student.
        poster = (
            fresh(app)
            if rule in ("/login", "/student-login")
            else world.actors["student_a"]
            if rule.startswith(("/practice", "/me"))
            else admin
        )
        response = poster.client.post(
            url,
            data={
                "app_name": "sneaky",
                "email": "a@north.test",
                "password": PASSWORD,
                "current": PASSWORD,
                "join_code": world.join_a,
                "personal_code": world.code_a,
                "new": "x" * 12,
                "confirm": "x" * 12,
                "answer": "1",
                "personalized": "off",
            },
        )
        text = response.get_data(as_text=True)
        if rule in ("/lti/login", "/lti/launch"):
            # An LMS posts these cross-site, so no CSRF token can exist: the login is checked by its issuer
            # and client id, the launch by its signed id_token and the state cookie (test_lti_launch.py).
            assert response.status_code == 403 and "The LMS" in text, url
            continue
        assert response.status_code == 400, url
        assert (
            "CSRF token is missing" in text
            if rule in ("/login", "/student-login")
            else "Please reload the page" in text
        ), url
    with app.app_context():
        assert (
            db.session.get(
                ApiKey, db.session.scalar(sa.select(ApiKey.id).where(ApiKey.prefix == key))
            ).revoked_at
            is None
        )
    assert admin.request("GET", "/classes").status_code == 200  # still signed in: logout was refused too
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Response)) == 0
        assert db.session.get(Student, world.student_a).personalized is True
        assert db.session.get(StaffUser, teacher_b).deactivated_at is None  # the school admin pages too
        assert db.session.get(SchoolClass, world.class_a).archived_at is None
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AdminChange)) == 0


def test_session_writes_to_the_api_need_the_csrf_header(app: Flask, world: World) -> None:
    student = world.actors["student_a"]
    url = f"/api/v1/students/{world.student_a}"
    refused = student.client.patch(url, json={"personalized": False})
    assert refused.status_code == 400 and "CSRF" in refused.get_json()["message"]
    accepted = student.request("PATCH", url, json={"personalized": False})
    assert accepted.status_code == 200 and accepted.get_json()["personalized"] is False
    with app.app_context():
        assert (
            db.session.get(Student, world.student_a).personalization_changed_by
            == f"student:{world.student_a}"
        )
    # A Bearer key needs no token: it cannot be sent cross-site by a browser.
    assert (
        world.actors["app1"]
        .client.patch(url, json={"personalized": True}, headers=world.actors["app1"].headers)
        .status_code
        == 200
    )


def test_changing_the_password_ends_other_sessions(app: Flask, world: World) -> None:
    other_device = fresh(app)
    assert other_device.sign_in_staff("a@north.test").status_code == 302
    teacher = world.actors["teacher_a"]
    mismatch = teacher.request(
        "POST",
        "/account/password",
        form={"current": PASSWORD, "new": "new password 1", "confirm": "new password 2"},
    )
    assert mismatch.status_code == 400 and "The two new passwords differ." in mismatch.get_data(as_text=True)
    short = teacher.request(
        "POST", "/account/password", form={"current": PASSWORD, "new": "short", "confirm": "short"}
    )
    assert short.status_code == 400
    changed = teacher.request(
        "POST",
        "/account/password",
        form={"current": PASSWORD, "new": "a much better one", "confirm": "a much better one"},
    )
    assert changed.status_code == 302
    assert teacher.request("GET", "/classes").status_code == 200  # this session goes on
    assert other_device.request("GET", "/classes").status_code == 302  # the other one ended
    assert fresh(app).sign_in_staff("a@north.test", PASSWORD).status_code == 401
    assert fresh(app).sign_in_staff("a@north.test", "a much better one").status_code == 302


def test_admin_issues_and_revokes_api_keys(app: Flask, world: World) -> None:
    admin = world.actors["admin"]
    issued = admin.request("POST", "/admin/api-keys", form={"app_name": "quiz-app"})
    assert issued.status_code == 201
    html = issued.get_data(as_text=True)
    key = html.split('<code class="secret">')[1].split("</code>")[0]
    assert key.startswith("tk_") and "shown only once" in html
    app_actor = Actor("quiz", app.test_client(), key)
    created = app_actor.request("POST", "/api/v1/students", json={"external_id": "student-a"})
    assert created.status_code == 200 and created.get_json()["id"] == world.student_a  # the school's roster
    listing = page(admin, "/admin/api-keys")
    prefix = key.split("_")[1]
    assert prefix in listing and key not in listing  # shown once, never again
    with app.app_context():
        assert db.session.scalar(sa.select(ApiKey.last_used_at).where(ApiKey.prefix == prefix)) is not None
    # "app-2" is South's app: North gets its own app of that name and learns nothing about South's.
    same_name = admin.request("POST", "/admin/api-keys", form={"app_name": "app-2"})
    assert same_name.status_code == 201 and "another school" not in same_name.get_data(as_text=True)
    south_prefix = world.key_2.split("_")[1]
    assert admin.request("POST", f"/admin/api-keys/{south_prefix}/revoke", form={}).status_code == 404
    assert world.actors["app2"].request("GET", "/api/v1/skills").status_code == 200
    assert admin.request("POST", f"/admin/api-keys/{prefix}/revoke", form={}).status_code == 302
    revoked = app_actor.request("GET", "/api/v1/skills")
    assert revoked.status_code == 401 and revoked.get_json()["message"] == "Invalid or revoked API key."


def test_someone_elses_student_looks_exactly_like_no_student(app: Flask, world: World) -> None:
    app2 = world.actors["app2"]
    theirs = app2.request("GET", f"/api/v1/students/{world.student_a}").get_json()
    missing_id = str(uuid.uuid4())
    nobody = app2.request("GET", f"/api/v1/students/{missing_id}").get_json()
    # The same body but for the message's id, and each answer's own request id.
    assert theirs == {
        **nobody,
        "message": nobody["message"].replace(missing_id, world.student_a),
        "request_id": theirs["request_id"],
    }


def test_security_headers_and_cookie_flags(app: Flask, world: World) -> None:
    for response in (
        fresh(app).request("GET", "/login"),
        world.actors["app1"].request("GET", "/api/v1/skills"),
    ):
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert "script-src 'self'" in response.headers["Content-Security-Policy"]
        assert response.headers["X-Frame-Options"] == "DENY"
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["Cache-Control"] == "no-store"
    visitor = fresh(app)
    cookie = visitor.sign_in_staff("a@north.test").headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie


def test_session_cookies_are_secure_by_default(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    production_like = create_app({"SECRET_KEY": "s", "SQLALCHEMY_DATABASE_URI": url})
    assert production_like.config["SESSION_COOKIE_SECURE"] is True
