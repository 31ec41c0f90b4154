"""A student's whole session in a real browser (Debian's chromium via Playwright), on a phone-sized screen,
by keyboard, every page checked at 390 and 1280 px (axe-core, no sideways scrolling, no "P(L)"). The result
pages, /me and the API must show the same mastery estimate, moving the way the answer says."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from flask import Flask
from playwright.sync_api import expect

from app.domain.content import build_graph
from app.domain.wording import input_mode, percent
from app.extensions import db
from app.models import Response
from app.services.tutoring.content import sync_content
from app.services.tutoring.content_files import read_content
from tests.conftest import ROUNDING, World
from tests.web.screens import PHONE, check_page, on_path


def responses(app: Flask) -> list[Response]:
    with app.app_context():
        return list(
            db.session.scalars(
                sa.select(Response).options(sa.orm.selectinload(Response.skills)).order_by(Response.id)
            )
        )


def answer_current(page: Any, shipped_graph: Any, *, right: bool) -> str:
    """Answer the exercise on the page by keyboard; returns its id."""
    exercise = shipped_graph.exercises[page.locator("section.exercise").get_attribute("data-exercise-id")]
    if exercise.answer_kind == "multiple_choice":
        wrong = next(c for c in exercise.choices if c not in exercise.answers)
        page.get_by_label(exercise.answers[0] if right else wrong, exact=True).check()
        page.keyboard.press("Enter")
    else:
        # Focus lands on the input (within the page's first moments), with a keyboard that can type it.
        expect(page.locator("#answer")).to_be_focused(timeout=15_000)
        assert page.locator("#answer").get_attribute("inputmode") == input_mode(exercise)
        page.keyboard.type(exercise.answers[0] if right else "-98765")
        page.keyboard.press("Enter")
    page.wait_for_url(lambda url: urlsplit(url).path.startswith("/practice/answers/"))
    return exercise.id


def shown_changes(page: Any) -> dict[str, dict[str, Any]]:
    """Each skill line of a result page: before and after (percent text), direction, note."""
    out = {}
    for item in page.locator("ul.changes li").all():
        before = item.locator(".before")
        out[str(item.get_attribute("data-skill"))] = {
            "before": before.inner_text() if before.count() else None,
            "after": item.locator(".after").inner_text(),
            "direction": item.get_attribute("data-direction"),
            "note": item.locator(".note").inner_text() if item.locator(".note").count() else "",
        }
    return out


def check_result(
    page: Any, app: Flask, shipped_graph: Any, *, right: bool, hinted: bool = False
) -> dict[str, Any]:
    """The result page says what the trail stores, on one scale, and explains any surprising move."""
    latest = responses(app)[-1]
    assert latest.correct is right
    changes = shown_changes(page)
    assert set(changes) == {s.skill_id for s in latest.skills}
    for step in latest.skills:
        shown = changes[step.skill_id]
        # The mastery estimate before and after (never standard P(L) before the arrow).
        assert shown["before"] == f"{percent(step.estimate_before)}%"
        assert shown["after"] == f"{percent(step.estimate_after)}%"
        if right and not hinted:
            assert shown["direction"] != "down" or shown["note"], shown
        if not right:
            assert shown["direction"] != "up" or "mistake still counts as practice" in shown["note"], shown
        if right and hinted:
            assert "You used a hint" in shown["note"]
    # The worked solution, open after a mistake; steps as in the content.
    solution = page.locator("details.solution")
    assert solution.count() == 1
    assert (solution.get_attribute("open") is not None) is (not right)
    # Folded steps are not rendered: read their text, not what is on screen.
    steps = solution.locator("li").evaluate_all("items => items.map(i => i.textContent)")
    assert steps == list(shipped_graph.exercises[latest.exercise_id].solution)
    return changes


def test_a_student_practises_a_whole_session(
    app: Flask, world: World, browser: Any, live_server: str, shipped_graph
) -> None:
    context = browser.new_context(
        base_url=live_server, viewport={"width": PHONE, "height": 800}, accept_downloads=True
    )
    page = context.new_page()
    page.set_default_timeout(15_000)

    page.goto("/practice")
    assert "/student-login" in page.url and "Please sign in to continue" in page.content()
    check_page(page, "student-sign-in")
    page.get_by_label("Class code").fill(world.join_a)
    page.get_by_label("Your personal code").fill(world.code_a.lower())  # codes are not case-sensitive
    page.keyboard.press("Enter")
    page.wait_for_url(on_path("/practice"))
    check_page(page, "student-practice")
    why = page.locator("#why").inner_text()
    assert "probability" not in why and "target" not in why  # words for a student, not statistics

    # Several answers, right and wrong: each result shows the estimate before -> after and the solution.
    for i in range(4):
        right = i % 2 == 0
        answer_current(page, shipped_graph, right=right)
        heading = page.get_by_role("heading", level=1).inner_text()
        assert heading == ("Right!" if right else "Not quite.")
        if not right:
            assert page.locator(".correct-answer").is_visible()
        check_result(page, app, shipped_graph, right=right)
        if i < 2:
            check_page(page, "student-result-right" if right else "student-result-wrong")
        page.keyboard.press("Enter")  # "Next exercise" has the focus
        page.wait_for_url(on_path("/practice"))
    assert len(responses(app)) == 4

    # A hint, recorded with the answer that follows, and said to be why it counts less.
    page.get_by_role("button", name="Show a hint").click()
    page.wait_for_selector("p.hint")
    answer_current(page, shipped_graph, right=True)
    check_result(page, app, shipped_graph, right=True, hinted=True)
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
    last = shown_changes(page)  # the latest answer's skills, as its result page shows them

    # /me: what to do next first, progress by unit, the same numbers as the result page and the API.
    page.goto("/me")
    assert page.locator("h2").first.inner_text() == "What to practise next"
    assert page.get_by_role("link", name="Practise now").is_visible()
    progress = page.request.get(f"/api/v1/students/{world.student_a}/progress").json()
    estimates = {s["skill_id"]: s for s in progress["skills"]}
    for skill_id, shown in last.items():
        assert page.locator(f'li[data-skill="{skill_id}"] .pct').inner_text() == shown["after"]
        assert f"{percent(estimates[skill_id]['mastery_estimate'])}%" == shown["after"]
    practised = page.locator("ul.bars li").all()
    assert practised and all(item.locator("meter").count() == 1 for item in practised)
    for item in practised:
        skill_id = str(item.get_attribute("data-skill"))
        value = float(item.locator("meter").get_attribute("value") or "nan")
        # never an empty bar; the API rounds to 6 places (ROUNDING), the page gives the stored value
        assert abs(value - estimates[skill_id]["mastery_estimate"]) <= ROUNDING
        if estimates[skill_id]["attempts"] < 3 and not estimates[skill_id]["mastered_at"]:
            assert "just started" in item.inner_text()
    # Units where nothing has started stay folded; the page is short on a phone.
    folded = page.locator("details.unit:not([open])")
    assert folded.count() >= 1
    assert all("not started" in t for t in folded.locator("summary").all_inner_texts())
    assert page.locator("details.unit[open]").count() >= 1
    height = page.evaluate("document.documentElement.scrollHeight")
    assert height < 2500, f"/me is {height} px tall on a phone"
    check_page(page, "student-progress")

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

    # My data: opt out, then practice comes in the fixed order; export everything, worked solutions too.
    page.goto("/me/data")
    check_page(page, "student-my-data")
    page.get_by_role("button", name="Switch personalization off").click()
    assert page.get_by_role("button", name="Switch personalization on").is_visible()
    page.goto("/practice")
    assert page.locator("section.exercise").get_attribute("data-reason") == "fixed_order"
    page.goto("/me/data")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="as one file (JSON)").click()
    export = json.loads(download_info.value.path().read_text())
    assert len(export["responses"]) == len(responses(app)) and export["consents"][0]["granted"] is False
    assert all(
        r["solution"] == list(shipped_graph.exercises[r["exercise_id"]].solution) for r in export["responses"]
    )
    assert not re.search(r"P\(L\)", page.content())
    context.close()


def test_choices_are_large_readable_targets(
    app: Flask, world: World, browser: Any, live_server: str, shipped_graph
) -> None:
    # Student B answers through the app until the tutor offers a multiple-choice exercise.
    app1 = world.actors["app1"]
    for _ in range(40):
        chosen = app1.request("GET", f"/api/v1/students/{world.student_b}/next-exercise").get_json()
        if chosen["exercise"]["answer_kind"] == "multiple_choice":
            break
        app1.request(
            "POST",
            f"/api/v1/students/{world.student_b}/responses",
            json={"exercise_id": chosen["exercise"]["id"], "correct": True},
        )
    else:
        raise AssertionError("no multiple-choice exercise in 40 answers")
    context = browser.new_context(base_url=live_server, viewport={"width": PHONE, "height": 800})
    page = context.new_page()
    page.goto("/student-login")
    page.get_by_label("Class code").fill(world.join_b)
    page.get_by_label("Your personal code").fill(world.code_b)
    page.keyboard.press("Enter")
    page.wait_for_url(on_path("/practice"))
    exercise = shipped_graph.exercises[chosen["exercise"]["id"]]
    assert page.locator("section.exercise").get_attribute("data-exercise-id") == exercise.id
    radios = page.locator("input[type=radio]")
    assert radios.count() == len(exercise.choices)
    for i in range(radios.count()):
        box = radios.nth(i).bounding_box()
        label = page.locator("label.choice").nth(i).bounding_box()
        assert box and label and box["width"] >= 24 and box["height"] >= 24  # big enough to hit
        assert label["height"] >= 44  # the whole row is the target (WCAG 2.5.5's 44 px)
    # By keyboard: the first choice has the focus, arrows move through them, Enter sends.
    expect(radios.first).to_be_focused(timeout=15_000)
    page.keyboard.press("ArrowDown")
    assert radios.nth(1).is_checked()
    check_page(page, "student-practice-choices")
    context.close()


KINDS_CONTENT = Path(__file__).resolve().parents[1] / "fixtures" / "answer_kinds"


def test_a_student_answers_an_expression_and_puts_items_in_order(
    app: Flask, world: World, browser: Any, live_server: str
) -> None:
    """The newer kinds on /practice, by keyboard: an expression typed in another form than the accepted
    one, then an order given by typing each item's place (no dragging); both pages pass axe."""
    graph = read_content(KINDS_CONTENT)
    only = ("kinds-expression", "kinds-ordered")
    with app.app_context():
        sync_content(
            db.session(),
            build_graph(graph.skills.values(), [graph.exercises[e] for e in only]),
        )
    context = browser.new_context(base_url=live_server, viewport={"width": PHONE, "height": 800})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/student-login")
    page.get_by_label("Class code").fill(world.join_a)
    page.get_by_label("Your personal code").fill(world.code_a)
    page.keyboard.press("Enter")
    page.wait_for_url(on_path("/practice"))

    answered: set[str] = set()
    for _ in range(4):
        exercise_id = str(page.locator("section.exercise").get_attribute("data-exercise-id"))
        exercise = graph.exercises[exercise_id]
        if exercise.answer_kind == "expression":
            expect(page.locator("#answer")).to_be_focused(timeout=15_000)
            assert "Use x" in page.locator("#answer-help").inner_text()
            check_page(page, "student-practice-expression")
            page.keyboard.type("2(x + 3)")  # accepted: "2x + 6"
        else:
            check_page(page, "student-practice-ordered")
            shown = [page.locator(f"label[for=place-{i}]").inner_text() for i in range(1, 5)]
            assert sorted(shown) == sorted(exercise.answers) and shown != list(exercise.answers)
            expect(page.locator("#place-1")).to_be_focused(timeout=15_000)
            for i, item in enumerate(shown, start=1):
                field = page.get_by_label(item, exact=True)
                assert field.get_attribute("id") == f"place-{i}"
                field.fill(str(exercise.answers.index(item) + 1))
        page.get_by_role("button", name="Check").click()
        page.wait_for_url(lambda url: urlsplit(url).path.startswith("/practice/answers/"))
        assert page.get_by_role("heading", level=1).inner_text() == "Right!", page.content()
        if exercise.answer_kind == "ordered":
            assert "1. 1/8; 2. 1/3; 3. 1/2; 4. 3/4" in page.locator("p", has_text="Your answer").inner_text()
        answered.add(exercise_id)
        if answered == set(only):
            break
        page.get_by_role("link", name="Next exercise").click()
        page.wait_for_url(on_path("/practice"))
    assert answered == set(only)
    stored = {r.exercise_id: (r.correct, r.answer) for r in responses(app)}
    assert stored == {
        "kinds-expression": (True, "2(x + 3)"),
        "kinds-ordered": (True, '["1/8", "1/3", "1/2", "3/4"]'),
    }
    context.close()
