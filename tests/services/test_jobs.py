"""Background jobs with real workers, on both databases: a bias check queued by the API and run by a worker;
idempotent requests; cancelling queued and running jobs (nothing committed); a worker killed with SIGKILL
mid-job and restarted (the job done once, exactly); a worker stopped in order hands its jobs back; the
Redis storage; the CLI's --enqueue and the worker command."""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.domain.access import Principal, Role
from app.extensions import db
from app.models import BiasReport, Job, JobFile, LogImport, SchoolClass
from app.services.modelling.mastery import begin_read_snapshot
from app.services.operations import jobs
from app.services.operations.queue import EXTENSION, JobQueue
from app.services.people.accounts import enroll
from app.services.people.groups import set_group_attributes
from app.services.tutoring.answers import record_response
from tests.conftest import DATA_DIR, World, finished_job, make_app
from tests.jobs_support import GATE, MARKER, WorkerProcess, register_test_kinds, wait_for, worker_config

register_test_kinds()


def grouped_students(app: Flask, world: World, shipped_graph: Any, n: int = 24) -> None:
    """``n`` students of class A, half language learners, each with 6 answers on one skill."""
    admin = Principal(Role.ADMIN, "operator", world.north, "operator")
    sim = Principal(Role.APP, "0", world.north, "sim")
    with app.app_context():
        klass = db.session.get(SchoolClass, world.class_a)
        ids = [e.student_id for e in enroll(db.session(), klass, [f"g-{i:02d}" for i in range(n)])]
        skill = next(s for s in shipped_graph.skill_order if shipped_graph.exercises_by_skill.get(s))
        for i, student in enumerate(ids):
            learner = "yes" if i % 2 else "no"
            set_group_attributes(
                db.session(), admin, student, {"language_learner": learner}, consent_given_by="parent"
            )
            for k, exercise in enumerate(shipped_graph.exercises_by_skill[skill][:6]):
                record_response(db.session(), sim, student, exercise_id=exercise, correct=(i + k) % 3 != 0)


def job_row(app: Flask, job_id: int) -> Job:
    """The job as stored now (read in a snapshot: on SQLite, without waiting for the write lock)."""
    with app.app_context():
        begin_read_snapshot(db.session())
        job = db.session.get(Job, job_id)
        assert job is not None
        db.session.expunge(job)
        db.session.rollback()
        return job


def count(app: Flask, model: Any, *conditions: Any) -> int:
    with app.app_context():
        begin_read_snapshot(db.session())
        found = db.session.scalar(sa.select(sa.func.count()).select_from(model).where(*conditions))
        db.session.rollback()
        return int(found or 0)


def gate_job(app: Flask, world: World, gate: Path, **kwargs: Any) -> int:
    admin = Principal(Role.ADMIN, "operator", world.north, "operator")
    with app.app_context():
        job, created = jobs.submit(db.session(), admin, GATE, {"gate": str(gate)}, **kwargs)
        assert created
        return job.id


@pytest.fixture
def worker(app: Flask, tmp_path: Path) -> Any:
    """A real worker process on the test's database and queue (short lease and heartbeat)."""
    app.extensions[EXTENSION].flush()
    process = WorkerProcess(worker_config(app), tmp_path / "worker.log")
    yield process
    process.stop(signal.SIGTERM)


# --- a bias check through the API, run by a worker ------------------------------------------------


def test_a_bias_check_is_queued_answered_202_and_run_by_a_worker(
    app: Flask, world: World, shipped_graph: Any, worker: WorkerProcess
) -> None:
    grouped_students(app, world, shipped_graph)
    admin = world.actors["admin"]
    # Refused at once when the check itself would refuse: nothing is queued.
    unknown = admin.request("POST", "/api/v1/bias-checks", json={"attribute": "shoe_size"})
    assert unknown.status_code == 422 and "unknown attribute 'shoe_size'" in unknown.get_json()["message"]
    empty = admin.request(
        "POST", "/api/v1/bias-checks", json={"attribute": "language_learner", "since": "2999-01-01T00:00:00Z"}
    )
    assert empty.status_code == 422 and "there is nothing to check" in empty.get_json()["message"]
    assert count(app, Job) == 0

    queued = admin.request(
        "POST", "/api/v1/bias-checks", json={"attribute": "language_learner", "bootstrap": 200, "seed": 1}
    )
    assert queued.status_code == 202, queued.get_json()
    body = queued.get_json()
    assert body["state"] == "queued" and body["kind"] == "bias_check" and body["result"] is None
    assert queued.headers["Location"] == f"/api/v1/jobs/{body['id']}"
    assert body["params"]["attribute"] == "language_learner" and body["created_by"].startswith("admin:")

    worker.start()
    done = finished_job(admin, queued.headers["Location"])
    assert done["state"] == "succeeded", done
    assert done["attempts"] == 1 and done["error"] is None and done["finished_at"] and done["started_at"]
    assert done["progress"]["done"] == done["progress"]["total"] and done["progress"]["share"] == 1
    report_id = done["result"]["bias_check_id"]
    assert done["result_url"] == f"/api/v1/bias-checks/{report_id}"
    stored = admin.request("GET", done["result_url"])
    assert stored.status_code == 200 and stored.get_json()["report"]["settings"]["bootstrap"] == 200
    assert count(app, BiasReport) == 1

    listed = admin.request("GET", "/api/v1/jobs?state=succeeded").get_json()
    assert [j["id"] for j in listed["items"]] == [done["id"]] and listed["total"] == 1
    # The school's jobs are its admins' only: not another school's app, not a teacher.
    assert world.actors["teacher_a"].request("GET", queued.headers["Location"]).status_code == 403
    assert world.actors["app2"].request("GET", "/api/v1/jobs").status_code == 403
    page = admin.request("GET", "/admin/jobs").get_data(as_text=True)
    assert "Bias check" in page and f"/bias-checks/{report_id}" in page


def test_jobs_are_listed_newest_first_a_page_at_a_time(app: Flask, world: World, tmp_path: Path) -> None:
    ids = [gate_job(app, world, tmp_path / f"gate-{i}") for i in range(5)]
    admin = world.actors["admin"]
    first = admin.request("GET", "/api/v1/jobs?per_page=2").get_json()
    assert [j["id"] for j in first["items"]] == ids[::-1][:2]
    assert first["total"] == 5 and first["next_page"] == 2
    last = admin.request("GET", "/api/v1/jobs?per_page=2&page=3").get_json()
    assert [j["id"] for j in last["items"]] == [ids[0]] and last["next_page"] is None
    assert admin.request("GET", "/api/v1/jobs?state=running").get_json()["total"] == 0
    assert admin.request("GET", "/api/v1/jobs?state=asleep").status_code == 422
    assert admin.request("GET", "/api/v1/jobs/99999").status_code == 404


# --- the same request twice ------------------------------------------------------------------------


def test_the_same_request_is_the_same_job(app: Flask, world: World) -> None:
    admin = world.actors["admin"]
    check = {"attribute": "class", "bootstrap": 50}
    key = {"Idempotency-Key": str(uuid.uuid4())}

    def post(json: dict[str, Any], headers: dict[str, str] | None = None) -> Any:
        return admin.client.post(
            "/api/v1/bias-checks", json=json, headers={"X-CSRFToken": admin.csrf, **(headers or {})}
        )

    first = post(check, key)
    assert first.status_code == 202
    again = post(check, key)
    assert again.status_code == 202 and again.get_json()["id"] == first.get_json()["id"]
    # The same key with other parameters: refused as a conflict with what the key names, nothing new.
    other = post({**check, "seed": 7}, key)
    assert other.status_code == 409 and "other parameters" in other.get_json()["message"]
    # Without a key: the same parameters while the job is queued are that job; others are a new one.
    assert post(check).get_json()["id"] == first.get_json()["id"]
    second = post({**check, "seed": 7})
    assert second.status_code == 202 and second.get_json()["id"] != first.get_json()["id"]
    assert count(app, Job) == 2
    # Once it has finished (here: cancelled), the same request starts a new job; the key still names the old.
    cancelled = admin.request("POST", f"/api/v1/jobs/{first.get_json()['id']}/cancel").get_json()
    assert cancelled["state"] == "cancelled" and cancelled["cancel_requested"] is True
    third = post(check)
    assert third.get_json()["id"] not in (first.get_json()["id"], second.get_json()["id"])
    assert post(check, key).get_json()["id"] == first.get_json()["id"]
    bad = post(check, {"Idempotency-Key": "has spaces in it"})
    assert bad.status_code == 422 and "Idempotency-Key" in str(bad.get_json()["errors"])


def test_a_body_may_be_left_out_only_where_every_field_has_a_default(app: Flask, world: World) -> None:
    """The document's requestBody.required, as served: a fit or a purge without a body is the defaults; a bias
    check or a log import without one is a 422 naming the fields it needs."""
    admin = world.actors["admin"]

    def bare(path: str) -> Any:  # no body and no Content-Type, as `curl -X POST` sends
        return admin.client.post(path, headers={"X-CSRFToken": admin.csrf})

    purge = bare("/api/v1/jobs/purges")
    assert purge.status_code == 202 and purge.get_json()["params"] == {"dry_run": False}
    fit = bare("/api/v1/jobs/fits")
    assert fit.status_code == 202 and fit.get_json()["params"]["num_fits"] == 5
    check = bare("/api/v1/bias-checks")
    assert check.status_code == 422 and "attribute" in check.get_json()["errors"]["json"]
    imported = bare("/api/v1/jobs/log-imports")
    assert imported.status_code == 422 and {"format", "content"} <= set(imported.get_json()["errors"]["json"])
    assert count(app, Job) == 2
    paths = document_paths(app)
    assert paths["/api/v1/jobs/purges"]["post"]["requestBody"]["required"] is False
    assert paths["/api/v1/jobs/fits"]["post"]["requestBody"]["required"] is False
    assert paths["/api/v1/bias-checks"]["post"]["requestBody"]["required"] is True
    assert paths["/api/v1/jobs/log-imports"]["post"]["requestBody"]["required"] is True


def document_paths(app: Flask) -> dict[str, Any]:
    paths: dict[str, Any] = app.test_client().get("/api/v1/openapi.json").get_json()["paths"]
    return paths


def test_the_same_request_at_the_same_moment_makes_one_job(app: Flask, world: World, tmp_path: Path) -> None:
    """Eight threads submit the same job at once: the partial unique index leaves one."""
    admin = Principal(Role.ADMIN, "operator", world.north, "operator")
    barrier = threading.Barrier(8)
    ids: list[int] = []

    def submit() -> None:
        with app.app_context():
            barrier.wait()
            job, _ = jobs.submit(db.session(), admin, GATE, {"gate": str(tmp_path / "same")})
            ids.append(job.id)

    threads = [threading.Thread(target=submit) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(ids) == 8 and len(set(ids)) == 1 and count(app, Job) == 1


# --- cancelling -------------------------------------------------------------------------------------


def test_a_queued_job_cancelled_never_runs(app: Flask, world: World, worker: WorkerProcess) -> None:
    admin = world.actors["admin"]
    queued = admin.request("POST", "/api/v1/bias-checks", json={"attribute": "class", "bootstrap": 50})
    job_id = queued.get_json()["id"]
    cancelled = admin.request("POST", f"/api/v1/jobs/{job_id}/cancel")
    assert cancelled.status_code == 200 and cancelled.get_json()["state"] == "cancelled"
    assert world.actors["teacher_a"].request("POST", f"/api/v1/jobs/{job_id}/cancel").status_code == 403
    worker.start()
    # A job queued after it runs: the cancelled one did not, before or after.
    later = admin.request("POST", "/api/v1/bias-checks", json={"attribute": "class", "bootstrap": 60})
    assert finished_job(admin, later.headers["Location"])["state"] == "succeeded"
    assert count(app, BiasReport) == 1
    assert job_row(app, job_id).state == "cancelled" and job_row(app, job_id).attempts == 0
    # Cancelling a finished job changes nothing.
    again = admin.request("POST", f"{later.headers['Location']}/cancel").get_json()
    assert again["state"] == "succeeded" and again["cancel_requested"] is False


def test_a_running_job_cancelled_stops_and_commits_nothing(
    app: Flask, world: World, worker: WorkerProcess, tmp_path: Path
) -> None:
    worker.start()
    job_id = gate_job(app, world, tmp_path / "gate")
    admin = world.actors["admin"]
    running = wait_for(
        lambda: (
            (body := admin.request("GET", f"/api/v1/jobs/{job_id}").get_json())["progress"]["done"] > 3
            and body
        ),
        context=worker.output,
    )
    assert running["state"] == "running" and running["heartbeat_at"] and running["progress"]["total"] is None
    asked = admin.request("POST", f"/api/v1/jobs/{job_id}/cancel").get_json()
    assert asked["cancel_requested"] is True and asked["state"] in ("running", "cancelled")
    done = finished_job(admin, f"/api/v1/jobs/{job_id}")
    assert done["state"] == "cancelled" and done["result"] is None
    assert count(app, BiasReport, BiasReport.attribute == MARKER) == 0


def test_the_fence_refuses_the_commit_of_a_job_cancelled_meanwhile(
    app: Flask, world: World, worker: WorkerProcess, tmp_path: Path
) -> None:
    """Asked to stop after its last progress point: the commit itself is refused; nothing is written."""
    worker.config["JOBS_HEARTBEAT_SECONDS"] = 30.0  # no beat will tell the job: only the fence can
    worker.config["JOBS_LEASE_SECONDS"] = 60.0
    worker.start()
    gate = tmp_path / "gate"
    job_id = gate_job(app, world, gate)
    wait_for(lambda: job_row(app, job_id).state == "running", context=worker.output)
    assert world.actors["admin"].request("POST", f"/api/v1/jobs/{job_id}/cancel").status_code == 200
    gate.touch()
    done = finished_job(world.actors["admin"], f"/api/v1/jobs/{job_id}")
    assert done["state"] == "cancelled"
    assert count(app, BiasReport, BiasReport.attribute == MARKER) == 0


# --- workers that die, and workers that stop ----------------------------------------------------------


def test_a_worker_killed_mid_job_and_restarted_runs_it_exactly_once(
    app: Flask, world: World, worker: WorkerProcess, tmp_path: Path
) -> None:
    worker.start()
    gate = tmp_path / "gate"
    job_id = gate_job(app, world, gate)
    wait_for(lambda: job_row(app, job_id).progress_done > 3, context=worker.output)
    first_worker = job_row(app, job_id).worker
    worker.kill()  # SIGKILL mid-job: nothing handed back, the lease just lapses
    killed = job_row(app, job_id)
    assert killed.state == "running" and killed.attempts == 1 and killed.worker == first_worker
    gate.touch()  # the next run finds it open at once
    time.sleep(1.2)  # longer than the worker's lease (1 s): the restarted worker re-queues it at start
    worker.start()
    done = finished_job(world.actors["admin"], f"/api/v1/jobs/{job_id}")
    assert done["state"] == "succeeded" and done["attempts"] == 2, done
    with app.app_context():
        markers = db.session.scalars(sa.select(BiasReport).where(BiasReport.attribute == MARKER)).all()
    assert [m.report for m in markers] == [{"job": job_id}]
    assert done["result"]["marker_ids"] == [markers[0].id]
    assert "job.lease_lapsed" in worker.output() and job_row(app, job_id).worker != first_worker


def test_a_real_bias_check_killed_before_its_commit_is_stored_once(
    app: Flask, world: World, shipped_graph: Any, worker: WorkerProcess, tmp_path: Path
) -> None:
    """The worker is killed while the check's report waits to be written (another transaction holds the
    table on PostgreSQL, the database's write lock on SQLite): nothing is stored; the restarted worker stores
    it once."""
    grouped_students(app, world, shipped_graph)
    worker.start()
    admin = world.actors["admin"]
    with app.app_context():
        engine = db.engine
        postgresql = engine.dialect.name == "postgresql"
    blocker: Any
    if postgresql:
        blocker = engine.connect()
        transaction = blocker.begin()
        blocker.exec_driver_sql("LOCK TABLE bias_reports IN EXCLUSIVE MODE")  # reads pass, inserts wait
    queued = admin.request(
        "POST", "/api/v1/bias-checks", json={"attribute": "language_learner", "bootstrap": 5000, "seed": 2}
    )
    job_id = queued.get_json()["id"]
    if not postgresql:
        # The check reads in a snapshot without the write lock; take the lock while it computes.
        wait_for(lambda: job_row(app, job_id).progress_total is not None, context=worker.output)
        blocker = sqlite3.connect(engine.url.database, timeout=30, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
    wait_for(lambda: job_row(app, job_id).state == "running", context=worker.output)
    time.sleep(1.0)  # the check computes, then waits for the blocked insert
    worker.kill()
    if postgresql:
        transaction.rollback()
        blocker.close()
    else:
        blocker.execute("ROLLBACK")
        blocker.close()
    killed = job_row(app, job_id)
    assert killed.state == "running" and killed.result is None, killed.progress_message
    assert count(app, BiasReport) == 0
    time.sleep(1.2)  # the lease (1 s) lapses
    worker.start()
    done = finished_job(admin, f"/api/v1/jobs/{job_id}")
    assert done["state"] == "succeeded" and done["attempts"] == 2, done
    assert count(app, BiasReport) == 1
    assert done["result"]["bias_check_id"] == admin.request("GET", "/api/v1/bias-checks").get_json()[0]["id"]


def test_a_worker_stopped_in_order_hands_its_job_back(
    app: Flask, world: World, worker: WorkerProcess, tmp_path: Path
) -> None:
    worker.start()
    gate = tmp_path / "gate"
    job_id = gate_job(app, world, gate)
    wait_for(lambda: job_row(app, job_id).progress_done > 3, context=worker.output)
    assert worker.stop(signal.SIGTERM) == 0
    handed_back = job_row(app, job_id)
    assert handed_back.state == "queued" and handed_back.lease is None and handed_back.attempts == 0
    assert "job.handed_back" in worker.output()
    gate.touch()
    worker.start()  # at once: no lease to wait for
    done = finished_job(world.actors["admin"], f"/api/v1/jobs/{job_id}")
    assert done["state"] == "succeeded" and done["attempts"] == 1
    assert count(app, BiasReport, BiasReport.attribute == MARKER) == 1


def test_a_job_whose_worker_keeps_dying_fails_after_the_last_attempt(
    app: Flask, world: World, worker: WorkerProcess, tmp_path: Path
) -> None:
    worker.config["JOBS_MAX_ATTEMPTS"] = 2
    job_id = gate_job(app, world, tmp_path / "never")
    for attempt in (1, 2):
        worker.start()
        wait_for(lambda n=attempt: (job := job_row(app, job_id)).attempts == n and job.progress_done > 1)
        worker.kill()
        time.sleep(1.2)
    worker.start()
    failed = finished_job(world.actors["admin"], f"/api/v1/jobs/{job_id}")
    assert failed["state"] == "failed" and "2 time(s)" in failed["error"]
    assert "Traceback" not in failed["error"]


# --- other kinds, the CLI, the storages ---------------------------------------------------------------


def test_a_log_import_job_imports_the_file_once_and_forgets_it(
    app: Flask, world: World, jobs_worker: JobQueue
) -> None:
    admin = world.actors["admin"]
    text = (DATA_DIR / "assistments_2skills.csv").read_bytes().decode("latin-1")
    assert len(text) > app.config["MAX_CONTENT_LENGTH"]  # the route takes files past MAX_REQUEST_BYTES
    queued = admin.request(
        "POST",
        "/api/v1/jobs/log-imports",
        json={"format": "assistments", "content": text, "file_name": "two skills.csv", "app": "research"},
    )
    assert queued.status_code == 202, queued.get_json()
    assert queued.get_json()["params"]["size"] == len(text.encode("utf-8"))
    done = finished_job(admin, queued.headers["Location"])
    assert done["state"] == "succeeded", done
    assert done["result"].get("responses_imported", 0) > 1000 and done["result"]["log_import_id"], done
    assert done["progress"]["done"] == done["result"]["responses_imported"]
    with app.app_context():
        imports = db.session.scalars(sa.select(LogImport)).all()
    assert [i.file_name for i in imports] == ["two skills.csv"]
    assert count(app, JobFile) == 0  # the upload went with the job
    not_a_log = {"format": "assistments", "content": "a,b\n1,2"}
    bad = admin.request("POST", "/api/v1/jobs/log-imports", json=not_a_log)
    failed = finished_job(admin, bad.headers["Location"])
    assert failed["state"] == "failed" and "not a assistments log" in failed["error"]
    teacher = world.actors["teacher_a"].request(
        "POST", "/api/v1/jobs/log-imports", json={"format": "assistments", "content": text}
    )
    assert teacher.status_code == 403


def test_purge_and_fit_jobs_and_the_cli(app: Flask, world: World, runner: Any, jobs_worker: JobQueue) -> None:
    admin = world.actors["admin"]
    purge = admin.request("POST", "/api/v1/jobs/purges", json={"dry_run": True})
    done = finished_job(admin, purge.headers["Location"])
    assert done["state"] == "succeeded" and done["result"]["dry_run"] is True
    assert set(done["result"]["counts"]) == {"responses", "response_skills", "recommendations", "access_log"}
    fit = admin.request("POST", "/api/v1/jobs/fits", json={"min_responses": 1})
    failed = finished_job(admin, fit.headers["Location"])
    assert failed["state"] == "failed" and failed["error"] == "no responses to fit"
    # The commands run synchronously as before, and queue with --enqueue.
    sync = runner.invoke(args=["purge-expired", "--dry-run"])
    assert sync.exit_code == 0 and "Would delete responses: 0" in sync.output
    queued = runner.invoke(args=["purge-expired", "--dry-run", "--enqueue", "--school", "North"])
    assert queued.exit_code == 0, queued.output
    job_id = int(queued.output.split()[1])
    wait_for(lambda: job_row(app, job_id).state == "succeeded")
    shown = runner.invoke(args=["job", str(job_id)])
    assert shown.exit_code == 0 and "succeeded" in shown.output and '"dry_run": true' in shown.output
    check = runner.invoke(args=["audit-bias", "--attribute", "class", "--school", "North", "--enqueue"])
    assert check.exit_code == 0 and "(bias_check) is queued" in check.output, check.output
    refused = runner.invoke(args=["audit-bias", "--attribute", "shoe", "--school", "North", "--enqueue"])
    assert refused.exit_code == 1 and "unknown attribute 'shoe'" in refused.output


def test_the_redis_storage_carries_jobs_too(app: Flask, world: World, tmp_path: Path) -> None:
    """The same worker with JOBS_URL=redis://127.0.0.1:6379 (the server CI runs), on the same database."""
    url, name = "redis://127.0.0.1:6379/0", f"tutor-test-{uuid.uuid4().hex[:12]}"
    redis_app = make_app(app.config["SQLALCHEMY_DATABASE_URI"], JOBS_URL=url, JOBS_QUEUE=name)
    queue = redis_app.extensions[EXTENSION]
    gate = tmp_path / "gate"
    gate.touch()
    try:
        job_id = gate_job(redis_app, world, gate)
        assert queue.pending() == 1  # in Redis, under the queue's own name
        process = WorkerProcess(worker_config(redis_app), tmp_path / "redis-worker.log").start()
        try:
            wait_for(lambda: job_row(app, job_id).state == "succeeded", context=process.output)
        finally:
            process.stop()
        assert queue.pending() == 0 and "storage=redis" in process.output()
        assert count(app, BiasReport, BiasReport.attribute == MARKER) == 1
    finally:
        queue.flush()
        with redis_app.app_context():
            db.engine.dispose()
