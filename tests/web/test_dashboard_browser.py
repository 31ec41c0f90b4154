"""A teacher's afternoon, in a real browser: sign in, open the class, read the heatmap, open a student,
download the CSV."""

from __future__ import annotations

import csv
from typing import Any

from flask import Flask

from app.extensions import db
from app.models import SchoolClass
from app.services.accounts import enroll
from tests.conftest import PASSWORD, World
from tests.web.conftest import screenshot


def test_teacher_reads_the_class_dashboard(app: Flask, world: World, page: Any, shipped_graph,
                                           tmp_path) -> None:
    with app.app_context():
        klass = db.session.get(SchoolClass, world.class_a)
        enroll(db.session(), klass, ["student-c", "student-d"])
    app1 = world.actors["app1"]
    for _ in range(6):
        chosen = app1.request("GET", f"/api/v1/students/{world.student_a}/next-exercise").get_json()
        app1.request("POST", f"/api/v1/students/{world.student_a}/responses",
                     json={"exercise_id": chosen["exercise"]["id"], "correct": True})
    skills = [s for s in shipped_graph.skill_order if shipped_graph.exercises_by_skill.get(s)]

    page.goto("/classes")
    assert page.url.endswith("/login?next=/classes")
    page.get_by_label("Email").fill("a@north.test")
    page.get_by_label("Password").fill(PASSWORD)
    page.keyboard.press("Enter")
    page.wait_for_url("**/classes")
    screenshot(page, "teacher-classes")
    page.get_by_role("link", name="Class A").click()
    page.wait_for_selector("table.heatmap")
    assert page.locator("table.heatmap td.cell").count() == 3 * len(skills)
    assert page.locator("table.heatmap tbody tr").count() == 3
    # Two students never answered: the dashboard says they need help, and why.
    help_text = page.locator("ul.help").inner_text()
    assert "student-c: no answers yet" in help_text and "student-d: no answers yet" in help_text
    screenshot(page, "teacher-class-dashboard")

    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download CSV").click()
    path = tmp_path / "report.csv"
    download_info.value.save_as(path)
    rows = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    assert rows[0][6:] == skills and [r[0] for r in rows[1:4]] == ["student-a", "student-c", "student-d"]
    assert rows[1][2] == "6"

    page.get_by_role("link", name="student-a").first.click()
    page.wait_for_selector("svg.chart")
    assert page.locator("svg.chart polyline.series").count() >= 1
    assert page.locator("table.why tbody tr").count() == 6
    assert page.get_by_role("heading", name="student-a").is_visible()
    screenshot(page, "teacher-student-page")
