"""A student's data rights through HTTP and the CLI, on both databases: export, deletion, retention,
opt-out, access log, minimization."""

from __future__ import annotations

import io
import json
import logging
import zipfile
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from flask import Flask

from app.extensions import db
from app.models import (
    AccessLogEntry,
    ConsentEvent,
    DeletionRecord,
    Mastery,
    Recommendation,
    Response,
    Student,
    StudentBaseline,
)
from app.services.modelling.mastery import check_mastery, rebuild_mastery
from app.settings import current_settings
from tests.conftest import World


def practise(world: World, n: int, student: str | None = None) -> list[dict[str, Any]]:
    """n answers by app 1 for a student, each to the recommended exercise; alternately right and wrong."""
    app1 = world.actors["app1"]
    student = student or world.student_a
    bodies = []
    for i in range(n):
        chosen = app1.request("GET", f"/api/v1/students/{student}/next-exercise").get_json()
        exercise = chosen["exercise"]
        payload: dict[str, Any] = {"exercise_id": exercise["id"], "client_response_id": f"r-{i}"}
        if i % 2:  # graded by the service: the answer text is stored
            payload["answer"] = (
                exercise["choices"][-1] if exercise["answer_kind"] == "multiple_choice" else "-98765.4321"
            )
        else:
            payload["correct"] = True
        response = app1.request("POST", f"/api/v1/students/{student}/responses", json=payload)
        assert response.status_code == 201, response.get_json()
        bodies.append(response.get_json())
    return bodies


def test_export_holds_everything_and_explains_it(app: Flask, world: World) -> None:
    practise(world, 4)
    teacher = world.actors["teacher_a"]
    assert (
        teacher.request(
            "PATCH", f"/api/v1/students/{world.student_a}", json={"personalized": False}
        ).status_code
        == 200
    )
    assert teacher.request("GET", f"/api/v1/students/{world.student_a}/report").status_code == 200
    response = teacher.request("GET", f"/api/v1/students/{world.student_a}/export")
    assert response.status_code == 200 and "attachment" in response.headers["Content-Disposition"]
    export = response.get_json()
    assert export["profile"]["external_id"] == "student-a" and export["profile"]["answer_count"] == 4
    assert [c["name"] for c in export["classes"]] == ["Class A"]
    sent = export["responses"][1]["answer"]
    assert len(export["responses"]) == 4 and sent and export["responses"][1]["graded_by"] == "server"
    assert all(r["skills"] and r["recommendation_id"] for r in export["responses"])
    assert len(export["recommendations"]) >= 4 and all(r["explanation"] for r in export["recommendations"])
    assert export["mastery"] and all(0 <= m["p_mastery"] <= 1 for m in export["mastery"])
    [consent] = export["consents"]
    assert consent["kind"] == "personalization" and consent["granted"] is False
    assert consent["actor"].startswith("teacher:")
    reads = [(a["actor"].split(":")[0], a["what"]) for a in export["access_log"]]
    assert ("teacher", "report") in reads and ("teacher", "export") in reads
    assert "Bayesian knowledge tracing" in export["how_it_works"] and "95%" in export["how_it_works"]
    assert export["sign_in"]["personal_code_issued_at"] and "code_hash" not in json.dumps(export)

    bundle = zipfile.ZipFile(
        io.BytesIO(teacher.request("GET", f"/api/v1/students/{world.student_a}/export?format=csv").get_data())
    )
    assert set(bundle.namelist()) == {
        "how_it_works.txt",
        "profile.csv",
        "sign_in.csv",
        "classes.csv",
        "responses.csv",
        "mastery.csv",
        "purged_history.csv",
        "recommendations.csv",
        "consents.csv",
        "access_log.csv",
        "group_attributes.csv",
        "lms_accounts.csv",
        "lms_scores.csv",
    }
    responses_csv = bundle.read("responses.csv").decode().splitlines()
    assert len(responses_csv) == 1 + sum(len(r["skills"]) for r in export["responses"])
    assert sent in bundle.read("responses.csv").decode()
    assert teacher.request("GET", f"/api/v1/students/{world.student_a}/export?format=xml").status_code == 422


def test_students_export_their_own_data_and_their_reads_are_not_logged(app: Flask, world: World) -> None:
    practise(world, 2)
    student = world.actors["student_a"]
    for url in (f"/api/v1/students/{world.student_a}/progress", f"/api/v1/students/{world.student_a}/report"):
        assert student.request("GET", url).status_code == 200
    own = student.request("GET", "/me/export")
    assert own.status_code == 200 and json.loads(own.get_data())["profile"]["id"] == world.student_a
    assert own.headers["Content-Disposition"].startswith("attachment")
    zipped = student.request("GET", "/me/export?format=csv")
    assert zipfile.ZipFile(io.BytesIO(zipped.get_data())).read("how_it_works.txt")
    with app.app_context():
        actors = set(
            db.session.scalars(
                sa.select(AccessLogEntry.actor).where(AccessLogEntry.student_id == world.student_a)
            )
        )
    assert not any(a.startswith("student:") for a in actors)


def test_every_read_by_others_is_logged_without_content(app: Flask, world: World) -> None:
    practise(world, 2)
    for actor, url in (
        ("app1", f"/api/v1/students/{world.student_a}/progress"),
        ("admin", f"/api/v1/students/{world.student_a}"),
        ("teacher_a", f"/api/v1/classes/{world.class_a}/report"),
        ("teacher_a", f"/students/{world.student_a}"),
        ("teacher_a", f"/api/v1/students/{world.student_a}/recommendations"),
    ):
        assert world.actors[actor].request("GET", url).status_code == 200, url
    with app.app_context():
        rows = db.session.execute(
            sa.select(AccessLogEntry.actor, AccessLogEntry.what)
            .where(AccessLogEntry.student_id == world.student_a)
            .order_by(AccessLogEntry.id)
        ).all()
    kinds = [(actor.split(":")[0], what) for actor, what in rows]
    # One row per read: the teacher's page of the student reads its report, history and recommendations
    # as one access.
    assert kinds == [
        ("app", "progress"),
        ("admin", "profile"),
        ("teacher", "class report"),
        ("teacher", "student page"),
        ("teacher", "recommendations"),
    ]
    assert {c.name for c in AccessLogEntry.__table__.columns} == {
        "id",
        "student_id",
        "actor",
        "actor_name",
        "what",
        "created_at",
    }  # who, what, when: no content


def every_reference(student_id: str) -> dict[str, int]:
    """Rows in any table, any column, that hold this id (as a value, or inside JSON or text)."""
    found: dict[str, int] = {}
    for table in db.metadata.sorted_tables:
        for column in table.columns:
            text = sa.cast(column, sa.String)
            hits = db.session.scalar(
                sa.select(sa.func.count())
                .select_from(table)
                .where(sa.or_(text == student_id, text.contains(student_id)))
            )
            if hits:
                found[f"{table.name}.{column.name}"] = hits
    return found


def test_deletion_leaves_no_row_referencing_the_student(app: Flask, world: World, runner) -> None:
    practise(world, 6)
    teacher = world.actors["teacher_a"]
    teacher.request("PATCH", f"/api/v1/students/{world.student_a}", json={"personalized": False})
    teacher.request("GET", f"/api/v1/students/{world.student_a}/report")
    with app.app_context():
        db.session.execute(
            sa.update(Response)
            .where(Response.student_id == world.student_a)
            .where(Response.client_response_id.in_(["r-0", "r-1"]))
            .values(created_at=datetime.now(UTC) - timedelta(days=500))
        )
        db.session.commit()
    assert runner.invoke(args=["purge-expired"]).exit_code == 0  # a baseline row exists too
    with app.app_context():
        assert db.session.get(StudentBaseline, world.student_a) is not None
        assert every_reference(world.student_a)  # the scan finds the student while they exist
    assert teacher.request("DELETE", f"/api/v1/students/{world.student_a}").status_code == 403
    deleted = world.actors["app1"].request("DELETE", f"/api/v1/students/{world.student_a}")
    assert deleted.status_code == 200
    counts = deleted.get_json()["deleted"]
    assert counts["students"] == 1 and counts["responses"] == 4 and counts["student_baselines"] == 1
    assert counts["consent_events"] == 1 and counts["access_log"] >= 1 and counts["class_members"] == 1
    with app.app_context():
        assert every_reference(world.student_a) == {}
        record = db.session.scalar(sa.select(DeletionRecord))
        assert record.actor.startswith("app:") and record.rows_deleted == counts
    assert world.actors["app1"].request("GET", f"/api/v1/students/{world.student_a}").status_code == 404
    report = teacher.request("GET", f"/api/v1/classes/{world.class_a}/report").get_json()
    assert report["students"] == []  # aggregate reports no longer count them
    # The operator's command does the same for student B.
    practise(world, 2, student=world.student_b)
    refused = runner.invoke(args=["delete-student", world.student_b], input="n\n")
    assert refused.exit_code == 1
    result = runner.invoke(args=["delete-student", world.student_b, "--yes"])
    assert result.exit_code == 0 and "students 1" in result.output and "responses 2" in result.output
    with app.app_context():
        assert every_reference(world.student_b) == {}
    missing = runner.invoke(args=["delete-student", world.student_b, "--yes"])
    assert missing.exit_code == 1 and "Unknown student" in missing.output


def test_purge_keeps_the_current_state_and_drops_the_raw_history(app: Flask, world: World, runner) -> None:
    bodies = practise(world, 8)
    old = datetime.now(UTC) - timedelta(days=400)
    teacher = world.actors["teacher_a"]
    teacher.request("GET", f"/api/v1/students/{world.student_a}/report")
    with app.app_context():
        first_five = [b["id"] for b in bodies[:5]]
        db.session.execute(sa.update(Response).where(Response.id.in_(first_five)).values(created_at=old))
        db.session.execute(
            sa.update(Recommendation)
            .where(Recommendation.student_id == world.student_a)
            .where(Recommendation.id <= bodies[4]["recommendation_id"])
            .values(created_at=old)
        )
        db.session.execute(sa.update(AccessLogEntry).values(created_at=old))
        db.session.commit()
        # Answers 400 days old are forgotten by now: the stored state must be what the tracker makes of the
        # log as it now stands (times matter to the memory model), before the purge is checked against it.
        rebuild_mastery(db.session(), rules=current_settings().mastery)
        mastery_before = {
            m.skill_id: (m.p_mastery, m.attempts) for m in db.session.scalars(sa.select(Mastery))
        }
        logged = db.session.scalar(sa.select(sa.func.count()).select_from(AccessLogEntry))
    dry = runner.invoke(args=["purge-expired", "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "Would delete responses: 5" in dry.output and f"Would delete access_log: {logged}" in dry.output
    assert "Would delete recommendations: 5" in dry.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Response)) == 8  # nothing deleted
    done = runner.invoke(args=["purge-expired"])
    assert done.exit_code == 0 and "Deleted responses: 5" in done.output, done.output
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Response)) == 3
        assert db.session.scalar(sa.select(sa.func.count()).select_from(AccessLogEntry)) == 0
        after = {m.skill_id: (m.p_mastery, m.attempts) for m in db.session.scalars(sa.select(Mastery))}
        assert after == mastery_before  # the current state is kept
        assert db.session.get(Student, world.student_a).answer_count == 8
        # ...and still equals a replay of baseline + what is left
        assert check_mastery(db.session(), current_settings().mastery) == []
        rebuild_mastery(db.session(), rules=current_settings().mastery)
        rebuilt = {m.skill_id: (m.p_mastery, m.attempts) for m in db.session.scalars(sa.select(Mastery))}
        assert rebuilt.keys() == after.keys() and all(
            abs(rebuilt[k][0] - after[k][0]) < 1e-9 and rebuilt[k][1] == after[k][1] for k in after
        )
        assert db.session.get(Student, world.student_a).answer_count == 8
    # Practice goes on after the purge, and a second purge folds on top of the first.
    practise(world, 2)
    with app.app_context():
        assert check_mastery(db.session(), current_settings().mastery) == []
    export = teacher.request("GET", f"/api/v1/students/{world.student_a}/export").get_json()
    assert export["purged_history"]["answers_purged"] == 5 and len(export["responses"]) == 5


def test_opt_out_by_each_party_is_recorded_and_practice_goes_on(app: Flask, world: World, runner) -> None:
    url = f"/api/v1/students/{world.student_a}"
    assert world.actors["app1"].request("PATCH", url, json={"personalized": False}).status_code == 200
    assert world.actors["teacher_a"].request("PATCH", url, json={"personalized": True}).status_code == 200
    student = world.actors["student_a"]
    page = student.request("GET", "/me/data").get_data(as_text=True)
    assert "Switch personalization off" in page
    assert student.request("POST", "/me/personalization", form={"personalized": "off"}).status_code == 302
    assert "Personalization is off" in student.request("GET", "/me/data").get_data(as_text=True)
    assert runner.invoke(args=["set-personalization", world.student_a, "on"]).exit_code == 0
    assert runner.invoke(args=["set-personalization", world.student_a, "off"]).exit_code == 0
    with app.app_context():
        events = db.session.execute(
            sa.select(ConsentEvent.granted, ConsentEvent.actor).order_by(ConsentEvent.id)
        ).all()
    assert [g for g, _ in events] == [False, True, False, True, False]
    assert [a.split(":")[0] for _, a in events] == ["app", "teacher", "student", "admin", "admin"]
    assert events[-1][1] == "admin:operator"
    chosen = world.actors["app1"].request("GET", f"/api/v1/students/{world.student_a}/next-exercise")
    assert chosen.status_code == 200 and chosen.get_json()["reason"] == "fixed_order"


def test_export_command(app: Flask, world: World, runner, tmp_path) -> None:
    practise(world, 2)
    printed = runner.invoke(args=["export-student", world.student_a])
    assert printed.exit_code == 0 and json.loads(printed.stdout)["profile"]["id"] == world.student_a
    target = tmp_path / "a.zip"
    written = runner.invoke(
        args=["export-student", world.student_a, "--format", "csv", "--output", str(target)]
    )
    assert written.exit_code == 0 and "responses.csv" in zipfile.ZipFile(target).namelist()
    assert runner.invoke(args=["export-student", world.student_a, "--format", "csv"]).exit_code == 1
    with app.app_context():
        assert (
            db.session.scalar(
                sa.select(sa.func.count())
                .select_from(AccessLogEntry)
                .where(AccessLogEntry.actor == "admin:operator")
            )
            == 2
        )


def test_logs_never_hold_answers_or_codes(app: Flask, world: World, caplog, shipped_graph) -> None:
    caplog.set_level(logging.DEBUG)
    secret_answer = "-4711.0815"
    numeric = next(e.id for e in shipped_graph.exercises.values() if e.answer_kind == "numeric")
    answered = world.actors["app1"].request(
        "POST",
        f"/api/v1/students/{world.student_a}/responses",
        json={"exercise_id": numeric, "answer": secret_answer},
    )
    assert answered.status_code == 201
    from tests.web.test_sign_in import fresh

    fresh(app).sign_in_student(world.join_a, world.code_a)
    fresh(app).sign_in_staff("a@north.test", "a wrong password")
    text = "\n".join(r.getMessage() for r in caplog.records)
    for secret in (secret_answer, world.code_a, "a wrong password", world.key_1):
        assert secret not in text
