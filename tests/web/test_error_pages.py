"""One error page (``app.errors.render_error``) for every error outside /api, and it never reads the
database: a signed-in page whose database went away is a 503 to retry, not a 500."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from app.extensions import db
from tests.conftest import Actor, World, make_app

MESSAGE = "The database is busy or unavailable; nothing was recorded. Retry shortly."


@pytest.fixture
def unreachable(database_url: str, tmp_path: Path) -> Iterator[Flask]:
    """The same app (same SECRET_KEY, so the same cookies are valid) with its database gone: on SQLite a
    file that cannot be opened, on PostgreSQL a server that does not answer."""
    url = (
        f"sqlite:///{tmp_path / 'gone' / 'tutor.sqlite3'}"
        if database_url.startswith("sqlite")
        else "postgresql+psycopg://postgres@127.0.0.1:1/nowhere"
    )
    gone = make_app(url)
    yield gone
    with gone.app_context():
        db.engine.dispose()


def with_cookie_of(app: Flask, actor: Actor) -> Actor:
    cookie = actor.client.get_cookie("session")
    assert cookie is not None
    moved = Actor(actor.name, app.test_client())
    moved.client.set_cookie("session", cookie.value)
    moved.csrf = actor.csrf
    return moved


@pytest.mark.parametrize(
    ("name", "pages"),
    [
        ("teacher_a", ["/classes", "/account/password", "/bias-checks"]),
        ("student_a", ["/me", "/practice", "/me/data"]),
    ],
)
def test_a_signed_in_page_with_the_database_down_is_a_503_page(
    app: Flask, world: World, unreachable: Flask, name: str, pages: list[str]
) -> None:
    signed_in = with_cookie_of(unreachable, world.actors[name])
    for page in pages:
        response = signed_in.request("GET", page)
        assert response.status_code == 503, page
        assert response.mimetype == "text/html" and response.headers["Retry-After"] == "2"
        assert MESSAGE in response.get_data(as_text=True)
    posted = signed_in.request("POST", "/logout", form={})
    assert posted.status_code == 503 and MESSAGE in posted.get_data(as_text=True)


def test_the_api_with_a_session_and_the_database_down_is_a_503(
    app: Flask, world: World, unreachable: Flask
) -> None:
    response = with_cookie_of(unreachable, world.actors["student_a"]).request(
        "GET", f"/api/v1/students/{world.student_a}"
    )
    assert response.status_code == 503 and response.get_json()["message"] == MESSAGE


def test_an_error_page_still_shows_who_is_signed_in(app: Flask, world: World) -> None:
    """The principal the request had loaded before the error: the page keeps its navigation."""
    other_class = world.actors["teacher_a"].request("GET", f"/classes/{world.class_b}")
    assert other_class.status_code == 404
    text = other_class.get_data(as_text=True)
    assert "Sign out (A)" in text and "Unknown class" in text
    staff_page = world.actors["student_a"].request("GET", "/classes")
    assert staff_page.status_code == 403 and "Sign out (student-a)" in staff_page.get_data(as_text=True)
    missing = world.actors["student_a"].request("GET", "/no-such-page")  # no user was loaded: no menu
    assert missing.status_code == 404 and "Sign out" not in missing.get_data(as_text=True)
