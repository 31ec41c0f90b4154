"""A teacher, then an admin, in a real browser, in the demo that ``scripts/serve`` creates (smaller): the
class dashboard, a student's page, the CSV downloads and a bias check. The numbers on the pages, in the
CSV files and in the API agree; every page is checked at 390 and 1280 px (axe-core, no sideways
scrolling, no "P(L)")."""

from __future__ import annotations

import csv
import re
from typing import Any

from flask import Flask

from app.domain.wording import percent
from app.extensions import db
from app.services.operations.demo import ADMIN_EMAIL, FRESH_STUDENTS, TEACHER_EMAIL, DemoConfig, create_demo
from tests.conftest import PASSWORD
from tests.web.screens import LAPTOP, check_page, on_path

CELL_SYMBOL = {"mastered": "✓", "due_for_review": "↻", "needs_relearning": "!"}


def sign_in(page: Any, email: str) -> None:
    page.goto("/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url(on_path("/classes"))


def download(page: Any, link: str, path: Any) -> list[dict[str, str]]:
    with page.expect_download() as download_info:
        page.get_by_role("link", name=link).click()
    download_info.value.save_as(path)
    return list(csv.DictReader(path.read_text(encoding="utf-8").splitlines()))


def test_teacher_and_admin_in_the_demo(app: Flask, page: Any, shipped_graph, tmp_path, jobs_worker) -> None:
    with app.app_context():
        demo = create_demo(
            db.session(),
            teacher_password=PASSWORD,
            admin_password=PASSWORD,
            config=DemoConfig(students=20, weeks=1, answers_per_session=6),
            bias_check=False,
        )
    skills = [s for s in shipped_graph.skill_order if shipped_graph.exercises_by_skill.get(s)]
    page.set_viewport_size({"width": LAPTOP, "height": 800})

    page.goto("/classes")
    assert page.url.endswith("/login?next=/classes")
    check_page(page, "teacher-sign-in", back_to=LAPTOP)
    sign_in(page, TEACHER_EMAIL)
    check_page(page, "teacher-classes", back_to=LAPTOP)
    page.get_by_role("link", name=re.compile("Demo class")).click()
    page.wait_for_selector("table.heatmap")

    # The heatmap: every student and skill, grouped by unit, all 43 columns visible at 1280 px.
    assert page.locator("table.heatmap tbody tr").count() == 23
    assert page.locator("table.heatmap td.cell").count() == 23 * len(skills)
    units = {shipped_graph.skills[s].unit for s in skills}
    assert page.locator("table.heatmap th.unit").count() == len(units)
    wrap = page.locator(".heatmap-wrap")
    assert wrap.evaluate("w => w.scrollWidth <= w.clientWidth"), "the heatmap scrolls sideways at 1280 px"
    header = page.locator("table.heatmap tr.skills th").first
    assert header.evaluate("th => getComputedStyle(th).position") == "sticky"

    # What to do next: groupings and the students to check, with their numbers a click away.
    groupings = page.locator("ul.groupings li").all_inner_texts()
    assert groupings
    assert all(re.match(r"\d+ students (are stuck on|need a refresh of) ", g) for g in groupings)
    assert "No answers yet." in page.locator('ul.help li[data-student="demo-1"]').text_content()
    assert page.locator("ul.help details.numbers").count() >= 1
    assert "P(L)" not in page.content() and "paced" not in page.locator(".legend").inner_text()
    check_page(page, "teacher-class-dashboard", back_to=LAPTOP)

    # The API, the heatmap and the CSV say the same.
    api = page.request.get(f"/api/v1/classes/{demo.class_id}/report").json()
    assert [s["skill_id"] for s in api["skills"]] == skills
    students = {s["external_id"]: s for s in api["students"]}
    rows = {r["student"]: r for r in download(page, "Students (CSV)", tmp_path / "students.csv")}
    assert set(rows) == set(students) == {*(f"sim-{i:02d}" for i in range(1, 21)), *FRESH_STUDENTS}
    members = page.request.get(f"/api/v1/classes/{demo.class_id}").json()["students"]
    roster = {s["external_id"]: s for s in members}
    shown_cells = 0
    for name, student in students.items():
        assert rows[name]["answers"] == str(student["answers"])
        assert rows[name]["skills_mastered"] == str(student["skills_mastered"])
        assert (roster[name]["answers"], roster[name]["skills_mastered"]) == (
            student["answers"],
            student["skills_mastered"],
        )
        line = page.locator("table.heatmap tbody tr", has=page.get_by_role("link", name=name, exact=True))
        for skill_id, cell in zip(skills, student["cells"], strict=True):
            expected_csv = str(percent(cell["mastery_estimate"])) if cell["enough_data"] else ""
            assert rows[name][skill_id] == expected_csv
            if cell["enough_data"]:
                column = skills.index(skill_id)
                text = line.locator("td.cell").nth(column).inner_text()
                expected = CELL_SYMBOL.get(cell["status"], str(percent(cell["mastery_estimate"])))
                assert text == expected, (name, skill_id)
                shown_cells += 1
    assert shown_cells > 20
    summary = {r["skill"]: r for r in download(page, "Skills (CSV)", tmp_path / "skills.csv")}
    for skill in api["skills"]:
        assert summary[skill["skill_id"]]["mastered"] == str(skill["mastered"])
        assert summary[skill["skill_id"]]["mastered_percent"] == str(percent(skill["share_mastered"]))

    # A student's page: the same answer count as the CSV and the API, the same estimates as their
    # progress, prompts (not ids), the tutor's reasons in a teacher's words with the numbers folded away.
    busiest = max(api["students"], key=lambda s: (s["answers"], s["external_id"]))
    page.get_by_role("link", name=busiest["external_id"], exact=True).first.click()
    page.wait_for_selector("svg.chart")
    answers = page.locator("p.summary .answers").inner_text()
    assert answers == f"{busiest['answers']} answers" == f"{rows[busiest['external_id']]['answers']} answers"
    progress = {
        s["skill_id"]: s
        for s in page.request.get(f"/api/v1/students/{busiest['student_id']}/progress").json()["skills"]
    }
    listed = page.locator("table.skills tr[data-skill]").all()
    assert listed
    for row in listed:
        skill_id = str(row.get_attribute("data-skill"))
        assert row.locator(".pct").inner_text() == f"{percent(progress[skill_id]['mastery_estimate'])}%"
    why = page.locator("table.why tbody tr")
    assert why.count() == 20
    prompts = page.locator("table.why td.prompt-cell").all_inner_texts()
    assert all(p in {e.prompt for e in shipped_graph.exercises.values()} for p in prompts)
    assert not re.search(r"\b[a-z-]+-\d{3}\b", page.locator("table.why").inner_text())  # no exercise ids
    assert "you" not in " ".join(page.locator("table.why td:nth-child(3)").all_inner_texts()).lower().split()
    assert page.locator("table.why details.numbers").count() >= 1
    check_page(page, "teacher-student-page", back_to=LAPTOP)
    page.goto("/account/password")
    check_page(page, "teacher-password", back_to=LAPTOP)
    assert page.goto("/students/nobody").status == 404  # the error page, in the same frame
    check_page(page, "error-page", back_to=LAPTOP)

    # The admin runs a bias check: groups and the reference group in words, numbers per group.
    page.get_by_role("button", name=re.compile("Sign out")).click()
    sign_in(page, ADMIN_EMAIL)
    page.goto("/bias-checks")
    options = page.locator("select option").all_inner_texts()
    assert "Learning the language of instruction" in options and not any("_" in o for o in options)
    check_page(page, "admin-bias-checks", back_to=LAPTOP)
    page.get_by_label("Group students by").select_option(label="Learning the language of instruction")
    page.get_by_role("button", name="Run a check").click()
    # A job: its page follows it (a worker of the test runs it), then shows the check.
    page.wait_for_url(lambda url: "/bias-checks/" in url)
    reference = page.locator("strong.reference").inner_text()
    assert reference in ("Language learners", "Not language learners")
    assert "reference group: ·" not in page.content() and "language_learner" not in page.inner_text("main")
    assert page.locator("section.metric svg.chart").count() >= 3
    groups = page.locator("table.groups tbody tr td:first-child").all_inner_texts()
    assert sorted(groups) == ["Language learners", "Not language learners"]
    check_page(page, "admin-bias-check", back_to=LAPTOP)
    page.goto("/admin/api-keys")
    check_page(page, "admin-api-keys", back_to=LAPTOP)
