"""Structured logs, request ids and metrics, through real requests on both databases.

Log lines are captured with the formatter the app installs (``app.observability.logs.formatter("json")``)
on a handler of the root logger, so what is checked is what an operator's log collector would read.
"""

from __future__ import annotations

import io
import json
import logging
import re
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade
from prometheus_client.parser import text_string_to_metric_families

from app.extensions import db
from app.models import LearningApp, Skill, SkillParameters
from app.observability import logs
from app.settings import SettingsError
from tests.conftest import DATA_DIR, PASSWORD, ApiClient, World, fresh_database, issue_key, make_app
from tests.web.test_sign_in import fresh

GENERATED_ID = re.compile(r"[0-9a-f]{32}")


class Captured:
    def __init__(self, stream: io.StringIO) -> None:
        self.stream = stream

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self) -> list[dict[str, Any]]:
        """Every line, each parsed as one JSON object (a line that is not fails the test)."""
        return [json.loads(line) for line in self.text.splitlines()]

    def events(self, name: str) -> list[dict[str, Any]]:
        return [line for line in self.lines() if line["event"] == name]


@contextmanager
def captured_logs(level: int = logging.DEBUG) -> Iterator[Captured]:
    """Everything logged in the block, rendered as the app renders JSON lines (from ``level`` up)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json"))
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(level)
    try:
        yield Captured(stream)
    finally:
        root.removeHandler(handler)
        root.setLevel(before)


def app_id(app: Flask, name: str) -> str:
    with app.app_context():
        return str(db.session.scalar(sa.select(LearningApp.id).where(LearningApp.name == name)))


def metrics_of(client: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics parsed with prometheus_client's own parser: (sample name, sorted labels) -> value."""
    response = client.get("/metrics")
    assert response.status_code == 200, response.get_data(as_text=True)
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


# --- log lines and request ids ----------------------------------------------------------------------


def test_every_line_is_json_with_the_request_id_the_client_sent(app: Flask, api: ApiClient) -> None:
    student = api.new_student("json-lines")
    with captured_logs() as captured:
        given = api.client.get(
            f"/api/v1/students/{student}/next-exercise",
            headers={**api.headers, "X-Request-Id": "lb-3f2a.trace_01"},
        )
        longest = "a" * 128
        at_limit = api.client.get("/api/v1/skills", headers={**api.headers, "X-Request-Id": longest})
    assert given.status_code == 200 and at_limit.status_code == 200
    assert given.headers["X-Request-Id"] == "lb-3f2a.trace_01"
    assert at_limit.headers["X-Request-Id"] == longest
    lines = captured.lines()
    for line in lines:
        assert set(line) >= {"timestamp", "level", "event", "logger", "pid"}, line
        assert datetime.fromisoformat(line["timestamp"]).utcoffset().total_seconds() == 0
        assert line["timestamp"].endswith("Z")
    [request_line] = [line for line in captured.events("request") if line["request_id"] == "lb-3f2a.trace_01"]
    assert request_line == {
        "timestamp": request_line["timestamp"],
        "level": "info",
        "event": "request",
        "logger": "app.requests",
        "method": "GET",
        "route": "/api/v1/students/<student_id>/next-exercise",  # the rule, never the id
        "status": 200,
        "duration_ms": request_line["duration_ms"],
        "principal_kind": "app",
        "principal_id": app_id(app, "test-app"),
        "request_id": "lb-3f2a.trace_01",
        "pid": request_line["pid"],
    }
    assert request_line["duration_ms"] > 0
    assert student not in captured.text  # in the path only, and the path is not logged
    # Every line logged while a request runs carries its id.
    assert {line["request_id"] for line in lines} == {"lb-3f2a.trace_01", longest}


@pytest.mark.parametrize(
    "sent",
    [None, "", "a" * 129, "has space", "semi;colon", "tab\there", "ünïcode", "{json}", "../path"],
    ids=["absent", "empty", "too-long", "space", "semicolon", "tab", "unicode", "braces", "slash"],
)
def test_a_missing_or_invalid_request_id_is_replaced_by_a_new_one(api: ApiClient, sent: str | None) -> None:
    headers = dict(api.headers)
    if sent is not None:
        headers["X-Request-Id"] = sent
    with captured_logs() as captured:
        first = api.client.get("/api/v1/skills", headers=headers)
        second = api.client.get("/api/v1/skills", headers=headers)
    ids = [first.headers["X-Request-Id"], second.headers["X-Request-Id"]]
    assert all(GENERATED_ID.fullmatch(i) for i in ids) and ids[0] != ids[1]
    assert [line["request_id"] for line in captured.events("request")] == ids
    if sent:
        assert sent not in captured.text


def test_the_request_id_is_in_every_api_error_body_and_on_error_pages(app: Flask, api: ApiClient) -> None:
    missing = api.client.get(
        "/api/v1/students/no-such-student", headers={**api.headers, "X-Request-Id": "r-1"}
    )
    assert missing.status_code == 404
    assert missing.get_json()["request_id"] == "r-1"
    unauthorised = app.test_client().get("/api/v1/skills", headers={"X-Request-Id": "r-2"})
    assert unauthorised.status_code == 401 and unauthorised.get_json()["request_id"] == "r-2"
    invalid = api.post("/api/v1/students", json={"external_id": ""})
    assert invalid.status_code == 422
    assert invalid.get_json()["request_id"] == invalid.headers["X-Request-Id"]
    assert GENERATED_ID.fullmatch(invalid.get_json()["request_id"])
    page = app.test_client().get("/no-such-page", headers={"X-Request-Id": "page-42"})
    assert page.status_code == 404 and page.headers["X-Request-Id"] == "page-42"
    assert "Request id (quote it if you report this): <code>page-42</code>" in page.get_data(as_text=True)


def test_an_unhandled_exception_is_an_error_line_with_its_traceback_and_a_bare_500(app: Flask) -> None:
    """A test-only route on a fresh app (nothing in the app's code fails on purpose)."""
    failing = make_app(app.config["SQLALCHEMY_DATABASE_URI"], PROPAGATE_EXCEPTIONS=False)

    def explode() -> str:
        raise RuntimeError("kaboom: internal detail 5521")

    failing.add_url_rule("/api/v1/test-explode", "test_explode_api", explode)
    failing.add_url_rule("/test-explode", "test_explode_page", explode)
    client = failing.test_client()
    with captured_logs() as captured:
        api_answer = client.get("/api/v1/test-explode", headers={"X-Request-Id": "boom-api"})
        page_answer = client.get("/test-explode", headers={"X-Request-Id": "boom-page"})
    assert api_answer.status_code == 500
    assert api_answer.get_json() == {
        "code": 500,
        "status": "Internal Server Error",
        "message": api_answer.get_json()["message"],
        "request_id": "boom-api",
    }
    assert page_answer.status_code == 500 and "boom-page" in page_answer.get_data(as_text=True)
    for answer in (api_answer, page_answer):
        body = answer.get_data(as_text=True)
        assert "kaboom" not in body and "Traceback" not in body and "explode" not in body
    failures = captured.events("request.failed")
    assert [(f["level"], f["request_id"], f["route"]) for f in failures] == [
        ("error", "boom-api", "/api/v1/test-explode"),
        ("error", "boom-page", "/test-explode"),
    ]
    for failure in failures:
        assert failure["exception"].startswith("Traceback (most recent call last):")
        assert "in explode" in failure["exception"]
        assert failure["exception"].rstrip().endswith("RuntimeError: kaboom: internal detail 5521")
    statuses = {(r["request_id"], r["status"]) for r in captured.events("request")}
    assert statuses == {("boom-api", 500), ("boom-page", 500)}
    with failing.app_context():
        db.engine.dispose()


def test_a_503_is_a_warning_with_the_database_reason(tmp_path: Path) -> None:
    """PostgreSQL out of reach (a closed port), and SQLite's write lock held past the busy timeout."""
    unreachable = make_app("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    with fresh_database("sqlite", tmp_path) as url:
        busy = make_app(url, SQLITE_BUSY_TIMEOUT_MS=100)
        with busy.app_context():
            upgrade()
        key = issue_key(busy, "busy-app")
        holder = sqlite3.connect(sa.make_url(url).database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            with captured_logs() as captured:
                answers = [
                    made.test_client().get(
                        "/api/v1/skills",
                        headers={"Authorization": f"Bearer {key}", "X-Request-Id": f"db-{n}"},
                    )
                    for n, made in enumerate((unreachable, busy))
                ]
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        with busy.app_context():
            db.engine.dispose()
    assert [a.status_code for a in answers] == [503, 503]
    assert [a.get_json()["request_id"] for a in answers] == ["db-0", "db-1"]
    lines = captured.events("database.unavailable")
    assert [(line["level"], line["request_id"]) for line in lines] == [
        ("warning", "db-0"),
        ("warning", "db-1"),
    ]
    assert "Connection refused" in lines[0]["reason"] and lines[1]["reason"] == "database is locked"
    assert [(r["request_id"], r["status"]) for r in captured.events("request")] == [
        ("db-0", 503),
        ("db-1", 503),
    ]


def test_a_burst_of_4xx_from_one_client_is_one_warning_per_window(app: Flask) -> None:
    bursting = make_app(app.config["SQLALCHEMY_DATABASE_URI"], LOG_4XX_BURST=5)
    key = issue_key(bursting, "noisy-app")
    client = bursting.test_client()
    with captured_logs() as captured:
        for _ in range(12):
            assert (
                client.get("/api/v1/students/nobody", headers={"Authorization": f"Bearer {key}"}).status_code
                == 404
            )
        for _ in range(4):  # another client, below the threshold
            assert client.get("/api/v1/skills").status_code == 401
    [burst] = captured.events("client_errors.burst")
    assert burst["level"] == "warning"
    assert burst["client"] == f"app:{app_id(bursting, 'noisy-app')}"
    assert burst["count"] == 5 and burst["window_seconds"] == 60
    assert burst["last_status"] == 404 and burst["last_route"] == "/api/v1/students/<student_id>"
    with bursting.app_context():
        db.engine.dispose()


def test_an_anonymous_burst_names_the_client_by_a_digest_never_its_address(app: Flask) -> None:
    bursting = make_app(app.config["SQLALCHEMY_DATABASE_URI"], LOG_4XX_BURST=3)
    client = bursting.test_client()
    client.environ_base["REMOTE_ADDR"] = "198.51.100.23"
    with captured_logs() as captured:
        for _ in range(3):
            assert client.get("/api/v1/skills").status_code == 401
    [burst] = captured.events("client_errors.burst")
    assert re.fullmatch(r"address:[0-9a-f]{12}", burst["client"])
    assert "198.51.100.23" not in captured.text
    with bursting.app_context():
        db.engine.dispose()


# --- nothing that identifies or grants access -------------------------------------------------------


def test_logs_hold_no_student_identifiers_keys_passwords_codes_tokens_or_cookies(
    app: Flask, world: World, shipped_graph: Any
) -> None:
    """A loop of real requests (answers, sign-ins right and wrong, a lockout, bad keys, bad bodies, pages)
    with every log line captured at DEBUG: none of the strings that would identify a student beyond their
    pseudonymous id, or let someone in, appears. docs/DATA.md says so."""
    numeric = next(e.id for e in shipped_graph.exercises.values() if e.answer_kind == "numeric")
    app1, student_a = world.actors["app1"], world.actors["student_a"]
    teacher, admin = world.actors["teacher_a"], world.actors["admin"]
    address = "203.0.113.77"
    secrets = {
        "external ids": ["student-a", "student-b", "roster-7781-x", "roster-7782-y"],
        "answers": ["-4711.0815"],
        "api keys": [world.key_1, world.key_2, world.key_1.split("_", 2)[2], "tk_deadbeef_not-a-real-secret"],
        "passwords": [PASSWORD, "a wrong password 9931"],
        "codes": [world.code_a, world.code_b, world.join_a, world.join_b, "QQQQQ-WWWWWW"],
        "emails": ["a@north.test", "admin@north.test", "nobody-here@north.test"],
        "names": ["Ada Admin"],
        "address": [address],
    }
    with captured_logs() as captured:
        for round_ in range(2):
            external_id = secrets["external ids"][2 + round_]
            created = app1.request("POST", "/api/v1/students", json={"external_id": external_id})
            assert created.status_code == 201, created.get_json()
            new_id = created.get_json()["id"]
            answered = app1.request(
                "POST",
                f"/api/v1/students/{new_id}/responses",
                json={"exercise_id": numeric, "answer": "-4711.0815", "client_response_id": f"loop-{round_}"},
            )
            assert answered.status_code == 201, answered.get_json()
            assert app1.request("GET", f"/api/v1/students/{new_id}/next-exercise").status_code == 200
            # A student answering in their own session (the CSRF token in a header).
            own = student_a.request(
                "POST",
                f"/api/v1/students/{world.student_a}/responses",
                json={"exercise_id": numeric, "answer": "-4711.0815"},
            )
            assert own.status_code == 201, own.get_json()
            assert student_a.request("GET", "/me").status_code == 200
            assert teacher.request("GET", f"/classes/{world.class_a}").status_code == 200
            assert admin.request("GET", "/admin/api-keys").status_code == 200
            visitor = fresh(app)
            visitor.client.environ_base["REMOTE_ADDR"] = address
            assert visitor.sign_in_staff("a@north.test").status_code == 302
            assert (
                fresh(app).sign_in_staff("nobody-here@north.test", "a wrong password 9931").status_code == 401
            )
            assert fresh(app).sign_in_student(world.join_a, world.code_a).status_code == 302
            assert fresh(app).sign_in_student(world.join_a, "QQQQQ-WWWWWW").status_code == 401
            refused_form = fresh(app)
            assert refused_form.request("POST", "/login", form={"email": "a@north.test"}).status_code == 400
            wrong_key = app.test_client().get(
                "/api/v1/skills", headers={"Authorization": "Bearer tk_deadbeef_not-a-real-secret"}
            )
            assert wrong_key.status_code == 401
            bad_body = app1.request("POST", "/api/v1/students", json={"external_id": "roster-7781-x", "x": 1})
            assert bad_body.status_code == 422
        attacker = fresh(app)
        attacker.client.environ_base["REMOTE_ADDR"] = address
        statuses = [
            attacker.sign_in_staff("admin@north.test", "a wrong password 9931").status_code for _ in range(6)
        ]
        assert statuses == [401] * 5 + [429]
    cookies = [
        cookie.value
        for actor in world.actors.values()
        for cookie in [actor.client.get_cookie("session")]
        if cookie is not None
    ]
    secrets["session cookies"] = cookies
    secrets["csrf tokens"] = [actor.csrf for actor in world.actors.values() if actor.csrf]
    assert len(cookies) >= 5 and len(secrets["csrf tokens"]) >= 5
    text = captured.text
    for kind, values in secrets.items():
        for secret in values:
            assert secret not in text, (kind, secret)
    # ...and the log is not silent: what happened is there, by pseudonymous ids and digests.
    events = {line["event"] for line in captured.lines()}
    assert {"request", "sign_in.succeeded", "sign_in.failed", "sign_in.locked_out"} <= events
    students = {
        line.get("principal_id")
        for line in captured.events("request")
        if line.get("principal_kind") == "student"
    }
    assert students == {world.student_a}
    succeeded = {
        (line["kind"], line.get("staff_user_id"), line.get("student_id"))
        for line in captured.events("sign_in.succeeded")
    }
    assert ("student", None, world.student_a) in succeeded
    failed = captured.events("sign_in.failed")
    assert {line["reason"] for line in failed} == {"wrong_credentials", "invalid_form"}
    assert all(line["account"] is None or re.fullmatch(r"[0-9a-f]{12}", line["account"]) for line in failed)
    known = [line for line in failed if line.get("staff_user_id") is not None]
    assert known and len({line["account"] for line in known}) == 1  # one account: the admin's
    [lockout] = captured.events("sign_in.locked_out")
    assert lockout["level"] == "warning" and lockout["scope"] == "account" and lockout["kind"] == "staff"
    assert lockout["account"] == known[0]["account"] and lockout["retry_after"] >= 1


# --- fits, imports, operator commands ---------------------------------------------------------------


@pytest.fixture
def small_log(tmp_path: Path) -> tuple[Path, list[str]]:
    """60 students of one skill of the public 2-skill ASSISTments log; and their user ids."""
    frame = pd.read_csv(DATA_DIR / "assistments_2skills.csv", encoding="latin-1", index_col=0)
    frame = frame[frame["skill_name"] == frame["skill_name"].iloc[0]]
    users = frame["user_id"].drop_duplicates().head(60)
    path = tmp_path / "one-skill.csv"
    frame[frame["user_id"].isin(users)].to_csv(path, encoding="latin-1")
    return path, [str(u) for u in users]


def test_imports_fits_and_operator_commands_are_logged(
    app: Flask, runner: Any, school: str, small_log: tuple[Path, list[str]], tmp_path: Path
) -> None:
    path, users = small_log
    broken = tmp_path / "broken.csv"
    broken.write_text("not,a,log\n1,2,3\n")
    with captured_logs() as captured:
        imported = runner.invoke(args=["import-log", str(path), "--format", "assistments"])
        assert imported.exit_code == 0, imported.output
        with app.app_context():
            skill = db.session.scalar(sa.select(Skill.id).where(Skill.source == "imported"))
        fitted = runner.invoke(
            args=["fit-params", "--skills", skill, "--min-responses", "10", "--num-fits", "1"]
        )
        assert fitted.exit_code == 0, fitted.output
        refused = runner.invoke(args=["import-log", str(broken), "--format", "assistments"])
        assert refused.exit_code != 0
    [finished] = captured.events("import.finished")
    rows = len(pd.read_csv(path, encoding="latin-1"))
    assert finished["file"] == "one-skill.csv" and finished["format"] == "assistments"
    assert finished["outcome"] == "imported"
    assert finished["rows_read"] == finished["responses_imported"] == rows
    assert finished["students_created"] == len(users) and finished["duration_ms"] > 0
    [failed] = captured.events("import.failed")
    assert failed["level"] == "warning" and failed["file"] == "broken.csv"
    assert failed["outcome"] == "not a log of this format"
    [started] = captured.events("fit.started")
    assert started["skills"] == [skill]
    [fit] = captured.events("fit.finished")
    with app.app_context():
        current = db.session.scalar(
            sa.select(SkillParameters.version).where(
                SkillParameters.skill_id == skill, SkillParameters.is_current
            )
        )
    assert fit["skills"] == [skill] and fit["parameter_versions"] == {skill: current} and current >= 2
    assert fit["n_responses"] == rows and fit["duration_ms"] > 0 and fit["fit_run_id"] >= 1
    commands = [(c["command"], c["outcome"], c["level"]) for c in captured.events("cli.command")]
    assert commands == [
        ("import-log", "ok", "info"),
        ("fit-params", "ok", "info"),
        ("import-log", "failed", "warning"),
    ]
    assert captured.events("cli.command")[1]["skills"] == [skill]
    # The log's own student ids (the school's) are not in our log either (leaving out the fields that are
    # numbers of our own: a process id could be any 5-digit number).
    ours = ("pid", "timestamp", "duration_ms")
    text = json.dumps([{k: v for k, v in line.items() if k not in ours} for line in captured.lines()])
    assert not [user for user in users if re.search(rf"\b{re.escape(user)}\b", text)]
    # The command's output is the operator's: no log line mixed into it.
    assert "{" not in imported.output


# --- metrics ------------------------------------------------------------------------------------------


def test_metrics_count_requests_by_route_answers_and_next_exercises(
    app: Flask, api: ApiClient, shipped_graph: Any
) -> None:
    student = api.new_student("metrics-student")
    exercise = next(iter(shipped_graph.exercises))
    loopback = app.test_client()
    before = metrics_of(loopback)
    for _ in range(3):
        assert api.get("/api/v1/skills").status_code == 200
    assert api.get("/api/v1/students/nobody").status_code == 404
    for graded in ({"correct": True}, {"correct": False}):
        assert (
            api.post(
                f"/api/v1/students/{student}/responses", json={"exercise_id": exercise, **graded}
            ).status_code
            == 201
        )
    served = api.get(f"/api/v1/students/{student}/next-exercise").get_json()
    after = metrics_of(loopback)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    skills = {"method": "GET", "route": "/api/v1/skills", "status": "200"}
    assert delta("tutor_http_request_duration_seconds_count", **skills) == 3
    assert delta("tutor_http_request_duration_seconds_bucket", **skills, le="+Inf") == 3
    assert delta("tutor_http_request_duration_seconds_sum", **skills) > 0
    assert (
        delta(
            "tutor_http_request_duration_seconds_count",
            method="GET",
            route="/api/v1/students/<student_id>",
            status="404",
        )
        == 1
    )
    assert delta("tutor_answers_recorded_total", graded_by="app") == 2
    assert delta("tutor_next_exercises_served_total", reason=served["reason"]) == 1
    assert value(after, "tutor_db_pool_size") >= 1
    assert ("tutor_db_pool_checked_out", ()) in after
    # No label holds an id: neither the student's, nor the key's, nor a path.
    labels = {v for (_name, pairs) in after for _k, v in pairs}
    assert not [v for v in labels if student in v or "metrics-student" in v or "nobody" in v]


def test_sign_in_failures_and_lockouts_are_counted(app: Flask, world: World) -> None:
    loopback = app.test_client()
    before = metrics_of(loopback)
    attacker = fresh(app)
    for _ in range(6):
        attacker.sign_in_staff("a@north.test", "not the password")
    assert fresh(app).sign_in_student(world.join_a, "QQQQQ-WWWWWW").status_code == 401
    after = metrics_of(loopback)
    failures = value(after, "tutor_sign_in_failures_total", kind="staff", reason="wrong_credentials") - value(
        before, "tutor_sign_in_failures_total", kind="staff", reason="wrong_credentials"
    )
    assert failures == 5
    assert (
        value(after, "tutor_sign_in_failures_total", kind="student", reason="wrong_credentials")
        - value(before, "tutor_sign_in_failures_total", kind="student", reason="wrong_credentials")
        == 1
    )
    assert (
        value(after, "tutor_sign_in_lockouts_total", scope="account")
        - value(before, "tutor_sign_in_lockouts_total", scope="account")
        == 1
    )


def test_jobs_are_counted_by_state_at_each_scrape(app: Flask, world: World) -> None:
    loopback = app.test_client()
    before = metrics_of(loopback)
    admin = world.actors["admin"]
    queued = [
        admin.request("POST", "/api/v1/bias-checks", json={"attribute": "class", "bootstrap": b}).get_json()
        for b in (50, 60)
    ]
    assert admin.request("POST", f"/api/v1/jobs/{queued[0]['id']}/cancel").get_json()["state"] == "cancelled"
    after = metrics_of(loopback)

    def change(state: str) -> float:
        return value(after, "tutor_jobs", state=state) - value(before, "tutor_jobs", state=state)

    assert (change("queued"), change("cancelled"), change("running"), change("failed")) == (1, 1, 0, 0)
    assert ("tutor_jobs", (("state", "succeeded"),)) in after  # every state, zeros included


def test_metrics_are_for_loopback_clients_or_the_token_holder(app: Flask) -> None:
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    open_app = make_app(url)
    local = open_app.test_client()
    assert local.get("/metrics").status_code == 200
    remote = open_app.test_client()
    remote.environ_base["REMOTE_ADDR"] = "192.0.2.10"
    assert remote.get("/metrics").status_code == 403
    # A reverse proxy on the same host: the request comes from loopback but is a stranger's.
    assert local.get("/metrics", headers={"X-Forwarded-For": "192.0.2.10"}).status_code == 403
    assert local.get("/metrics", headers={"Forwarded": "for=192.0.2.10"}).status_code == 403

    token = "s3cret-metrics-token-0123"
    guarded = make_app(url, METRICS_TOKEN=token)
    for client_address in ("127.0.0.1", "192.0.2.10"):
        client = guarded.test_client()
        client.environ_base["REMOTE_ADDR"] = client_address
        missing = client.get("/metrics")
        assert missing.status_code == 401 and missing.headers["WWW-Authenticate"] == "Bearer"
        assert (
            client.get("/metrics", headers={"Authorization": "Bearer wrong-token-0123456789"}).status_code
            == 401
        )
        allowed = client.get("/metrics", headers={"Authorization": f"Bearer {token}"})
        assert allowed.status_code == 200 and "tutor_http_request_duration_seconds" in allowed.get_data(
            as_text=True
        )
    for made in (open_app, guarded):
        with made.app_context():
            db.engine.dispose()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"LOG_FORMAT": "xml"}, "invalid LOG_FORMAT setting: must be one of json, console, not 'xml'"),
        (
            {"LOG_LEVEL": "LOUD"},
            "invalid LOG_LEVEL setting: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL",
        ),
        ({"LOG_4XX_BURST": 0}, "invalid LOG_4XX_BURST setting: must be an integer at least 1, not 0"),
        (
            {"READYZ_TIMEOUT_SECONDS": 0},
            "invalid READYZ_TIMEOUT_SECONDS setting: must be a number greater than 0",
        ),
        (
            {"METRICS_TOKEN": "short"},
            "invalid METRICS_TOKEN setting: must be a string of at least 16 characters",
        ),
        ({"METRICS_TOKEN": ""}, "invalid METRICS_TOKEN setting: must be a string of at least 16 characters"),
    ],
)
def test_observability_settings_are_checked_at_start(
    tmp_path: Path, config: dict[str, Any], message: str
) -> None:
    with pytest.raises(SettingsError, match=re.escape(message)):
        make_app(f"sqlite:///{tmp_path / 's.sqlite3'}", **config)


def test_log_format_defaults_to_json_outside_debug_and_tests(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 's.sqlite3'}"
    assert make_app(url).extensions["settings"].observability.log_format == "console"  # TESTING
    production = make_app(url, TESTING=False)
    assert production.extensions["settings"].observability.log_format == "json"
    assert production.extensions["settings"].observability.log_level == "INFO"
    make_app(url)  # back to the tests' console lines (logging is process-wide)
