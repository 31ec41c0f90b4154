"""Sessions end server-side: at sign-out (a copied cookie is worthless afterwards, on pages and the API),
and PERMANENT_SESSION_LIFETIME after sign-in however often the cookie is renewed."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from flask import Flask

from tests.conftest import Actor, World

SESSION_COOKIE = "session"


def copy_of(app: Flask, actor: Actor) -> Actor:
    """Another browser holding a copy of ``actor``'s session cookie (as a thief would)."""
    cookie = actor.client.get_cookie(SESSION_COOKIE)
    assert cookie is not None
    thief = Actor("thief", app.test_client())
    thief.client.set_cookie(SESSION_COOKIE, cookie.value)
    return thief


# (actor, a page, its sign-in page, an API route) — the API route filled in with the world's ids
CASES = [
    ("teacher_a", "/classes", "/login", "/api/v1/classes"),
    ("admin", "/admin/api-keys", "/login", "/api/v1/classes"),
    ("student_a", "/me", "/student-login", "/api/v1/students/{student_a}"),
]


@pytest.mark.parametrize(("name", "page", "sign_in", "api"), CASES)
def test_a_copied_cookie_is_worthless_after_sign_out(
    app: Flask, world: World, name: str, page: str, sign_in: str, api: str
) -> None:
    actor = world.actors[name]
    thief = copy_of(app, actor)
    api_url = api.format(student_a=world.student_a)
    assert thief.request("GET", page).status_code == 200  # the copy works while the session lives
    assert thief.request("GET", api_url).status_code == 200
    assert actor.request("POST", "/logout", form={}).status_code == 302
    replayed_page = thief.request("GET", page)
    assert replayed_page.status_code == 302 and replayed_page.headers["Location"].startswith(sign_in)
    replayed_api = thief.request("GET", api_url)
    assert replayed_api.status_code == 401 and replayed_api.get_json()["code"] == 401
    assert actor.request("GET", page).status_code == 302  # and the signed-out browser itself


def test_sign_out_ends_every_session_of_that_person(app: Flask, world: World) -> None:
    """One version per person: signing out on one device signs out the others too (as a password change
    does); other people stay signed in."""
    phone = Actor("phone", app.test_client())
    assert phone.sign_in_staff("a@north.test").status_code == 302
    assert phone.request("GET", "/classes").status_code == 200
    assert world.actors["teacher_a"].request("POST", "/logout", form={}).status_code == 302
    assert phone.request("GET", "/classes").status_code == 302
    assert world.actors["teacher_other"].request("GET", "/classes").status_code == 200
    assert world.actors["student_a"].request("GET", "/me").status_code == 200
    assert Actor("again", app.test_client()).sign_in_staff("a@north.test").status_code == 302


def test_a_session_ends_its_lifetime_after_sign_in_however_often_it_is_used(app: Flask, world: World) -> None:
    lifetime = app.permanent_session_lifetime
    with time_machine.travel(timedelta(0), tick=False) as clock:
        student = Actor("student", app.test_client())
        assert student.sign_in_student(world.join_a, world.code_a).status_code == 302
        for _ in range(3):  # used every few hours: each answer renews the cookie
            clock.shift(lifetime / 4)
            assert student.request("GET", "/me").status_code == 200
        clock.shift(lifetime / 4 + timedelta(minutes=1))
        ended = student.request("GET", "/me")
        assert ended.status_code == 302 and ended.headers["Location"].startswith("/student-login")
        assert student.request("GET", f"/api/v1/students/{world.student_a}").status_code == 401
