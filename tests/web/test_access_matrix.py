"""Every route × every kind of caller → the expected status.

Routes are discovered from the app's URL map: a new route (or method) without a
row here fails the test, so access rules cannot be forgotten. Conventions:
401 API call without credentials; 302 a page for a signed-out visitor (to sign-in);
403 the caller's role may never do this; 404 a resource that is not theirs
(exactly as if it did not exist).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from flask import Flask

from app.domain.access import Principal, Role
from app.extensions import db
from app.models import Exercise, LtiContext, LtiDeepLink, LtiPlatform, School, SchoolClass, Skill, StaffUser
from app.services.operations.job_kinds import start_purge
from app.services.people.accounts import create_class, create_staff_user, enroll
from app.services.people.apps import create_api_key
from app.services.reporting.bias import run_bias_check
from tests.conftest import ROLES, World

# Columns follow ROLES: anonymous, student_a, student_b, teacher_a, teacher_other, app1, app2, admin.
EVERYONE_200 = (200,) * 8
READ_STUDENT_A = (401, 200, 404, 200, 404, 200, 404, 200)
PRACTISE_AS_A = (401, 200, 404, 403, 403, 200, 404, 403)
SIGN_IN_PAGE = (200, 302, 302, 302, 302, 200, 200, 302)  # signed-in users go home; apps are anonymous here
SIGN_IN_POST = (401, 302, 302, 302, 302, 401, 401, 302)  # wrong credentials
STAFF_PAGE = (302, 403, 403, 200, 200, 302, 302, 200)
ADMIN_PAGE = (302, 403, 403, 403, 403, 302, 302, 200)
CONTENT = (401,) + (200,) * 7
CLASS_A_PAGE = (302, 403, 403, 200, 404, 302, 302, 200)
STUDENT_A_PAGE = (302, 200, 404, 200, 404, 302, 302, 200)
SCHOOL_STAFF = (401, 403, 403, 200, 200, 403, 403, 200)  # breakdowns are for the school's staff only
SCHOOL_STAFF_PAGE = (302, 403, 403, 200, 200, 302, 302, 200)
STUDENTS_ONLY = (302, 200, 200, 403, 403, 302, 302, 403)
CLASS_A_MEMBERS = (401, 403, 403, 200, 404, 200, 404, 200)  # who is in class A: its teacher, app 1, the admin
ADMIN_ONLY = (401, 403, 403, 403, 403, 403, 403, 200)  # the school's background jobs
# Routes that end what they act on: each call gets a fresh student of class A.
FRESH_STUDENT = {
    ("DELETE", "/api/v1/students/<student_id>"),
    ("DELETE", "/api/v1/classes/<id:class_id>/students/<student_id>"),
}

EXPECTED: dict[tuple[str, str], tuple[int, ...]] = {
    ("GET", "/static/<path:filename>"): EVERYONE_200,
    ("GET", "/api/v1/openapi.json"): EVERYONE_200,
    # a load balancer's probes, and metrics for a scraper on this host (the test client calls from 127.0.0.1)
    ("GET", "/healthz"): EVERYONE_200,
    ("GET", "/readyz"): EVERYONE_200,
    ("GET", "/metrics"): EVERYONE_200,
    ("POST", "/api/v1/students"): (401, 403, 403, 403, 403, 201, 201, 403),
    ("GET", "/api/v1/students/<student_id>"): READ_STUDENT_A,
    ("PATCH", "/api/v1/students/<student_id>"): READ_STUDENT_A,
    # (a fresh student of class A for every call: deleting student A would end the other rows)
    ("DELETE", "/api/v1/students/<student_id>"): (401, 403, 403, 403, 403, 200, 404, 200),
    ("GET", "/api/v1/students/<student_id>/export"): READ_STUDENT_A,
    ("GET", "/api/v1/students/<student_id>/next-exercise"): PRACTISE_AS_A,
    # with "correct": only an app's key may grade answers itself; a session must send "answer"
    ("POST", "/api/v1/students/<student_id>/responses"): (401, 403, 403, 403, 403, 201, 404, 403),
    ("GET", "/api/v1/students/<student_id>/progress"): READ_STUDENT_A,
    ("GET", "/api/v1/students/<student_id>/recommendations"): READ_STUDENT_A,
    ("GET", "/api/v1/students/<student_id>/report"): READ_STUDENT_A,
    ("GET", "/api/v1/classes/<id:class_id>/report"): (401, 403, 403, 200, 404, 200, 404, 200),
    ("GET", "/api/v1/classes"): (401, 403, 403, 200, 200, 200, 200, 200),
    ("GET", "/api/v1/classes/<id:class_id>"): (401, 403, 403, 200, 404, 200, 404, 200),
    # a teacher lists their classes' students (teacher B: student B); app 2 lists its own school (nobody)
    ("GET", "/api/v1/students"): (401, 403, 403, 200, 200, 200, 200, 200),
    ("POST", "/api/v1/classes/<id:class_id>/students"): CLASS_A_MEMBERS,
    ("DELETE", "/api/v1/classes/<id:class_id>/students/<student_id>"): CLASS_A_MEMBERS,
    ("POST", "/api/v1/bias-checks"): (401, 403, 403, 403, 403, 403, 403, 202),  # a job
    ("GET", "/api/v1/jobs"): ADMIN_ONLY,
    ("GET", "/api/v1/jobs/<id:job_id>"): ADMIN_ONLY,
    ("POST", "/api/v1/jobs/<id:job_id>/cancel"): ADMIN_ONLY,
    ("POST", "/api/v1/jobs/fits"): (401, 403, 403, 403, 403, 403, 403, 202),
    ("POST", "/api/v1/jobs/log-imports"): (401, 403, 403, 403, 403, 403, 403, 202),
    ("POST", "/api/v1/jobs/purges"): (401, 403, 403, 403, 403, 403, 403, 202),
    ("GET", "/admin/jobs"): ADMIN_PAGE,
    ("GET", "/admin/jobs/<id:job_id>"): ADMIN_PAGE,
    ("POST", "/admin/jobs/<id:job_id>/cancel"): (303, 403, 403, 403, 403, 303, 303, 303),
    ("GET", "/api/v1/bias-checks"): SCHOOL_STAFF,
    ("GET", "/api/v1/bias-checks/<id:bias_check_id>"): SCHOOL_STAFF,
    ("PUT", "/api/v1/students/<student_id>/group-attributes"): (401, 403, 403, 403, 403, 403, 403, 200),
    ("DELETE", "/api/v1/students/<student_id>/group-attributes"): (401, 200, 404, 403, 403, 403, 403, 200),
    ("GET", "/bias-checks"): SCHOOL_STAFF_PAGE,
    ("POST", "/bias-checks"): (303, 403, 403, 403, 403, 303, 303, 303),
    ("GET", "/bias-checks/<id:report_id>"): SCHOOL_STAFF_PAGE,
    ("GET", "/api/v1/skills"): CONTENT,
    ("GET", "/api/v1/skills/<skill_id>"): CONTENT,
    ("GET", "/api/v1/exercises/<exercise_id>"): CONTENT,
    ("GET", "/"): (302,) * 8,
    ("GET", "/login"): SIGN_IN_PAGE,
    ("POST", "/login"): SIGN_IN_POST,
    ("GET", "/student-login"): SIGN_IN_PAGE,
    ("POST", "/student-login"): SIGN_IN_POST,
    ("GET", "/account/password"): STAFF_PAGE,
    ("POST", "/account/password"): (303, 403, 403, 400, 400, 303, 303, 400),  # wrong current password
    ("GET", "/classes"): STAFF_PAGE,
    ("GET", "/classes/<id:class_id>"): CLASS_A_PAGE,
    ("GET", "/classes/<id:class_id>/report.csv"): CLASS_A_PAGE,
    ("GET", "/classes/<id:class_id>/skills.csv"): CLASS_A_PAGE,
    ("GET", "/students/<student_id>"): STUDENT_A_PAGE,
    ("GET", "/students/<student_id>/export"): STUDENT_A_PAGE,
    ("GET", "/me/export"): STUDENTS_ONLY,
    ("POST", "/me/personalization"): (303, 302, 302, 403, 403, 303, 303, 403),
    ("GET", "/me/data"): STUDENTS_ONLY,
    ("GET", "/practice"): STUDENTS_ONLY,
    # signed-out posts go to sign-in (303); A's own suggestion/answer only; staff never practise
    ("POST", "/practice/<id:recommendation_id>/hint"): (303, 303, 404, 403, 403, 303, 303, 403),
    ("POST", "/practice/<id:recommendation_id>/answer"): (303, 303, 404, 403, 403, 303, 303, 403),
    ("GET", "/practice/answers/<id:response_id>"): (302, 200, 404, 403, 403, 302, 302, 403),
    ("GET", "/me"): STUDENTS_ONLY,
    ("GET", "/admin/api-keys"): ADMIN_PAGE,
    ("POST", "/admin/api-keys"): (303, 403, 403, 403, 403, 303, 303, 201),
    ("POST", "/admin/api-keys/<prefix>/revoke"): (303, 403, 403, 403, 403, 303, 303, 302),
    # OneRoster import (admins): an upload without a file, a confirmation without the bundle
    ("GET", "/admin/oneroster"): ADMIN_PAGE,
    ("POST", "/admin/oneroster"): (303, 403, 403, 403, 403, 303, 303, 400),
    ("POST", "/admin/oneroster/confirm"): (303, 403, 403, 403, 403, 303, 303, 400),
    # LTI 1.3: the key set is public; a login or launch without the LMS's parameters is refused (403) for
    # anyone; registering an LMS is for admins (an empty form: 400)
    ("GET", "/.well-known/jwks.json"): EVERYONE_200,
    ("GET", "/lti/login"): (403,) * 8,
    ("POST", "/lti/login"): (403,) * 8,
    ("POST", "/lti/launch"): (403,) * 8,
    ("GET", "/admin/lms"): ADMIN_PAGE,
    ("POST", "/admin/lms"): (303, 403, 403, 403, 403, 303, 303, 400),
    # School administration (admins): empty forms are 400; what changes a teacher or a class gets a fresh
    # one of North per call (never teacher A, class A or the admin the other rows use)
    ("GET", "/admin"): ADMIN_PAGE,
    ("GET", "/admin/teachers"): ADMIN_PAGE,
    ("POST", "/admin/teachers"): (303, 403, 403, 403, 403, 303, 303, 400),
    ("POST", "/admin/teachers/<id:staff_id>/password"): (303, 403, 403, 403, 403, 303, 303, 200),
    ("POST", "/admin/teachers/<id:staff_id>/deactivate"): (303, 403, 403, 403, 403, 303, 303, 303),
    ("POST", "/admin/teachers/<id:staff_id>/reactivate"): (303, 403, 403, 403, 403, 303, 303, 303),
    ("POST", "/admin/teachers/<id:staff_id>/role"): (303, 403, 403, 403, 403, 303, 303, 303),
    ("GET", "/admin/classes"): ADMIN_PAGE,
    ("POST", "/admin/classes"): (303, 403, 403, 403, 403, 303, 303, 400),
    ("POST", "/admin/classes/<id:class_id>/teacher"): (303, 403, 403, 403, 403, 303, 303, 400),
    ("POST", "/admin/classes/<id:class_id>/archive"): (303, 403, 403, 403, 403, 303, 303, 303),
    ("POST", "/admin/classes/<id:class_id>/join-code"): (303, 403, 403, 403, 403, 303, 303, 303),
    ("POST", "/admin/classes/<id:class_id>/codes"): (303, 403, 403, 403, 403, 303, 303, 200),
    ("GET", "/admin/classes/<id:class_id>/roster"): ADMIN_PAGE,
    ("POST", "/admin/classes/<id:class_id>/roster"): (303, 403, 403, 403, 403, 303, 303, 400),
    ("POST", "/admin/classes/<id:class_id>/roster/confirm"): (303, 403, 403, 403, 403, 303, 303, 400),
    ("GET", "/admin/changes"): ADMIN_PAGE,
    # the staff's content pages: browse, try an exercise (an empty answer is a 400; nothing is recorded)
    ("GET", "/admin/content"): STAFF_PAGE,
    ("GET", "/admin/content/<exercise_id>"): STAFF_PAGE,
    ("POST", "/admin/content/<exercise_id>"): (303, 403, 403, 400, 400, 303, 303, 400),
    # Deep linking: teacher A's own request only (an empty choice: 400); anyone else's is not there
    ("GET", "/lti/deep-links/<token>"): (302, 404, 404, 200, 404, 302, 302, 404),
    ("POST", "/lti/deep-links/<token>"): (303, 404, 404, 400, 404, 303, 303, 404),
    # A class's LMS buttons: class A's course sent no class list (422); no score to send (done)
    ("POST", "/classes/<id:class_id>/lms/class-list"): (303, 403, 403, 422, 404, 303, 303, 422),
    ("POST", "/classes/<id:class_id>/lms/scores"): (303, 403, 403, 303, 404, 303, 303, 303),
    ("POST", "/me/lms-scores"): (303, 302, 302, 403, 403, 303, 303, 403),
    ("POST", "/logout"): (302,) * 8,  # run last: it ends the session
}

# School administration routes that change the class they name: each call gets a fresh class of North.
FRESH_CLASS = {
    ("POST", "/admin/classes/<id:class_id>/archive"),
    ("POST", "/admin/classes/<id:class_id>/join-code"),
    ("POST", "/admin/classes/<id:class_id>/codes"),
}

counter = itertools.count()


def fresh_teacher_of_north(app: Flask) -> str:
    with app.app_context():
        north = db.session.scalar(sa.select(School).where(School.name == "North"))
        n = next(counter)
        return str(
            create_staff_user(
                db.session(), north, f"spare-{n}@north.test", "Spare", "x" * 12, role=Role.TEACHER
            ).id
        )


def fresh_class_of_north(app: Flask) -> str:
    """A class of a fresh teacher, with one student (so its codes can be reissued)."""
    with app.app_context():
        teacher = db.session.get(StaffUser, int(fresh_teacher_of_north(app)))
        klass = create_class(db.session(), teacher, "Spare class")
        enroll(db.session(), klass, [f"spare-student-{next(counter)}"])
        return str(klass.id)


def fresh_key_prefix(app: Flask) -> str:
    """A key of North nobody uses, so revoking it disturbs no other request."""
    with app.app_context():
        north = db.session.scalar(sa.select(School).where(School.name == "North"))
        return create_api_key(db.session(), "spare-app", north).prefix


def fresh_student_of_class_a(app: Flask, world: World) -> str:
    with app.app_context():
        klass = db.session.get(SchoolClass, world.class_a)
        return enroll(db.session(), klass, [f"doomed-{next(counter)}"])[0].student_id


def bias_report_of_north(app: Flask) -> int:
    with app.app_context():
        north = db.session.scalar(sa.select(School).where(School.name == "North"))
        admin = Principal(Role.ADMIN, "operator", north.id, "operator")
        return run_bias_check(db.session(), admin, "class", bootstrap=50, permutations=20).id


def job_of_north(app: Flask) -> int:
    """A queued job of North (a fresh one each time: cancelling one disturbs no other request)."""
    with app.app_context():
        north = db.session.scalar(sa.select(School).where(School.name == "North"))
        admin = Principal(Role.ADMIN, "operator", north.id, "operator")
        job, _ = start_purge(db.session(), admin, dry_run=True, idempotency_key=f"matrix-{next(counter)}")
        return job.id


def deep_link_of_teacher_a(app: Flask, world: World) -> str:
    """A deep linking request teacher A made from an LMS course of class A (a fresh one each time)."""
    with app.app_context():
        n = next(counter)
        klass = db.session.get(SchoolClass, world.class_a)
        platform = LtiPlatform(
            school_id=world.north,
            name=f"LMS {n}",
            issuer=f"https://lms-{n}.north.test",
            client_id="tutor",
            auth_login_url=f"https://lms-{n}.north.test/auth",
            auth_token_url=f"https://lms-{n}.north.test/token",
            key_set_url=f"https://lms-{n}.north.test/jwks",
        )
        db.session.add(platform)
        db.session.flush()
        context = LtiContext(platform_id=platform.id, context_id=f"course-{n}", class_id=world.class_a)
        db.session.add(context)
        db.session.flush()
        token = f"matrix-request-{n}"
        db.session.add(
            LtiDeepLink(
                id=token,
                platform_id=platform.id,
                context_id=context.id,
                staff_user_id=klass.teacher_id,
                deployment_id="1",
                return_url=f"https://lms-{n}.north.test/return",
                data=None,
            )
        )
        db.session.commit()
        return token


def suggestion_for_a(world: World) -> int:
    body = world.actors["app1"].request("GET", f"/api/v1/students/{world.student_a}/next-exercise").get_json()
    return int(body["recommendation_id"])


def answer_of_a(world: World, exercise: str) -> int:
    body = (
        world.actors["app1"]
        .request(
            "POST",
            f"/api/v1/students/{world.student_a}/responses",
            json={"exercise_id": exercise, "correct": False},
        )
        .get_json()
    )
    return int(body["id"])


def request_for(app: Flask, world: World, method: str, rule: str) -> tuple[str, dict[str, Any]]:
    """The URL (placeholders filled with student A's resources) and body for one route."""
    with app.app_context():
        skill = db.session.scalar(sa.select(Skill.id).order_by(Skill.position).limit(1))
        exercise = db.session.scalar(sa.select(Exercise.id).order_by(Exercise.id).limit(1))
    fill: dict[str, Callable[[], str]] = {
        "<path:filename>": lambda: "style.css",
        "<student_id>": (
            (lambda: fresh_student_of_class_a(app, world))
            if (method, rule) in FRESH_STUDENT
            else (lambda: world.student_a)
        ),
        "<id:class_id>": (
            (lambda: fresh_class_of_north(app))
            if (method, rule) in FRESH_CLASS
            else (lambda: str(world.class_a))
        ),
        "<id:staff_id>": lambda: fresh_teacher_of_north(app),
        "<skill_id>": lambda: skill,
        "<exercise_id>": lambda: exercise,
        "<prefix>": lambda: fresh_key_prefix(app),
        "<id:recommendation_id>": lambda: str(suggestion_for_a(world)),
        "<id:response_id>": lambda: str(answer_of_a(world, exercise)),
        "<id:report_id>": lambda: str(bias_report_of_north(app)),
        "<id:bias_check_id>": lambda: str(bias_report_of_north(app)),
        "<id:job_id>": lambda: str(job_of_north(app)),
        "<token>": lambda: deep_link_of_teacher_a(app, world),
    }
    url = rule
    for placeholder, value in fill.items():
        if placeholder in url:
            url = url.replace(placeholder, value())
    n = next(counter)
    bodies: dict[tuple[str, str], dict[str, Any]] = {
        ("POST", "/api/v1/students"): {"json": {"external_id": f"new-{n}"}},
        ("PATCH", "/api/v1/students/<student_id>"): {"json": {"personalized": True}},
        ("POST", "/api/v1/classes/<id:class_id>/students"): {"json": {"student_ids": [world.student_a]}},
        ("POST", "/api/v1/students/<student_id>/responses"): {
            "json": {"exercise_id": exercise, "correct": True}
        },
        ("POST", "/login"): {"form": {"email": "nobody@north.test", "password": "not the password"}},
        ("POST", "/student-login"): {"form": {"join_code": world.join_a, "personal_code": "AAAAA-BBBBBB"}},
        ("POST", "/account/password"): {
            "form": {"current": "not the password", "new": "a-new-password-1", "confirm": "a-new-password-1"}
        },
        ("POST", "/admin/api-keys"): {"form": {"app_name": f"new-app-{n}"}},
        ("POST", "/admin/api-keys/<prefix>/revoke"): {"form": {}},
        ("POST", "/logout"): {"form": {}},
        ("POST", "/me/personalization"): {"form": {"personalized": "on"}},
        ("POST", "/me/lms-scores"): {"form": {"share": "off"}},
        ("POST", "/practice/<id:recommendation_id>/answer"): {"form": {"answer": "42"}},
        ("POST", "/practice/<id:recommendation_id>/hint"): {"form": {}},
        ("POST", "/api/v1/bias-checks"): {"json": {"attribute": "class", "bootstrap": 50}},
        ("PUT", "/api/v1/students/<student_id>/group-attributes"): {
            "json": {"values": {"gender": "female"}, "consent_given_by": "parent"}
        },
        ("POST", "/bias-checks"): {"form": {"attribute": "class"}},
        ("POST", "/api/v1/jobs/fits"): {"json": {}},
        ("POST", "/api/v1/jobs/log-imports"): {"json": {"format": "assistments", "content": "a,b\n1,2\n"}},
        ("POST", "/api/v1/jobs/purges"): {"json": {"dry_run": True}},
        ("POST", "/admin/jobs/<id:job_id>/cancel"): {"form": {}},
        ("POST", "/admin/oneroster"): {"form": {}},
        ("POST", "/admin/oneroster/confirm"): {"form": {}},
        ("POST", "/admin/teachers"): {"form": {}},
        ("POST", "/admin/teachers/<id:staff_id>/password"): {"form": {}},
        ("POST", "/admin/teachers/<id:staff_id>/deactivate"): {"form": {}},
        ("POST", "/admin/teachers/<id:staff_id>/reactivate"): {"form": {}},
        ("POST", "/admin/teachers/<id:staff_id>/role"): {"form": {"admin": "on"}},
        ("POST", "/admin/classes"): {"form": {}},
        ("POST", "/admin/classes/<id:class_id>/teacher"): {"form": {}},
        ("POST", "/admin/classes/<id:class_id>/archive"): {"form": {}},
        ("POST", "/admin/classes/<id:class_id>/join-code"): {"form": {}},
        ("POST", "/admin/classes/<id:class_id>/codes"): {"form": {}},
        ("POST", "/admin/classes/<id:class_id>/roster"): {"form": {}},
        ("POST", "/admin/classes/<id:class_id>/roster/confirm"): {"form": {}},
    }
    return url, bodies.get((method, rule), {})


def routes(app: Flask) -> set[tuple[str, str]]:
    found = set()
    for rule in app.url_map.iter_rules():
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            found.add((method, rule.rule))
    return found


def test_every_route_has_a_row(app: Flask) -> None:
    assert routes(app) - set(EXPECTED) == set(), "new routes need a row in EXPECTED"
    assert set(EXPECTED) - routes(app) == set(), "rows for routes that no longer exist"


def test_access_matrix(app: Flask, world: World) -> None:
    mismatches = []
    cases = sorted(EXPECTED, key=lambda case: case == ("POST", "/logout"))
    for method, rule in cases:
        for role, expected in zip(ROLES, EXPECTED[(method, rule)], strict=True):
            url, body = request_for(app, world, method, rule)
            response = world.actors[role].request(method, url, **body)
            if response.status_code != expected:
                mismatches.append(f"{method} {url} as {role}: {response.status_code}, expected {expected}")
            if rule.startswith("/api/") and response.status_code >= 400:
                assert response.get_json()["code"] == response.status_code  # the one JSON error shape
    assert mismatches == []
