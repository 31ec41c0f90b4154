"""The pages, through HTTP on both databases: counts that agree, words for people on every page, units
from the content, worked solutions after (never before) an answer, the demo data, bias checks in words."""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask

from app.domain.access import Principal, Role
from app.extensions import db
from app.models import ConsentEvent, GroupAttribute, Response, Skill, Student
from app.services.modelling.mastery import check_mastery
from app.services.operations.demo import CLASS_NAME, CONSENT_BY, FRESH_STUDENTS
from app.services.operations.job_kinds import start_purge
from app.services.reporting.bias import run_bias_check
from app.services.tutoring.config import mastery_rules
from app.services.tutoring.content import current_snapshot, sync_content
from tests.conftest import Actor, World


def answer(world: World, exercise_id: str, correct: bool, hints: int = 0) -> dict[str, Any]:
    posted = world.actors["app1"].request(
        "POST",
        f"/api/v1/students/{world.student_a}/responses",
        json={"exercise_id": exercise_id, "correct": correct, "hints_used": hints},
    )
    assert posted.status_code == 201, posted.get_json()
    return dict(posted.get_json())


def test_units_are_synced_from_the_content_and_read_back(app: Flask, shipped_graph) -> None:
    with app.app_context():
        stored = dict(db.session.execute(sa.select(Skill.id, Skill.unit)).all())
        assert stored == {s.id: s.unit for s in shipped_graph.skills.values()}
        assert current_snapshot(db.session()).graph.skills["gcf"].unit == "Factors and multiples"
        # A changed unit is a content change: the next load writes it.
        skills = {
            **shipped_graph.skills,
            "gcf": type(shipped_graph.skills["gcf"])(
                **{
                    **{
                        f: getattr(shipped_graph.skills["gcf"], f)
                        for f in ("id", "name", "description", "prerequisites", "bkt")
                    },
                    "unit": "Number theory",
                }
            ),
        }
        changed = type(shipped_graph)(
            skills, shipped_graph.exercises, shipped_graph.skill_order, shipped_graph.exercises_by_skill
        )
        assert sync_content(db.session(), changed).updated_skills == ["gcf"]
        assert db.session.get(Skill, "gcf").unit == "Number theory"


def test_an_answer_to_a_two_skill_exercise_counts_once_everywhere(
    app: Flask, world: World, shipped_graph
) -> None:
    # The student page said "16 answer(s)" where the CSV and the API said 15: it summed the skills'
    # attempts, and an exercise of two skills counted twice.
    both = next(e for e in shipped_graph.exercises.values() if len(e.skill_ids) == 2)
    single = next(e for e in shipped_graph.exercises.values() if len(e.skill_ids) == 1)
    answer(world, both.id, True)
    answer(world, single.id, False)
    teacher = world.actors["teacher_a"]
    html = teacher.request("GET", f"/students/{world.student_a}").get_data(as_text=True)
    assert '<span class="answers">2 answers</span>' in html
    assert teacher.request("GET", f"/api/v1/students/{world.student_a}/report").get_json()["answers"] == 2
    [student] = teacher.request("GET", f"/api/v1/classes/{world.class_a}/report").get_json()["students"]
    rows = list(
        csv.DictReader(
            io.StringIO(teacher.request("GET", f"/classes/{world.class_a}/report.csv").get_data(as_text=True))
        )
    )
    assert student["answers"] == 2 and rows[0]["answers"] == "2"
    roster = teacher.request("GET", f"/api/v1/classes/{world.class_a}").get_json()["students"]
    assert roster[0]["answers"] == 2


def test_worked_solutions_after_the_answer_in_the_api_and_the_export(
    app: Flask, world: World, shipped_graph
) -> None:
    exercise = next(e for e in shipped_graph.exercises.values() if len(e.skill_ids) == 1)
    app1 = world.actors["app1"]
    shown = app1.request("GET", f"/api/v1/exercises/{exercise.id}").get_json()
    assert "solution" not in shown and "answers" not in shown  # never before the answer
    body = answer(world, exercise.id, False)
    assert body["solution"] == list(exercise.solution)
    export = app1.request("GET", f"/api/v1/students/{world.student_a}/export").get_json()
    assert [r["solution"] for r in export["responses"]] == [list(exercise.solution)]
    bundle = zipfile.ZipFile(
        io.BytesIO(app1.request("GET", f"/api/v1/students/{world.student_a}/export?format=csv").get_data())
    )
    [row] = list(csv.DictReader(io.StringIO(bundle.read("responses.csv").decode())))
    assert json.loads(row["solution"]) == list(exercise.solution)


def pages_of(app: Flask) -> list[str]:
    """Every page route (GET, not the API, not a download or a static file), from the URL map."""
    rules = [
        r
        for r in app.url_map.iter_rules()
        if "GET" in (r.methods or set())
        and not r.rule.startswith(("/api", "/static"))
        and not r.rule.endswith((".csv", "/export"))
    ]
    return sorted(r.rule for r in rules)


def test_no_page_shows_statistics_jargon(app: Flask, world: World, shipped_graph) -> None:
    # Student A practises a little (a right answer, a wrong one after a hint) so that every page has
    # numbers to show; then every page is rendered for everyone who may see it and scanned for "P(L)".
    student = world.actors["student_a"]
    practice = student.request("GET", "/practice").get_data(as_text=True)
    recommendation = re.search(r"/practice/(\d+)/answer", practice)
    assert recommendation
    exercise_id = re.search(r'data-exercise-id="([^"]+)"', practice)
    assert exercise_id
    exercise = shipped_graph.exercises[exercise_id.group(1)]
    student.request(
        "POST", f"/practice/{recommendation.group(1)}/answer", form={"answer": exercise.answers[0]}
    )
    with app.app_context():
        response_id = db.session.scalar(sa.select(sa.func.max(Response.id)))
        bias_id = run_bias_check(
            db.session(),
            Principal(Role.ADMIN, "operator", world.north, "operator"),
            "class",
            bootstrap=50,
            permutations=20,
        ).id
        job_id = start_purge(
            db.session(), Principal(Role.ADMIN, "operator", world.north, "operator"), dry_run=True
        )[0].id
    values = {
        "<id:class_id>": str(world.class_a),
        "<student_id>": world.student_a,
        "<id:response_id>": str(response_id),
        "<id:report_id>": str(bias_id),
        "<id:job_id>": str(job_id),
        "<exercise_id>": "add-whole-001",
        "<token>": "no-such-request",  # a deep linking request (tests/web/test_lti_advantage.py shows one)
    }
    scanned = 0
    for rule in pages_of(app):
        url = rule
        for placeholder, value in values.items():
            url = url.replace(placeholder, value)
        assert "<" not in url, f"no example value for {rule}: add one"
        for name in ("anonymous", "student_a", "teacher_a", "admin"):
            page = world.actors[name].request("GET", url)
            if page.status_code == 200 and page.mimetype == "text/html":
                text = page.get_data(as_text=True)
                assert "P(L)" not in text and "paced" not in text, (name, url)
                scanned += 1
    assert scanned >= 18, scanned  # each page for each of its readers
    # An error page too.
    missing = world.actors["teacher_a"].request("GET", "/students/nobody")
    assert missing.status_code == 404 and "P(L)" not in missing.get_data(as_text=True)


def test_the_dashboard_flags_a_student_whose_answers_contradict_the_estimate(
    app: Flask, world: World, shipped_graph
) -> None:
    singles = [
        e
        for e in shipped_graph.exercises_by_skill["place-value"]
        if len(shipped_graph.exercises[e].skill_ids) == 1
    ]
    for i, correct in enumerate([True, False, False, False, False]):
        answer(world, singles[i], correct)
    html = world.actors["teacher_a"].request("GET", f"/classes/{world.class_a}").get_data(as_text=True)
    assert "Got 1 of their last 5 answers right." in html
    assert '<li data-student="student-a">' in html


def test_a_bias_check_without_a_comparable_group_says_so_in_words(app: Flask, world: World) -> None:
    admin = world.actors["admin"]
    assert (
        admin.request(
            "PUT",
            f"/api/v1/students/{world.student_a}/group-attributes",
            json={"values": {"disability_support": "yes"}, "consent_given_by": "parent"},
        ).status_code
        == 200
    )
    answer(world, "place-value-001", True)
    with app.app_context():
        report_id = run_bias_check(
            db.session(),
            Principal(Role.ADMIN, "operator", world.north, "operator"),
            "disability_support",
            bootstrap=50,
            permutations=20,
        ).id
    html = admin.request("GET", f"/bias-checks/{report_id}").get_data(as_text=True)
    assert "reference group: ·" not in html and "disability_support" not in html.split("<main")[1]
    assert "Bias check: Disability support" in html and "With disability support" in html
    assert "no group had enough students with answers to compare" in html
    assert "No group has numbers to show" in html
    listing = admin.request("GET", "/bias-checks").get_data(as_text=True)
    assert '<option value="disability_support">Disability support</option>' in listing


def test_the_demo_command_creates_marked_consistent_data_once(app: Flask, runner) -> None:
    refused = runner.invoke(args=["create-demo", "--students", "0"])
    assert refused.exit_code == 1 and "Error: students must be at least 1, got 0" in refused.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Student)) == 0  # nothing written
    made = runner.invoke(args=["create-demo", "--students", "20", "--weeks", "1", "--answers-per-day", "3"])
    assert made.exit_code == 0, made.output
    out = made.stdout
    assert re.search(r"Teacher: teacher@demo\.school  password \S{12,}", out)
    assert re.search(r"Admin:   admin@demo\.school  password \S{12,}", out)
    codes = re.findall(r"^    (\S+) +(\S+)  \((.+)\)$", out, re.M)
    assert [c[0] for c in codes] == [*FRESH_STUDENTS, "sim-01"]
    join = re.search(r"class code (\S+) with a personal code", out)
    assert join
    # The printed sign-ins work: the teacher sees the demo class, sim-01 their simulated progress.
    password = re.search(r"Teacher: teacher@demo\.school  password (\S+)", out)
    assert password
    teacher = Actor("teacher", app.test_client())
    assert teacher.sign_in_staff("teacher@demo.school", password.group(1)).status_code == 302
    assert CLASS_NAME in teacher.request("GET", "/classes").get_data(as_text=True)
    simulated = Actor("sim-01", app.test_client())
    assert simulated.sign_in_student(join.group(1), codes[-1][1]).status_code == 302
    assert '<ul class="bars">' in simulated.request("GET", "/me").get_data(as_text=True)
    with app.app_context():
        session = db.session()
        # Marked as demo data, answers in the past at the time each was given, replayable exactly.
        students = list(session.scalars(sa.select(Student).where(Student.external_id.like("sim-%"))))
        assert len(students) == 20 and all(s.answer_count > 0 for s in students)
        times = list(session.scalars(sa.select(Response.created_at)))
        now = datetime.now(UTC)
        assert len(times) == sum(s.answer_count for s in students)
        assert all(now - timedelta(days=8) < (t if t.tzinfo else t.replace(tzinfo=UTC)) < now for t in times)
        assert len({t.date() for t in times}) == 5  # five school days
        assert check_mastery(session, mastery_rules()) == []
        consents = list(
            session.scalars(sa.select(ConsentEvent).where(ConsentEvent.kind == "group_attributes"))
        )
        assert len(consents) == 20 and {c.given_by for c in consents} == {CONSENT_BY}
        attributes = dict(
            session.execute(
                sa.select(GroupAttribute.value, sa.func.count())
                .where(GroupAttribute.attribute == "language_learner")
                .group_by(GroupAttribute.value)
            ).all()
        )
        assert attributes == {"yes": 10, "no": 10}
    # The class page names it as demo data; a second run changes nothing and says why.
    again = runner.invoke(args=["create-demo"])
    assert again.exit_code == 0 and "already exists" in again.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Student)) == 23
        assert "demo data" in CLASS_NAME
