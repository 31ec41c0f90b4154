"""Bias checks through the service, the API and the page, on both databases; attributes with consent only,
and never used to teach."""

from __future__ import annotations

import ast
import json
import random
from pathlib import Path

import sqlalchemy as sa
from flask import Flask

from app.domain.access import Principal, Role
from app.extensions import db
from app.models import BiasReport, ConsentEvent, GroupAttribute, SchoolClass
from app.services.people.accounts import enroll
from app.services.tutoring.answers import record_response
from tests.conftest import World, finished_job

APP_DIR = Path(__file__).resolve().parents[2] / "app"


def checked(world: World, body: dict) -> dict:
    """POST a bias check (202: a job), wait for the worker to run it, and GET the stored check."""
    admin = world.actors["admin"]
    queued = admin.request("POST", "/api/v1/bias-checks", json=body)
    assert queued.status_code == 202, queued.get_json()
    job = finished_job(admin, queued.headers["Location"])
    assert job["state"] == "succeeded", job
    stored = admin.request("GET", job["result_url"])
    assert stored.status_code == 200
    return dict(stored.get_json())


def put_attributes(world: World, actor: str, student: str, values: dict, given_by: str = "parent"):
    return world.actors[actor].request(
        "PUT",
        f"/api/v1/students/{student}/group-attributes",
        json={"values": values, "consent_given_by": given_by},
    )


def test_attributes_need_an_admin_consent_and_valid_values(app: Flask, world: World) -> None:
    done = put_attributes(world, "admin", world.student_a, {"gender": "female", "language_learner": "yes"})
    assert done.status_code == 200 and done.get_json()["recorded"] == ["gender", "language_learner"]
    bad = put_attributes(world, "admin", world.student_a, {"gender": "robot", "shoe_size": "9"})
    assert bad.status_code == 422
    assert (
        "gender must be one of" in bad.get_json()["message"]
        and "unknown attribute 'shoe_size'" in bad.get_json()["message"]
    )
    assert put_attributes(world, "teacher_a", world.student_a, {"gender": "male"}).status_code == 403
    assert put_attributes(world, "app1", world.student_a, {"gender": "male"}).status_code == 403
    with app.app_context():
        assert dict(db.session.execute(sa.select(GroupAttribute.attribute, GroupAttribute.value)).all()) == {
            "gender": "female",
            "language_learner": "yes",
        }
    # The student declines: everything goes at once, and the withdrawal is recorded.
    url = f"/api/v1/students/{world.student_a}/group-attributes"
    declined = world.actors["student_a"].request("DELETE", url)
    assert declined.status_code == 200 and declined.get_json()["removed"] == 2
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(GroupAttribute)) == 0
        events = db.session.execute(
            sa.select(ConsentEvent.granted, ConsentEvent.given_by, ConsentEvent.scope)
            .where(ConsentEvent.kind == "group_attributes")
            .order_by(ConsentEvent.id)
        ).all()
    assert [(g, by) for g, by, _ in events] == [(True, "parent"), (False, "student")]
    export = world.actors["student_a"].request("GET", "/me/export").get_json()
    assert export["group_attributes"] == [] and len(export["consents"]) == 2


def test_csv_import_is_all_or_nothing(app: Flask, world: World, runner, tmp_path) -> None:
    good = tmp_path / "good.csv"
    good.write_text("external_id,consent_given_by,gender\nstudent-a,parent,female\nstudent-b,student,male\n")
    bad = tmp_path / "bad.csv"
    bad.write_text(
        "external_id,consent_given_by,gender\nstudent-a,parent,female\nghost,parent,male\nstudent-b,,male\n"
    )
    refused = runner.invoke(args=["import-group-attributes", str(bad), "--school", "North"])
    assert refused.exit_code == 1
    assert "line 3: no student 'ghost'" in refused.output
    assert "line 4: consent_given_by is empty" in refused.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(GroupAttribute)) == 0
    result = runner.invoke(args=["import-group-attributes", str(good), "--school", "North"])
    assert result.exit_code == 0 and "for 2 student(s)" in result.output


def test_attributes_are_never_read_by_tracing_or_selection(app: Flask, world: World, shipped_graph) -> None:
    # 1. By construction: only the bias, groups and privacy services (and the models) name the table.
    readers = set()
    for path in APP_DIR.rglob("*.py"):
        tree = ast.parse(path.read_text())
        names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)} | {
            n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute)
        }
        if "GroupAttribute" in names or "student_groups" in names:
            readers.add(path.relative_to(APP_DIR).as_posix())
    assert readers <= {
        "models.py",
        "services/people/groups.py",
        "services/reporting/bias.py",
        "services/reporting/privacy.py",
    }
    # 2. By behaviour: twins with the same answers, one with attributes, get the same recommendations.
    with app.app_context():
        klass = db.session.get(SchoolClass, world.class_a)
        twins = [e.student_id for e in enroll(db.session(), klass, ["twin-1", "twin-2"])]
    put_attributes(world, "admin", twins[1], {"gender": "non-binary", "disability_support": "yes"})
    app1 = world.actors["app1"]
    for step in range(6):
        bodies = [
            app1.request("GET", f"/api/v1/students/{t}/next-exercise?seed={step}").get_json() for t in twins
        ]
        assert {k: v for k, v in bodies[0].items() if k != "recommendation_id"} == {
            k: v for k, v in bodies[1].items() if k != "recommendation_id"
        }
        for twin in twins:
            app1.request(
                "POST",
                f"/api/v1/students/{twin}/responses",
                json={"exercise_id": bodies[0]["exercise"]["id"], "correct": step % 3 != 1},
            )
    timing = {"last_practiced_at", "mastered_at", "recall"}  # the twins answered milliseconds apart
    progress = [
        [
            {k: v for k, v in skill.items() if k not in timing}
            for skill in app1.request("GET", f"/api/v1/students/{t}/progress").get_json()["skills"]
        ]
        for t in twins
    ]
    assert progress[0] == progress[1]


def test_a_planted_slower_group_is_found_through_the_whole_pipeline(
    app: Flask, world: World, shipped_graph, jobs_worker
) -> None:
    """30 + 30 students; group "yes" answers right far less often on the same exercises, so it needs more
    answers to master: the check must flag it, say so in plain words, and store aggregates only."""
    rng = random.Random(5)
    with app.app_context():
        klass = db.session.get(SchoolClass, world.class_a)
        students = [e.student_id for e in enroll(db.session(), klass, [f"p-{i:02d}" for i in range(60)])]
        app_principal = Principal(Role.APP, "0", world.north, "sim")
        root = [s for s in shipped_graph.skill_order if shipped_graph.exercises_by_skill.get(s)][:3]
        for i, student in enumerate(students):
            slow = i >= 30
            for skill in root:
                for n, exercise in enumerate(shipped_graph.exercises_by_skill[skill][:8]):
                    correct = rng.random() < ((0.3 + 0.05 * n) if slow else (0.6 + 0.05 * n))
                    record_response(
                        db.session(), app_principal, student, exercise_id=exercise, correct=correct
                    )
    for i, student in enumerate(students):
        put_attributes(world, "admin", student, {"language_learner": "yes" if i >= 30 else "no"})
    stored = checked(world, {"attribute": "language_learner", "bootstrap": 300, "seed": 3})
    report = stored["report"]
    assert {g["group"]: g["students"] for g in report["groups"]} == {"no": 30, "yes": 30}
    flagged = " ".join(report["flagged"])
    assert "yes: " in flagged, flagged
    assert "mastered_within_n" in flagged or "attempts_to_mastery" in flagged, flagged
    assert any(line.startswith("yes: Review suggested") for line in report["summary"])
    assert report["settings"]["bootstrap"] == 300 and report["model"]["content_revision"] >= 1
    assert report["caveats"] and report["data"]["skills"] == "all"
    # Per skill too, corrected together with the overall tests as one family.
    assert set(report["per_skill"]) == set(root)
    assert all({g["group"] for g in s["groups"]} == {"no", "yes"} for s in report["per_skill"].values())
    assert report["tests"] == 4 * len(report["comparisons"])
    text = json.dumps(report)
    assert not any(s in text for s in students + ["p-00", "p-59"])  # aggregates only
    # Read by the school's teachers, in plain words, with charts; not by another school's app.
    page = world.actors["teacher_a"].request("GET", f"/bias-checks/{stored['id']}").get_data(as_text=True)
    assert "Review suggested" in page and page.count('<svg class="chart"') >= 5
    assert world.actors["app2"].request("GET", f"/api/v1/bias-checks/{stored['id']}").status_code == 403
    unknown = world.actors["admin"].request("POST", "/api/v1/bias-checks", json={"attribute": "shoe_size"})
    assert unknown.status_code == 422 and "unknown attribute 'shoe_size'" in unknown.get_json()["message"]


def test_multilearn_diagnostic_recovers_a_faster_group() -> None:
    """Students simulated with learn 0.3 (group fast) and 0.05 (group slow), REFERENCES §4's setup."""
    import pandas as pd

    from app.services.modelling.fitting import multilearn_diagnostic

    rng = random.Random(11)
    rows, order = [], 0
    for student in range(160):
        group = "fast" if student < 80 else "slow"
        learn, known = (0.3 if group == "fast" else 0.05), False
        for _ in range(15):
            order += 1
            correct = (rng.random() > 0.2) if known else (rng.random() < 0.2)
            rows.append(
                {
                    "order_id": order,
                    "user_id": f"s{student}",
                    "skill_name": "k",
                    "correct": int(correct),
                    "group": group,
                }
            )
            known = known or rng.random() < learn
    result = multilearn_diagnostic(pd.DataFrame(rows), "k", num_fits=3, seed=0)
    assert result.learn_by_group["fast"] > 2 * result.learn_by_group["slow"]
    assert result.learn_by_group["slow"] < result.pooled_learn < result.learn_by_group["fast"]
    assert result.log_likelihood_gain > 5 and result.n_responses == 2400


def test_a_check_before_any_attribute_is_recorded_says_so(app: Flask, world: World, jobs_worker) -> None:
    stored = checked(world, {"attribute": "gender", "bootstrap": 50})
    report = stored["report"]
    assert report["groups"] == [] and report["flagged"] == []
    assert report["summary"] == ["No student has a recorded gender: there is nothing to compare."]
    page = world.actors["admin"].request("GET", f"/bias-checks/{stored['id']}")
    assert page.status_code == 200 and "nothing to compare" in page.get_data(as_text=True)


def students_with_attributes(app: Flask, world: World, shipped_graph, *, quiet: int, active: int) -> None:
    """``quiet`` students (language_learner yes, gender female) who never answered; ``active`` students
    (language_learner no) with a few answers each."""
    from app.services.people.groups import set_group_attributes

    admin = Principal(Role.ADMIN, "operator", world.north, "operator")
    with app.app_context():
        klass = db.session.get(SchoolClass, world.class_a)
        names = [f"q-{i:02d}" for i in range(quiet + active)]
        ids = [e.student_id for e in enroll(db.session(), klass, names)]
        skill = next(s for s in shipped_graph.skill_order if shipped_graph.exercises_by_skill.get(s))
        for i, student in enumerate(ids):
            if i < quiet:
                set_group_attributes(
                    db.session(),
                    admin,
                    student,
                    {"language_learner": "yes", "gender": "female"},
                    consent_given_by="parent",
                )
                continue
            set_group_attributes(
                db.session(), admin, student, {"language_learner": "no"}, consent_given_by="parent"
            )
            for n, exercise in enumerate(shipped_graph.exercises_by_skill[skill][:4]):
                record_response(
                    db.session(),
                    Principal(Role.APP, "0", world.north, "sim"),
                    student,
                    exercise_id=exercise,
                    correct=(n + i) % 3 != 0,
                )


def test_a_group_without_answers_is_reported_as_such_not_a_500(
    app: Flask, world: World, shipped_graph, runner, jobs_worker
) -> None:
    """10 students with an attribute and no answers used to crash the check (IndexError in reduceat)."""
    students_with_attributes(app, world, shipped_graph, quiet=10, active=12)
    admin = world.actors["admin"]
    stored = checked(world, {"attribute": "language_learner", "bootstrap": 50})
    report = stored["report"]
    groups = {g["group"]: g for g in report["groups"]}
    assert groups["yes"]["status"] == "no answers" and groups["yes"]["metrics"] == {}
    assert groups["yes"]["students"] == 10 and groups["yes"]["responses"] == 0
    assert groups["no"]["status"] == "insufficient data" and report["reference"] == "no"
    assert "yes: no answers in the window (10 students)" in report["summary"]
    assert all(c["group"] != "yes" for c in report["comparisons"])
    page = admin.request("GET", f"/bias-checks/{stored['id']}")
    assert page.status_code == 200 and "no answers in the window" in page.get_data(as_text=True)
    cli = runner.invoke(
        args=["audit-bias", "--attribute", "language_learner", "--school", "North", "--bootstrap", "50"]
    )
    assert cli.exit_code == 0, cli.output
    assert "yes: no answers in the window (10 students)" in cli.output


def test_a_window_without_any_answer_is_a_clear_422_and_stores_nothing(
    app: Flask, world: World, shipped_graph, runner
) -> None:
    students_with_attributes(app, world, shipped_graph, quiet=10, active=12)
    admin = world.actors["admin"]
    future = admin.request(
        "POST",
        "/api/v1/bias-checks",
        json={"attribute": "language_learner", "since": "2999-01-01T00:00:00Z", "bootstrap": 50},
    )
    assert future.status_code == 422, future.get_json()
    assert future.get_json()["message"] == (
        "no student with a recorded language_learner answered since 2999-01-01 00:00 UTC: there is nothing "
        "to check (widen the window or wait for answers)"
    )
    # Only the quiet students have a gender: the web form answers the same, as a page.
    form = admin.request("POST", "/bias-checks", form={"attribute": "gender"})
    assert form.status_code == 422
    assert "no student with a recorded gender answered: there is nothing to check" in form.get_data(
        as_text=True
    )
    cli = runner.invoke(
        args=[
            "audit-bias",
            "--attribute",
            "language_learner",
            "--school",
            "North",
            "--from",
            "2999-01-01",
            "--bootstrap",
            "50",
        ]
    )
    assert cli.exit_code == 1 and "Traceback" not in cli.output
    assert cli.output.strip() == (
        "Error: no student with a recorded language_learner answered since "
        "2999-01-01 00:00 UTC: there is nothing to check (widen the window or "
        "wait for answers)"
    )
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(BiasReport)) == 0
