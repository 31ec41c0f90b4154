"""The bad-input catalogue: each class of bad request gets its exact status and message, and writes nothing.

Every case runs against a database holding two schools, classes, students and answers; the whole
database (every row of every table) is compared before and after the request.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask
from flask_migrate import upgrade

from app.domain.access import Role
from app.domain.content import build_graph
from app.extensions import MAX_ROW_ID, db
from app.models import Response, School
from app.services.people.accounts import create_class, create_school, create_staff_user, enroll
from app.services.people.apps import KEY_SCHEME, create_api_key
from app.services.tutoring.content import sync_content
from tests.conftest import Actor, fresh_database, make_app

INVALID = "The request is not valid: see 'errors'."
NO_ROUTE = (
    "The requested URL was not found on the server. If you entered the URL manually please check "
    "your spelling and try again."
)
ANSWERS = "/api/v1/students/{student}/responses"
UNSET = object()


def database_rows() -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table: what "nothing was written" is checked against."""
    rows = {
        table.name: sorted(tuple(str(v) for v in row) for row in db.session.execute(sa.select(table)))
        for table in db.metadata.sorted_tables
    }
    db.session.rollback()
    return rows


@dataclass(frozen=True)
class Case:
    name: str
    method: str
    url: str  # {student}, {other_student}, {class_a}, {choice_exercise}... are filled in per test
    status: int
    message: str
    json: Any = UNSET
    data: str | bytes | None = None
    content_type: str = "application/json"
    errors: Any = None  # the exact "errors" member, when the case has one
    caller: str = "app1"


def answer(**fields: Any) -> dict[str, Any]:
    return {"exercise_id": "{numeric_exercise}", "correct": True, **fields}


CASES = [
    # -- malformed bodies
    Case(
        "malformed JSON",
        "POST",
        ANSWERS,
        400,
        "Invalid JSON body: Expecting value: line 1 column 17 (char 16).",
        data='{"exercise_id": ',
    ),
    Case(
        "not JSON at all",
        "POST",
        ANSWERS,
        415,
        "Send the request body as JSON (Content-Type: application/json).",
        data="exercise_id=x&correct=true",
        content_type="application/x-www-form-urlencoded",
    ),
    Case(
        "a JSON array instead of an object",
        "POST",
        ANSWERS,
        422,
        INVALID,
        json=[1, 2],
        errors={"json": {"_schema": ["Invalid input type."]}},
    ),
    Case(
        "not UTF-8",
        "POST",
        "/api/v1/students",
        400,
        "Invalid JSON body: the body is not UTF-8 text (byte 17).",
        data=b'{"external_id": "\xff\xfe"}',
    ),
    Case(
        "a key given twice",
        "POST",
        "/api/v1/students",
        400,
        "Invalid JSON body: the key 'external_id' appears twice in one object.",
        data='{"external_id": "a", "external_id": "b"}',
    ),
    Case(
        "nested too deeply",
        "POST",
        "/api/v1/students",
        400,
        "Invalid JSON body: arrays or objects are nested too deeply.",
        data="[" * 50_000 + "]" * 50_000,
    ),
    Case(
        "a body over the size limit",
        "POST",
        ANSWERS,
        413,
        "The request body is larger than 262144 bytes.",
        json=answer(client_response_id="x" * 300_000),
    ),
    Case(
        "an unknown field",
        "POST",
        ANSWERS,
        422,
        INVALID,
        json=answer(mood="happy"),
        errors={"json": {"mood": ["Unknown field."]}},
    ),
    Case(
        "both a graded and an ungraded answer",
        "POST",
        ANSWERS,
        422,
        INVALID,
        json=answer(answer="5"),
        errors={"json": {"_schema": ["send exactly one of 'answer' (graded here) or 'correct'."]}},
    ),
    Case(
        "a required field missing",
        "POST",
        ANSWERS,
        422,
        INVALID,
        json={"correct": True},
        errors={"json": {"exercise_id": ["Missing data for required field."]}},
    ),
    # -- wrong types
    Case(
        "a string for a boolean",
        "POST",
        ANSWERS,
        422,
        INVALID,
        json=answer(correct="yes"),
        errors={"json": {"correct": ["Not a valid boolean."]}},
    ),
    Case(
        "a number for a boolean",
        "POST",
        ANSWERS,
        422,
        INVALID,
        json=answer(correct=1),
        errors={"json": {"correct": ["Not a valid boolean."]}},
    ),
    Case(
        "a number for personalized",
        "PATCH",
        "/api/v1/students/{student}",
        422,
        INVALID,
        json={"personalized": 0},
        errors={"json": {"personalized": ["Not a valid boolean."]}},
    ),
    Case(
        "a string for an integer",
        "POST",
        ANSWERS,
        422,
        INVALID,
        json=answer(response_time_ms="5"),
        errors={"json": {"response_time_ms": ["Not a valid integer."]}},
    ),
    Case(
        "a fraction for an integer",
        "POST",
        ANSWERS,
        422,
        INVALID,
        json=answer(hints_used=1.5),
        errors={"json": {"hints_used": ["Not a valid integer."]}},
    ),
    Case(
        "a number for a string",
        "POST",
        ANSWERS,
        422,
        INVALID,
        json={"exercise_id": 7, "correct": True},
        errors={"json": {"exercise_id": ["Not a valid string."]}},
    ),
    Case(
        "a string for a query integer",
        "GET",
        "/api/v1/students/{student}/next-exercise?seed=abc",
        422,
        INVALID,
        errors={"query": {"seed": ["Not a valid integer."]}},
    ),
    # -- numbers out of range
    Case(
        "a negative response time",
        "POST",
        ANSWERS,
        422,
        INVALID,
        json=answer(response_time_ms=-5),
        errors={
            "json": {
                "response_time_ms": ["Must be greater than or equal to 0 and less than or equal to 86400000."]
            }
        },
    ),
    Case(
        "NaN",
        "POST",
        ANSWERS,
        400,
        "Invalid JSON body: NaN is not a number JSON allows.",
        data='{"exercise_id": "{numeric_exercise}", "correct": true, "response_time_ms": NaN}',
    ),
    Case(
        "Infinity",
        "POST",
        ANSWERS,
        400,
        "Invalid JSON body: -Infinity is not a number JSON allows.",
        data='{"exercise_id": "{numeric_exercise}", "correct": true, "response_time_ms": -Infinity}',
    ),
    Case(
        "a float overflowing to infinity",
        "POST",
        ANSWERS,
        400,
        "Invalid JSON body: the number 1e309 is out of range.",
        data='{"exercise_id": "{numeric_exercise}", "correct": true, "response_time_ms": 1e309}',
    ),
    Case(
        "an integer of 5,000 digits",
        "POST",
        ANSWERS,
        400,
        "Invalid JSON body: the integer 11111111111111111111... has more than 30 digits.",
        data='{"exercise_id": "{numeric_exercise}", "correct": true, "hints_used": ' + "1" * 5000 + "}",
    ),
    Case(
        "too many hints",
        "POST",
        ANSWERS,
        422,
        INVALID,
        json=answer(hints_used=101),
        errors={
            "json": {"hints_used": ["Must be greater than or equal to 0 and less than or equal to 100."]}
        },
    ),
    Case(
        "a seed beyond 64 bits",
        "GET",
        "/api/v1/students/{student}/next-exercise?seed=" + "9" * 25,
        422,
        INVALID,
        errors={
            "query": {
                "seed": ["Must be greater than or equal to 0 and less than or equal to 9223372036854775807."]
            }
        },
    ),
    Case(
        "a date before year 1 once in UTC",
        "GET",
        "/api/v1/classes/{class_a}/report?since=0001-01-01T00:00:00%2B01:00",
        422,
        INVALID,
        errors={"query": {"since": ["Must lie between years 1 and 9999 in UTC."]}},
    ),
    Case(
        "a date after year 9999 once in UTC",
        "POST",
        "/api/v1/bias-checks",
        422,
        INVALID,
        json={"attribute": "class", "until": "9999-12-31T23:59:59-01:00"},
        errors={"json": {"until": ["Must lie between years 1 and 9999 in UTC."]}},
    ),
    Case("a class id beyond the id range", "GET", f"/api/v1/classes/{MAX_ROW_ID + 1}", 404, NO_ROUTE),
    Case(
        "a window that ends before it starts",
        "GET",
        "/api/v1/classes/{class_a}/report?since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
        422,
        INVALID,
        errors={"query": {"since": ["since must not be after until"]}},
    ),
    # -- unknown ids and other tenants' ids (the same answer as unknown: nothing leaks)
    Case(
        "an unknown student",
        "GET",
        "/api/v1/students/no-such-student/progress",
        404,
        "Unknown student 'no-such-student'.",
    ),
    Case(
        "another school's student",
        "GET",
        "/api/v1/students/{student}/progress",
        404,
        "Unknown student '{student}'.",
        caller="app2",
    ),
    Case(
        "answering for another school's student",
        "POST",
        ANSWERS,
        404,
        "Unknown student '{student}'.",
        json=answer(),
        caller="app2",
    ),
    Case(
        "another school's class",
        "GET",
        "/api/v1/classes/{class_a}/report",
        404,
        "Unknown class '{class_a}'.",
        caller="app2",
    ),
    Case(
        "an unknown exercise",
        "POST",
        ANSWERS,
        404,  # an id that names nothing, wherever it is; errors names the field
        "Unknown exercise 'no-such-exercise'.",
        json={"exercise_id": "no-such-exercise", "correct": True},
        errors={"json": {"exercise_id": ["Unknown exercise 'no-such-exercise'."]}},
    ),
    Case(
        "an unknown bias check", "GET", "/api/v1/bias-checks/99999", 403, "An app may not read bias checks."
    ),
    # -- answers that cannot be answers to this exercise
    Case(
        "not one of the choices",
        "POST",
        ANSWERS,
        422,
        "answer must be one of the choices: {choices}",
        json={"exercise_id": "{choice_exercise}", "answer": "zebra"},
        errors={"json": {"answer": ["answer must be one of the choices: {choices}"]}},
    ),
    Case(
        "a blank answer",
        "POST",
        ANSWERS,
        422,
        "answer must not be empty",
        json={"exercise_id": "{choice_exercise}", "answer": "   "},
        errors={"json": {"answer": ["answer must not be empty"]}},
    ),
    Case(
        "a reused client_response_id for another answer",
        "POST",
        ANSWERS,
        409,
        "client_response_id 'first' was already used for a different answer (exercise '{numeric_exercise}').",
        json={"exercise_id": "{choice_exercise}", "correct": False, "client_response_id": "first"},
    ),
    Case(
        "a reused client_response_id with other hints",
        "POST",
        ANSWERS,
        409,
        "client_response_id 'first' was already used for a different answer (exercise '{numeric_exercise}').",
        json={
            "exercise_id": "{numeric_exercise}",
            "correct": True,
            "client_response_id": "first",
            "hints_used": 2,
        },
    ),
    # -- unicode edge cases
    Case(
        "a NUL character in a string",
        "POST",
        ANSWERS,
        400,
        "Invalid JSON body: strings must not contain NUL characters (\\u0000).",
        json={"exercise_id": "{numeric_exercise}", "answer": "4\x00"},
    ),
    Case(
        "an unpaired surrogate",
        "POST",
        ANSWERS,
        400,
        "Invalid JSON body: strings must not contain unpaired UTF-16 surrogates (e.g. \\ud800).",
        data='{"exercise_id": "{numeric_exercise}", "correct": true, "client_response_id": "\\ud800"}',
    ),
    Case(
        "a control character in an id",
        "POST",
        "/api/v1/students",
        422,
        INVALID,
        json={"external_id": "bell\x07"},
        errors={"json": {"external_id": ["must be 1-200 printable characters"]}},
    ),
    Case(
        "an id of 201 emoji",
        "POST",
        "/api/v1/students",
        422,
        INVALID,
        json={"external_id": "🦉" * 201},
        errors={"json": {"external_id": ["must be 1-200 printable characters"]}},
    ),
    Case(
        "an id of spaces only",
        "POST",
        "/api/v1/students",
        422,
        INVALID,
        json={"external_id": "   "},
        errors={"json": {"external_id": ["must be 1-200 printable characters"]}},
    ),
    Case(
        "an id ending in a newline",
        "POST",
        "/api/v1/students",
        422,
        INVALID,
        json={"external_id": "s-1\n"},
        errors={"json": {"external_id": ["must be 1-200 printable characters"]}},
    ),
    Case(
        "a NUL character in the path",
        "GET",
        "/api/v1/students/a%00b/progress",
        400,
        "The URL path contains a NUL character (%00).",
    ),
    Case(
        "a NUL character in the query",
        "GET",
        "/api/v1/students/{student}/export?format=json%00",
        400,
        "The query parameter 'format' contains a NUL character (%00).",
    ),
]


@pytest.fixture
def callers(app: Flask) -> dict[str, Actor]:
    """Two schools, each with an app key; no web sign-ins (the catalogue is about the API)."""
    with app.app_context():
        session = db.session()
        north, _ = create_school(session, "North")
        south, _ = create_school(session, "South")
        keys = {
            "app1": create_api_key(session, "app-1", north).key,
            "app2": create_api_key(session, "app-2", south).key,
        }
    return {name: Actor(name, app.test_client(), key) for name, key in keys.items()}


@pytest.fixture
def scene(app: Flask, callers: dict[str, Actor], shipped_graph: Any) -> dict[str, Any]:
    """A class of North with a student who has answered three times."""
    with app.app_context():
        session = db.session()
        north = session.scalar(sa.select(School).where(School.name == "North"))
        teacher = create_staff_user(
            session, north, "t@north.test", "T", "a long enough password", role=Role.TEACHER
        )
        school_class = create_class(session, teacher, "Class A")
        [member] = enroll(session, school_class, ["student-a"])
    by_kind: dict[str, str] = {}
    for exercise in shipped_graph.exercises.values():
        by_kind.setdefault(exercise.answer_kind, exercise.id)
    values = {
        "student": member.student_id,
        "class_a": school_class.id,
        "numeric_exercise": by_kind["numeric"],
        "choice_exercise": by_kind["multiple_choice"],
        "choices": list(shipped_graph.exercises[by_kind["multiple_choice"]].choices),
    }
    app1 = callers["app1"]
    # A key's first use is recorded (last_used_at): bookkeeping, not what the cases are about.
    assert callers["app2"].request("GET", "/api/v1/skills").status_code == 200
    for i, correct in enumerate((True, False, True)):
        recorded = app1.request(
            "POST",
            fill(ANSWERS, values),
            json={
                "exercise_id": values["numeric_exercise"],
                "correct": correct,
                "client_response_id": "first" if i == 0 else f"answer-{i}",
            },
        )
        assert recorded.status_code == 201, recorded.get_json()
    return values


def fill(template: Any, values: dict[str, Any]) -> Any:
    """Placeholders filled in strings, also inside JSON documents (str.format would trip on braces)."""
    if isinstance(template, str):
        for name, value in values.items():
            template = template.replace("{" + name + "}", str(value))
        return template
    if isinstance(template, dict):
        return {k: fill(v, values) for k, v in template.items()}
    if isinstance(template, list):
        return [fill(v, values) for v in template]
    return template


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_bad_input_gets_its_status_and_message_and_writes_nothing(
    app: Flask,
    callers: dict[str, Actor],
    scene: dict[str, Any],
    case: Case,
) -> None:
    with app.app_context():
        before = database_rows()
    actor = callers[case.caller]
    body = fill(case.data, scene) if isinstance(case.data, str) else case.data
    if case.json is not UNSET:
        body = json.dumps(fill(case.json, scene))
    request_id = f"bad-input.{CASES.index(case)}"
    response = actor.client.open(
        fill(case.url, scene),
        method=case.method,
        data=body,
        headers={**actor.headers, "Content-Type": case.content_type, "X-Request-Id": request_id},
    )
    payload = response.get_json()
    assert response.status_code == case.status, payload
    assert payload["code"] == case.status
    assert payload["message"] == fill(case.message, scene)
    if case.errors is not None:
        assert payload["errors"] == fill(case.errors, scene)
    # The one error shape, with the request's id (the client's own, echoed in the header too).
    assert set(payload) <= {"code", "status", "message", "errors", "request_id"}
    assert payload["request_id"] == response.headers["X-Request-Id"] == request_id
    with app.app_context():
        assert database_rows() == before


def test_an_answer_to_an_exercise_of_a_retired_skill_is_refused_and_writes_nothing(
    app: Flask,
    callers: dict[str, Actor],
    scene: dict[str, Any],
    shipped_graph: Any,
) -> None:
    """Content reloaded without a skill: its exercises stay stored (old answers still count), but a
    new answer to one has no skill model to update."""
    leaf = next(
        s
        for s in reversed(shipped_graph.skill_order)
        if not any(s in other.prerequisites for other in shipped_graph.skills.values())
    )
    exercise = shipped_graph.exercises_by_skill[leaf][0]
    with app.app_context():
        sync_content(
            db.session(),
            build_graph(
                [s for s in shipped_graph.skills.values() if s.id != leaf],
                [e for e in shipped_graph.exercises.values() if leaf not in e.skill_ids],
            ),
        )
        before = database_rows()
    response = callers["app1"].request(
        "POST", fill(ANSWERS, scene), json={"exercise_id": exercise, "correct": True}
    )
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["message"] == (
        f"Exercise '{exercise}' is retired: its skills ['{leaf}'] are no longer in the content."
    )
    with app.app_context():
        assert database_rows() == before


def test_a_nul_character_in_a_sign_in_form_is_refused_before_anything_is_read_or_counted(
    app: Flask,
    scene: dict[str, Any],
) -> None:
    """Pages too: a NUL in a form field is a 400 page, not a database error (and not a failed sign-in)."""
    client = app.test_client()
    with app.app_context():
        before = database_rows()
    response = client.post("/student-login", data={"join_code": "ABC\x00", "personal_code": "X-Y"})
    assert response.status_code == 400
    assert "The form parameter &#39;join_code&#39; contains a NUL character (%00)." in response.get_data(
        as_text=True
    )
    with app.app_context():
        assert database_rows() == before


def test_a_database_busy_past_its_timeout_is_a_503_to_retry_and_loses_nothing(
    tmp_path: Path,
    shipped_graph: Any,
) -> None:
    """SQLite: another process holds the write lock (a long fit, a backup) past the busy timeout."""
    with fresh_database("sqlite", tmp_path) as url:
        app = make_app(url, SQLITE_BUSY_TIMEOUT_MS=200)
        with app.app_context():
            upgrade()
            sync_content(db.session(), shipped_graph)
            school, _ = create_school(db.session(), "North")
            key = create_api_key(db.session(), "app", school).key
        client = Actor("app", app.test_client(), key)
        student = client.request("POST", "/api/v1/students", json={"external_id": "s"}).get_json()["id"]
        exercise = next(iter(shipped_graph.exercises))
        answer = {"exercise_id": exercise, "correct": True, "client_response_id": "once"}

        holder = sqlite3.connect(sa.make_url(url).database, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")
        try:
            busy = client.request("POST", f"/api/v1/students/{student}/responses", json=answer)
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        assert busy.status_code == 503
        assert busy.headers["Retry-After"] == "2"  # not the rate-limit window's end Flask-Limiter stamps
        assert busy.get_json() == {
            "code": 503,
            "status": "Service Unavailable",
            "message": "The database is busy or unavailable; nothing was recorded. Retry shortly.",
            "request_id": busy.headers["X-Request-Id"],
        }
        retried = client.request("POST", f"/api/v1/students/{student}/responses", json=answer)
        assert retried.status_code == 201
        with app.app_context():
            assert db.session.scalar(sa.select(sa.func.count()).select_from(Response)) == 1
            db.engine.dispose()


def test_only_a_busy_or_unreachable_database_is_a_503(tmp_path: Path) -> None:
    """A server that cannot be reached: 503, retry. A missing table (an unmigrated database): an error to
    fix, not to retry — it stays a 500 (in tests: the exception itself)."""
    key = {"Authorization": f"Bearer {KEY_SCHEME}_abcdefgh_secret"}  # well-formed: looked up in the database
    unreachable = make_app("postgresql+psycopg://postgres@127.0.0.1:1/nowhere")
    response = unreachable.test_client().get("/api/v1/skills", headers={**key, "X-Request-Id": "lb-7.probe"})
    assert response.status_code == 503
    assert response.get_json() == {
        "code": 503,
        "status": "Service Unavailable",
        "message": "The database is busy or unavailable; nothing was recorded. Retry shortly.",
        "request_id": "lb-7.probe",
    }
    unmigrated = make_app(f"sqlite:///{tmp_path / 'empty.sqlite3'}")
    with pytest.raises(sa.exc.OperationalError, match="no such table"):
        unmigrated.test_client().get("/api/v1/skills", headers=key)
    with unmigrated.app_context():
        db.engine.dispose()


def test_a_chunked_body_over_the_limit_is_a_413_like_a_declared_one(
    app: Flask,
    callers: dict[str, Actor],
    scene: dict[str, Any],
) -> None:
    """``Transfer-Encoding: chunked`` (no Content-Length) through Werkzeug's real server: the body used to
    be cut at the limit without a word, so the JSON parser answered 400 "Unterminated string"."""
    import http.client
    import threading

    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def send_chunked(
        path: str,
        body: bytes,
        content_type: str = "application/json",
    ) -> tuple[int, str, bytes]:
        connection = http.client.HTTPConnection("127.0.0.1", server.server_port, timeout=30)
        try:
            chunks = (body[i : i + 8192] for i in range(0, len(body), 8192))
            connection.request(
                "POST",
                path,
                body=chunks,
                encode_chunked=True,
                headers={
                    **callers["app1"].headers,
                    "Content-Type": content_type,
                    "Transfer-Encoding": "chunked",
                },
            )
            response = connection.getresponse()
            return response.status, response.getheader("Content-Type") or "", response.read()
        finally:
            connection.close()

    try:
        with app.app_context():
            before = database_rows()
        url = fill(ANSWERS, scene)
        big = json.dumps(fill(answer(client_response_id="x" * 300_000), scene)).encode()
        status, kind, body = send_chunked(url, big)
        assert status == 413, body[:300]
        assert json.loads(body)["message"] == "The request body is larger than 262144 bytes."
        # Just over the limit, and exactly at it (which is allowed: the limit is the largest size taken).
        limit = app.config["MAX_CONTENT_LENGTH"]
        padded = json.dumps(fill(answer(client_response_id="y"), scene)).encode()
        at_limit = padded[:-1] + b" " * (limit - len(padded)) + b"}"
        assert len(at_limit) == limit
        status, _, body = send_chunked(url, at_limit[:-1] + b" }")
        assert status == 413, body[:300]
        with app.app_context():
            assert database_rows() == before
        status, _, body = send_chunked(url, at_limit)
        assert status == 201, body[:300]
        # A form page too: a 413 page, not a form cut short.
        status, kind, _ = send_chunked(
            "/login", b"email=a%40b.test&password=" + b"p" * 300_000, "application/x-www-form-urlencoded"
        )
        assert status == 413 and kind.startswith("text/html")
    finally:
        server.shutdown()
        thread.join()
        server.server_close()
