"""The staff's content pages (/admin/content): in a real browser, a teacher finds an exercise and tries it
as a student would (a wrong answer, then the right one, each graded as practice grades it) and nothing is
recorded; with the test client, the kinds that send several values, paging, and bad input."""

from __future__ import annotations

import html
from typing import Any

import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import expect

from app.extensions import db
from app.models import Mastery, Recommendation, Response
from tests.conftest import PASSWORD, World
from tests.web.screens import LAPTOP, check_page, on_path

MULTIPLE_CHOICE = "factors-multiples-002"  # "Which of these is NOT a factor of 36?" -> 16


def recorded(app: Flask) -> tuple[int, int, int]:
    with app.app_context():
        found = tuple(
            db.session.scalar(sa.select(sa.func.count()).select_from(model)) or 0
            for model in (Response, Recommendation, Mastery)
        )
        db.session.commit()
    return found  # type: ignore[return-value]


def test_a_teacher_finds_an_exercise_and_tries_it_without_recording_anything(
    app: Flask, world: World, page: Any
) -> None:
    before = recorded(app)
    page.set_viewport_size({"width": LAPTOP, "height": 900})
    page.goto("/login?next=/classes")
    page.get_by_label("Email").fill("a@north.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(on_path("/classes"))
    page.get_by_role("link", name="Exercises").click()  # in the navigation, for staff
    page.wait_for_url(on_path("/admin/content"))
    page.get_by_label("Find by id, prompt, skill or unit").fill("factor of 36")
    page.get_by_role("button", name="Find").click()
    expect(page.get_by_role("status")).to_contain_text("matching “factor of 36”")
    check_page(page, "content-list", back_to=LAPTOP)
    page.get_by_role("link", name=MULTIPLE_CHOICE).click()
    page.wait_for_url(on_path(f"/admin/content/{MULTIPLE_CHOICE}"))
    expect(page.locator("#prompt")).to_have_text("Which of these is NOT a factor of 36?")
    check_page(page, "content-try", back_to=LAPTOP)

    page.get_by_label("9").check()
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("heading", name="Not quite.")).to_be_visible()
    expect(page.locator(".tried .correct-answer")).to_have_text("16")
    expect(page.locator("details.solution")).to_have_attribute("open", "")
    page.get_by_label("16").check()
    page.get_by_role("button", name="Check").click()
    expect(page.get_by_role("heading", name="Right!")).to_be_visible()
    page.locator("details.hint summary").first.click()  # hints open on request, as in practice
    expect(page.locator("details.hint p").first).to_have_text("A factor of 36 divides 36 with no remainder.")
    assert recorded(app) == before  # no response, no recommendation, no mastery row


def test_the_answers_are_graded_as_practice_grades_them(app: Flask, world: World) -> None:
    admin = world.actors["admin"]  # signed in
    admin.refresh_csrf(f"/admin/content/{MULTIPLE_CHOICE}")
    wrong = admin.request("POST", f"/admin/content/{MULTIPLE_CHOICE}", form={"answer": "18"})
    assert wrong.status_code == 200 and "Not quite." in wrong.get_data(as_text=True)
    right = admin.request("POST", f"/admin/content/{MULTIPLE_CHOICE}", form={"answer": "16"})
    assert right.status_code == 200 and "Right!" in right.get_data(as_text=True)
    # A choice that is not a choice is refused as practice refuses it, with the reason; nothing is graded.
    odd = admin.request("POST", f"/admin/content/{MULTIPLE_CHOICE}", form={"answer": "17"})
    text = html.unescape(odd.get_data(as_text=True))
    assert odd.status_code == 400 and "Right!" not in text and "Not quite." not in text
    assert "choice" in text
    empty = admin.request("POST", f"/admin/content/{MULTIPLE_CHOICE}", form={"answer": "  "})
    assert empty.status_code == 400 and "Type or choose an answer first." in empty.get_data(as_text=True)
    # A numeric exercise: the accepted answer, and a wrong one with the accepted answer shown.
    numeric = "add-whole-001"
    admin.refresh_csrf(f"/admin/content/{numeric}")
    body = admin.request("POST", f"/admin/content/{numeric}", form={"answer": "1"}).get_data(as_text=True)
    assert "Not quite." in body and 'class="correct-answer">99<' in body
    assert admin.request("GET", "/admin/content/no-such-exercise").status_code == 404


def test_the_list_pages_and_finds(app: Flask, world: World) -> None:
    teacher = world.actors["teacher_a"]  # signed in
    first = teacher.request("GET", "/admin/content").get_data(as_text=True)
    assert "page 1 of" in first and first.count("data-exercise-id=") == 50
    last = teacher.request("GET", "/admin/content?page=9999").get_data(as_text=True)  # the last page
    pages = int(first.split("page 1 of ")[1].split("<")[0].split()[0])
    assert f"page {pages} of {pages}" in last and 'rel="next"' not in last
    found = teacher.request("GET", "/admin/content?q=ADD-WHOLE-001").get_data(as_text=True)  # any case
    assert "1 exercise matching" in found and found.count("data-exercise-id=") == 1
    none = teacher.request("GET", "/admin/content?q=zzzz-nothing").get_data(as_text=True)
    assert "0 exercises matching" in none and "data-exercise-id=" not in none
