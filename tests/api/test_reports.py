"""Reports through HTTP on both databases: the numbers agree with the stored state and the log."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

from flask import Flask
from markupsafe import escape

from app.domain.wording import percent
from app.extensions import db
from app.models import Mastery, Response
from tests.conftest import World


def practise(world: World, shipped_graph, skill_id: str, answers: list[bool]) -> list[dict]:
    """Student A answers exercises of one skill through app 1; returns the response bodies."""
    app1 = world.actors["app1"]
    exercises = [
        e
        for e in shipped_graph.exercises_by_skill[skill_id]
        if len(shipped_graph.exercises[e].skill_ids) == 1
    ]
    bodies = []
    for i, correct in enumerate(answers):
        response = app1.request(
            "POST",
            f"/api/v1/students/{world.student_a}/responses",
            json={"exercise_id": exercises[i % len(exercises)], "correct": correct},
        )
        assert response.status_code == 201, response.get_json()
        bodies.append(response.get_json())
    return bodies


def practicable(shipped_graph) -> list[str]:
    return [s for s in shipped_graph.skill_order if shipped_graph.exercises_by_skill.get(s)]


def test_student_report_agrees_with_progress(app: Flask, world: World, shipped_graph) -> None:
    root = practicable(shipped_graph)[0]
    practise(world, shipped_graph, root, [False, True, False, False])
    teacher = world.actors["teacher_a"]
    report = teacher.request("GET", f"/api/v1/students/{world.student_a}/report").get_json()
    progress = {
        s["skill_id"]: s
        for s in teacher.request("GET", f"/api/v1/students/{world.student_a}/progress").get_json()["skills"]
    }
    skills = {s["skill_id"]: s for s in report["skills"]}
    first = skills[root]
    assert first["attempts"] == 4 and first["correct_count"] == 1 and first["accuracy"] == 0.25
    assert first["mastery_estimate"] == progress[root]["p_mastery_paced"] and first["status"] == "learning"
    assert first["prediction"] == "estimate" and first["predicted_attempts_to_mastery"] >= 1
    assert report["answers"] == 4 and report["skills_total"] == len(practicable(shipped_graph))
    untouched = [s for s in report["skills"] if s["attempts"] == 0]
    assert all(not s["enough_data"] and s["prediction"] == "not_enough_data" for s in untouched)
    locked = [s for s in untouched if s["prerequisites"]]
    assert locked and all(s["status"] == "locked" for s in locked) and report["locked"] == len(locked)
    # Students see their own report; the same numbers.
    own = world.actors["student_a"].request("GET", f"/api/v1/students/{world.student_a}/report").get_json()
    assert own["skills"] == report["skills"]


def test_attempts_to_mastery_are_recorded_when_mastery_is_reached(
    app: Flask, world: World, shipped_graph
) -> None:
    root = practicable(shipped_graph)[0]
    bodies = practise(world, shipped_graph, root, [True] * 15)
    first_mastered = next(
        i
        for i, b in enumerate(bodies, start=1)
        if any(s["mastered"] for s in b["skills"] if s["skill_id"] == root)
    )
    report = world.actors["teacher_a"].request("GET", f"/api/v1/classes/{world.class_a}/report").get_json()
    column = report["skills"][[s["skill_id"] for s in report["skills"]].index(root)]
    assert column["median_attempts_to_mastery"] == first_mastered
    assert column["mastered"] == 1 and column["share_mastered"] == 1.0
    with app.app_context():
        row = db.session.get(Mastery, (world.student_a, root))
        assert row.attempts_at_mastery == first_mastered and row.attempts == 15


def test_class_report_json_csv_and_dashboard_agree(app: Flask, world: World, shipped_graph) -> None:
    skills = practicable(shipped_graph)
    practise(world, shipped_graph, skills[0], [True, True, False, True, True])
    teacher = world.actors["teacher_a"]
    report = teacher.request("GET", f"/api/v1/classes/{world.class_a}/report").get_json()
    assert [s["skill_id"] for s in report["skills"]] == skills  # prerequisite order
    [student] = report["students"]
    assert student["external_id"] == "student-a" and len(student["cells"]) == len(skills)
    assert student["answers"] == 5 and student["cells"][0]["attempts"] == 5
    assert student["cells"][0]["enough_data"]
    p = student["cells"][0]["mastery_estimate"]
    rows = list(
        csv.reader(
            io.StringIO(teacher.request("GET", f"/classes/{world.class_a}/report.csv").get_data(as_text=True))
        )
    )
    # Tidy: a header, then one row per student, nothing else; estimates as whole percents.
    assert len(rows) == 2 and rows[0][6:] == skills and rows[1][0] == "student-a" and rows[1][2] == "5"
    assert rows[1][6] == str(percent(p)) and rows[1][7] == ""
    summary = list(
        csv.DictReader(
            io.StringIO(teacher.request("GET", f"/classes/{world.class_a}/skills.csv").get_data(as_text=True))
        )
    )
    assert [r["skill"] for r in summary] == skills
    assert summary[0]["practising"] == "1" and summary[0]["students"] == "1"
    assert summary[0]["mastered_percent"] == str(percent(report["skills"][0]["share_mastered"]))
    html = teacher.request("GET", f"/classes/{world.class_a}").get_data(as_text=True)
    assert len(re.findall(r'<td class="cell ', html)) == len(skills)
    assert f"Place value: {percent(p)}%, " in html and "after 5 answers (4 right without a hint)" in html


def test_report_window(app: Flask, world: World, shipped_graph) -> None:
    root = practicable(shipped_graph)[0]
    bodies = practise(world, shipped_graph, root, [True, False, True, True])
    ten_days_ago = datetime.now(UTC) - timedelta(days=10)
    with app.app_context():
        for body in bodies[:2]:  # the first two answers were given ten days ago
            db.session.get(Response, body["id"]).created_at = ten_days_ago
        db.session.commit()
    teacher = world.actors["teacher_a"]
    until = (datetime.now(UTC) - timedelta(days=5)).isoformat()
    since = (datetime.now(UTC) - timedelta(days=3)).isoformat()
    then = teacher.client.get(
        f"/api/v1/classes/{world.class_a}/report", query_string={"until": until}
    ).get_json()
    [student] = then["students"]
    assert student["answers"] == 2 and student["cells"][0]["attempts"] == 2
    assert not student["cells"][0]["enough_data"]  # 2 answers: not enough data, even then
    window = teacher.client.get(
        f"/api/v1/classes/{world.class_a}/report", query_string={"since": since}
    ).get_json()["students"][0]
    assert window["answers"] == 4 and window["answers_in_window"] == 2
    # the mastery estimate now: the last answer's P(L), its memory still whole (practised today)
    assert window["cells"][0]["mastery_estimate"] == bodies[-1]["skills"][0]["mastery_estimate_after"]
    assert window["cells"][0]["mastery_estimate"] == bodies[-1]["skills"][0]["p_mastery_paced_after"]
    backwards = teacher.client.get(
        f"/api/v1/classes/{world.class_a}/report", query_string={"since": since, "until": until}
    )
    assert backwards.status_code == 422 and "since" in backwards.get_json()["errors"]["query"]
    garbage = teacher.client.get(f"/api/v1/classes/{world.class_a}/report", query_string={"until": "soon"})
    assert garbage.status_code == 422
    # The page takes dates; a bad one is a 400 that names it.
    page = teacher.request("GET", f"/classes/{world.class_a}?until=2026-13-01")
    assert page.status_code == 400 and "&#39;until&#39; must be a date" in page.get_data(as_text=True)
    day = (datetime.now(UTC) - timedelta(days=7)).date().isoformat()
    html = teacher.request("GET", f"/classes/{world.class_a}?until={day}").get_data(as_text=True)
    assert "student-a · Place value: 2 answers, 1 right without a hint: too early to judge" in html


def test_student_page_plots_mastery_and_explains_choices(app: Flask, world: World, shipped_graph) -> None:
    app1 = world.actors["app1"]
    practised = set()
    for _ in range(3):
        chosen = app1.request("GET", f"/api/v1/students/{world.student_a}/next-exercise").get_json()
        practised.update(chosen["exercise"]["skill_ids"])
        app1.request(
            "POST",
            f"/api/v1/students/{world.student_a}/responses",
            json={"exercise_id": chosen["exercise"]["id"], "correct": True},
        )
    html = world.actors["teacher_a"].request("GET", f"/students/{world.student_a}").get_data(as_text=True)
    assert '<svg class="chart"' in html  # one line per skill practised
    assert sorted(re.findall(r'<polyline class="series" data-skill="([^"]+)"', html)) == sorted(practised)
    # Teachers read the reason in their own words (never the student-addressed text) beside the prompt.
    assert chosen["explanation"] not in html and html.count("<td>right</td>") == 3
    assert str(escape(shipped_graph.exercises[chosen["exercise"]["id"]].prompt)) in html
    assert "P(L)" not in html
