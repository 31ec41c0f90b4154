"""A student's whole session in a real browser (Debian's chromium via Playwright), on a phone-sized screen,
by keyboard, with an automated accessibility pass (axe-core) on every main page."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from axe_playwright_python.sync_playwright import Axe
from flask import Flask
from playwright.sync_api import expect

from app.extensions import db
from app.models import Response
from tests.conftest import World
from tests.web.conftest import screenshot

AXE = Axe()


def on_path(path: str) -> Any:
    return lambda url: urlsplit(url).path == path


def accessible(page: Any, name: str) -> None:
    """No axe-core violation on the page (WCAG A/AA rules and best practices), and no sideways scrolling."""
    violations = AXE.run(page).response["violations"]
    summary = [(v["id"], v["impact"], [n["target"] for n in v["nodes"]][:3]) for v in violations]
    assert summary == [], f"{name}: {summary}"
    fits = page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert fits, f"{name} scrolls sideways"
    screenshot(page, f"student-{name}")


def responses(app: Flask) -> list[Response]:
    with app.app_context():
        return list(db.session.scalars(sa.select(Response).order_by(Response.id)))


def answer_current(page: Any, shipped_graph: Any, *, right: bool) -> str:
    """Answer the exercise on the page by keyboard; returns its id."""
    exercise = shipped_graph.exercises[page.locator("section.exercise").get_attribute("data-exercise-id")]
    if exercise.answer_kind == "multiple_choice":
        wrong = next(c for c in exercise.choices if c not in exercise.answers)
        page.get_by_label(exercise.answers[0] if right else wrong, exact=True).check()
        page.keyboard.press("Enter")
    else:
        # Focus lands on the input (within the page's first moments).
        expect(page.locator("#answer")).to_be_focused(timeout=3000)
        page.keyboard.type(exercise.answers[0] if right else "-98765")
        page.keyboard.press("Enter")
    page.wait_for_url(lambda url: urlsplit(url).path.startswith("/practice/answers/"))
    return exercise.id


def test_a_student_practises_a_whole_session(app: Flask, world: World, browser: Any, live_server: str,
                                             shipped_graph) -> None:
    context = browser.new_context(base_url=live_server, viewport={"width": 375, "height": 740},
                                  accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(15_000)

    page.goto("/practice")
    assert "/student-login" in page.url and "Please sign in to continue" in page.content()
    accessible(page, "sign-in")
    page.get_by_label("Class code").fill(world.join_a)
    page.get_by_label("Your personal code").fill(world.code_a.lower())  # codes are not case-sensitive
    page.keyboard.press("Enter")
    page.wait_for_url(on_path("/practice"))
    accessible(page, "practice")

    # Several answers, right and wrong, each shown with the correct answer when wrong.
    for i in range(4):
        answer_current(page, shipped_graph, right=i % 2 == 0)
        heading = page.get_by_role("heading", level=1).inner_text()
        assert heading == ("Right!" if i % 2 == 0 else "Not quite.")
        if i % 2:
            assert page.locator(".correct-answer").is_visible()
        if i == 1:
            accessible(page, "result")
        page.keyboard.press("Enter")  # "Next exercise" has the focus
        page.wait_for_url(on_path("/practice"))
    assert len(responses(app)) == 4

    # A hint, recorded with the answer that follows.
    page.get_by_role("button", name="Show a hint").click()
    page.wait_for_selector("p.hint")
    answer_current(page, shipped_graph, right=True)
    assert "You used 1 hint(s)" in page.content()
    assert responses(app)[-1].hints_used == 1 and responses(app)[-1].correct is True

    # Refreshing the result, and sending the same answer again, record nothing new.
    page.reload()
    page.go_back()
    page.wait_for_url(on_path("/practice"))
    form = page.locator("form.answer")
    action = form.get_attribute("action")
    token = page.locator("form.answer input[name=csrf_token]").get_attribute("value")
    page.get_by_role("link", name="Practise").click()
    before = len(responses(app))
    exercise = shipped_graph.exercises[page.locator("section.exercise").get_attribute("data-exercise-id")]
    field = page.locator("#answer") if exercise.answer_kind != "multiple_choice" else None
    if field is not None:
        field.fill("12345")
    else:
        page.get_by_label(exercise.choices[0], exact=True).check()
    page.get_by_role("button", name="Check").dblclick()  # a double click
    page.wait_for_url(lambda url: urlsplit(url).path.startswith("/practice/answers/"))
    assert len(responses(app)) == before + 1
    first = page.url
    # That same form (as the back button would show it), sent again with another answer: its first
    # result, nothing recorded.
    resent = page.request.post(live_server + str(action), form={"csrf_token": str(token), "answer": "1"})
    assert resent.ok and urlsplit(resent.url).path == urlsplit(first).path
    assert len(responses(app)) == before + 1
    page.goto(first)
    page.reload()
    assert len(responses(app)) == before + 1

    # The progress page shows the change, along the prerequisite steps, and what comes next.
    page.goto("/me")
    assert page.get_by_role("heading", name="Step 1", exact=True).is_visible()
    assert page.locator("meter").count() == len([s for s in shipped_graph.skill_order
                                                 if shipped_graph.exercises_by_skill.get(s)])
    practised = [float(v) for v in page.locator("meter").evaluate_all("ms => ms.map(m => m.value)") if v > 0]
    assert practised
    assert page.get_by_role("heading", name="What to practise next").is_visible()
    accessible(page, "progress")

    # The tutor unreachable: a friendly message, and the button works again.
    page.goto("/practice")
    page.route("**/practice/*/answer", lambda route: route.abort())
    if page.locator("#answer").count():
        page.locator("#answer").fill("7")
    else:
        page.locator("input[type=radio]").first.check()
    page.get_by_role("button", name="Check").click()
    page.wait_for_selector("text=The tutor cannot be reached right now")
    assert page.get_by_role("button", name="Check").is_enabled()
    page.unroute("**/practice/*/answer")

    # The session ends: answering leads to sign-in, with a word about why.
    context.clear_cookies()
    page.get_by_role("button", name="Check").click()
    page.wait_for_url(on_path("/student-login"))
    assert "Please sign in to continue" in page.content()
    page.get_by_label("Class code").fill(world.join_a)
    page.get_by_label("Your personal code").fill(world.code_a)
    page.keyboard.press("Enter")
    page.wait_for_url(on_path("/practice"))

    # My data: opt out, then practice comes in the fixed order; export everything.
    page.goto("/me/data")
    accessible(page, "my-data")
    page.get_by_role("button", name="Switch personalization off").click()
    assert page.get_by_role("button", name="Switch personalization on").is_visible()
    page.goto("/practice")
    assert page.locator("section.exercise").get_attribute("data-reason") == "fixed_order"
    page.goto("/me/data")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="as one file (JSON)").click()
    export = json.loads(download_info.value.path().read_text())
    assert len(export["responses"]) == len(responses(app)) and export["consents"][0]["granted"] is False
    context.close()
