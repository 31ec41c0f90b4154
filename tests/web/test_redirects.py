"""After signing in, the browser goes to ``next`` only when it is a path on this site.

Each payload is posted through the real sign-in forms (staff and student), from its own address, and
the Location header must be the payload (same-site paths) or the home page (everything else). A browser
reads Location generously (tabs and newlines dropped, backslash as slash, ``//host`` another site), so
the refused list is what it would turn into another site, or what no page of ours looks like.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import pytest
from flask import Flask

from app.domain.access import Role
from app.extensions import db
from app.services.people.accounts import create_class, create_school, create_staff_user, enroll
from tests.conftest import PASSWORD, Actor

REFUSED = [
    "//evil.example/pwned",
    "/\t/evil.example/pwned",  # ?next=/%09/evil.example/pwned: a browser drops the tab
    "/%09/evil.example/pwned",  # the same, encoded twice
    "/%2509/evil.example/pwned",  # three times
    "/\n/evil.example/pwned",  # a newline (was a 500: not a valid header)
    "/\r\n/evil.example/pwned",
    "/%0d%0aSet-Cookie:%20x=1",  # header injection, encoded
    "/ /evil.example",
    " /evil.example",
    "/\\evil.example",  # /\host: a browser reads the backslash as a slash
    "\\\\evil.example",
    "/%5cevil.example",
    "/%5C%5Cevil.example",
    "/%2F%2Fevil.example",
    "%2F%2Fevil.example",
    "///evil.example",
    "https://evil.example/pwned",
    "http:evil.example",
    "//localhost/classes",  # protocol-relative, even to this host
    "http://localhost.evil.example/",
    "http://localhost@evil.example/",
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "/\u3000/evil.example",  # an ideographic space
    "/\uff0f\uff0fevil.example",  # fullwidth solidus
    "/\u0085/evil.example",  # NEL, a control character
    "evil.example",
    "/" + "a" * 2001,
    "",
]
ALLOWED = [
    "/bias-checks",
    "/account/password?from=menu",
    "/classes/7?since=2026-09-01&until=2026-09-30",
    "/students/0b6f/export?format=csv",
]


@dataclass(frozen=True)
class People:
    join_code: str
    personal_code: str
    class_id: int


@pytest.fixture
def people(app: Flask) -> People:
    """A teacher (a@north.test) with a class of one student: fewer password hashes than ``world``."""
    with app.app_context():
        school, _ = create_school(db.session(), "North")
        teacher = create_staff_user(db.session(), school, "a@north.test", "A", PASSWORD, role=Role.TEACHER)
        klass = create_class(db.session(), teacher, "Class A")
        [student] = enroll(db.session(), klass, ["student-a"])
        assert student.code is not None
        return People(klass.join_code, student.code, klass.id)


def visitor(app: Flask) -> Actor:
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"192.0.2.{uuid.uuid4().int % 250 + 1}"
    return Actor("visitor", client)


def sign_in_with_next(app: Flask, people: People, form: str, target: str) -> str:
    actor = visitor(app)
    if form == "staff":
        actor.refresh_csrf("/login")
        data = {"email": "a@north.test", "password": PASSWORD}
    else:
        actor.refresh_csrf("/student-login")
        data = {"join_code": people.join_code, "personal_code": people.personal_code}
    response = actor.client.post(
        f"/{'login' if form == 'staff' else 'student-login'}",
        query_string={"next": target},
        data={"csrf_token": actor.csrf, **data},
    )
    assert response.status_code == 302, response.get_data(as_text=True)
    return str(response.headers["Location"])


@pytest.mark.parametrize("target", REFUSED)
@pytest.mark.parametrize("form", ["staff", "student"])
def test_next_to_anywhere_else_goes_home(app: Flask, people: People, form: str, target: str) -> None:
    assert sign_in_with_next(app, people, form, target) == ("/classes" if form == "staff" else "/practice")


@pytest.mark.parametrize("target", ALLOWED)
@pytest.mark.parametrize("form", ["staff", "student"])
def test_next_to_a_path_on_this_site_is_followed(app: Flask, people: People, form: str, target: str) -> None:
    assert sign_in_with_next(app, people, form, target) == target


def test_an_absolute_url_of_this_site_is_taken_as_its_path(app: Flask, people: People) -> None:
    assert sign_in_with_next(app, people, "staff", "http://localhost/bias-checks?x=1") == "/bias-checks?x=1"


def test_a_signed_out_visitor_comes_back_to_the_page_they_opened(app: Flask, people: People) -> None:
    actor = visitor(app)
    page = f"/classes/{people.class_id}?since=2026-09-01"
    sent = actor.request("GET", page)
    assert sent.status_code == 302
    login_url = sent.headers["Location"]
    assert login_url.startswith("/login?next=")
    actor.refresh_csrf(login_url)
    signed = actor.request("POST", login_url, form={"email": "a@north.test", "password": PASSWORD})
    assert signed.status_code == 302 and signed.headers["Location"] == page


@pytest.mark.parametrize(
    ("referrer", "expected_next"),
    [
        ("http://localhost/me/data", "/me/data"),
        ("http://evil.example/me/data", "/"),
        ("http://localhost//evil.example/", "/"),
        ("http://localhost/\t/evil.example", "/"),
    ],
)
def test_a_form_sent_after_the_session_ended_goes_back_only_to_this_site(
    app: Flask, referrer: str, expected_next: str
) -> None:
    response = visitor(app).client.post(
        "/me/personalization", data={"personalized": "on"}, headers={"Referer": referrer}
    )
    assert response.status_code == 303
    assert response.headers["Location"] == f"/student-login?next={expected_next}"
