"""Fixtures: every app-level test runs on SQLite and on PostgreSQL.

Each backend gets its own fresh database for the session (created, migrated,
loaded with the shipped content, dropped at the end); student data is wiped
after every test. PostgreSQL is used when a server answers at
TEST_DATABASE_URL (default: the local server); under CI=true a missing server
fails the run instead of skipping.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import sqlalchemy as sa
from flask import Flask, current_app
from flask.testing import FlaskClient
from flask_migrate import upgrade
from werkzeug.serving import make_server

from app import create_app
from app.api.schemas import DECIMALS
from app.domain.access import Role
from app.extensions import db
from app.models import ContentState
from app.services.people.accounts import create_class, create_school, create_staff_user, enroll
from app.services.people.apps import create_api_key
from app.services.tutoring.content import sync_content
from app.services.tutoring.content_files import read_content
from bench.harness import postgres_database

# No test may depend on the machine's speed: Hypothesis's per-example deadline (200 ms) and its "too slow"
# health check fail on a loaded machine (CI shares 2 cores), not on a wrong answer. HYPOTHESIS_PROFILE=default
# brings them back, to look for a slow example on purpose.
hypothesis.settings.register_profile(
    "tutor", deadline=None, suppress_health_check=[hypothesis.HealthCheck.too_slow]
)
hypothesis.settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "tutor"))

ROOT = Path(__file__).resolve().parent.parent
CONTENT_DIR = ROOT / "content"


def _shared_data() -> Path:
    """The public logs live beside the repo (../shared/data), never inside it."""
    candidates = [os.environ.get("SHARED_DATA_DIR"), ROOT.parent / "shared" / "data", "/work/shared/data"]
    for candidate in candidates:
        if candidate and (Path(candidate) / "assistments_2skills.csv").is_file():
            return Path(candidate)
    return ROOT.parent / "shared" / "data"


DATA_DIR = _shared_data()
PG_ADMIN_URL = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
BACKENDS = ["sqlite", "postgresql"]
# The API publishes every number with a fraction rounded to DECIMALS places (app.api.schemas).
ROUNDING = 0.5 * 10**-DECIMALS + 1e-12


def published(value: float) -> float:
    """``value`` as the API sends it."""
    return round(value, DECIMALS)


def _postgres_available() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as error:  # noqa: BLE001 - any failure means "not available"
        return str(error).splitlines()[0]
    return None


@contextmanager
def fresh_database(backend: str, directory: Path, prefix: str = "tutor_test") -> Iterator[str]:
    """The URL of a new, empty database (PostgreSQL: created now, dropped afterwards)."""
    if backend == "sqlite":
        yield f"sqlite:///{directory / (prefix + '.sqlite3')}"
        return
    problem = _postgres_available()
    if problem is not None:
        message = f"PostgreSQL not reachable at {PG_ADMIN_URL}: {problem}"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    with postgres_database(PG_ADMIN_URL, prefix) as url:
        yield url


@pytest.fixture(scope="session", params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


def jobs_url_for(database_url: str) -> str:
    """The job queue of a test database: a SQLite file of its own (never the repo's instance folder), so the
    two backends, and parallel runs, never read each other's messages."""
    digest = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    return f"sqlite:///{Path(tempfile.gettempdir()) / f'tutor-test-{digest}.jobs.sqlite3'}"


def rate_limits_url_for(database_url: str) -> str:
    """The API's rate-limit counters of a test database: a SQLite file of its own (as the default is, but
    never the repo's instance folder), so parallel runs never count each other's requests."""
    name = hashlib.sha256(database_url.encode()).hexdigest()[:16]
    return f"sqlite:///{Path(tempfile.gettempdir()) / f'tutor-test-{name}.ratelimits.sqlite3'}"


def make_app(database_url: str, **overrides: Any) -> Flask:
    config = {
        "TESTING": True,
        "SECRET_KEY": "test",
        "SQLALCHEMY_DATABASE_URI": database_url,
        "CONTENT_DIR": str(CONTENT_DIR),
        "SESSION_COOKIE_SECURE": False,  # the test client speaks plain http
        "RATELIMIT_LOGIN": "10000 per minute",  # every test signs in from 127.0.0.1
        # The hashing slots' lock files (one set per test database): not in the repo's instance folder.
        "LOGIN_HASH_LOCK_DIR": tempfile.gettempdir(),
        "JOBS_URL": jobs_url_for(database_url),
        "RATELIMIT_STORAGE_URI": rate_limits_url_for(database_url),
    }
    config.update(overrides)
    return create_app(config)


@pytest.fixture(scope="session")
def shipped_graph() -> Any:
    return read_content(CONTENT_DIR)


@pytest.fixture(scope="session")
def migrated_app(database_url: str, shipped_graph: Any) -> Iterator[Flask]:
    app = make_app(database_url)
    with app.app_context():
        upgrade()
        sync_content(db.session(), shipped_graph)
        app.config["TEST_SHIPPED_REVISION"] = content_revision()
    yield app
    with app.app_context():
        db.engine.dispose()
    for url in (jobs_url_for(database_url), rate_limits_url_for(database_url)):
        leftover = Path(url.removeprefix("sqlite:///"))
        for path in (leftover, Path(f"{leftover}-wal"), Path(f"{leftover}-shm")):
            path.unlink(missing_ok=True)


def content_revision() -> int:
    return db.session.scalar(sa.select(ContentState.revision)) or 0


# Content and parameters survive between tests (reloaded only when a test changed them).
CONTENT_TABLES = {
    "skills",
    "skill_prerequisites",
    "exercises",
    "exercise_skills",
    "skill_parameters",
    "content_state",
    "fit_runs",
}


def reset_database(shipped_graph: Any) -> None:
    """Everything but content goes after each test, so no test sees another's schools, students or logs."""
    revision = content_revision()
    for table in reversed(db.metadata.sorted_tables):
        if table.name not in CONTENT_TABLES:
            db.session.execute(table.delete())
    if revision != current_app.config["TEST_SHIPPED_REVISION"]:
        for table in reversed(db.metadata.sorted_tables):
            db.session.execute(table.delete())
        db.session.commit()
        sync_content(db.session(), shipped_graph)
        current_app.config["TEST_SHIPPED_REVISION"] = content_revision()
    db.session.commit()


@pytest.fixture
def app(migrated_app: Flask, shipped_graph: Any) -> Iterator[Flask]:
    yield migrated_app
    with migrated_app.app_context():
        db.session.rollback()
        reset_database(shipped_graph)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@contextmanager
def serve(app: Flask) -> Iterator[str]:
    """A real HTTP server for ``app`` on a free loopback port, for as long as the block runs: its base URL."""
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        server.server_close()


@pytest.fixture
def live_server(app: Flask) -> Iterator[str]:
    """The test's app behind a real HTTP server (browser tests, generated clients, the schemathesis CLI)."""
    with serve(app) as url:
        yield url


class ApiClient:
    """A test client that sends one learning app's key."""

    def __init__(self, client: FlaskClient, key: str) -> None:
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"}

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.client.get(url, headers=self.headers, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.client.post(url, headers=self.headers, **kwargs)

    def new_student(self, external_id: str = "student-1") -> str:
        response = self.post("/api/v1/students", json={"external_id": external_id})
        assert response.status_code in (200, 201), response.get_json()
        return str(response.get_json()["id"])


def issue_key(app: Flask, name: str, school: str | None = None) -> str:
    """A key for app ``name`` of ``school`` (default: a school of its own, created if new)."""
    with app.app_context():
        tenant, _ = create_school(db.session(), school or f"{name} school")
        return create_api_key(db.session(), name, tenant).key


@pytest.fixture
def api(app: Flask, client: FlaskClient) -> ApiClient:
    return ApiClient(client, issue_key(app, "test-app"))


@pytest.fixture
def other_api(app: Flask, client: FlaskClient) -> ApiClient:
    return ApiClient(app.test_client(), issue_key(app, "other-app"))


@pytest.fixture
def school(app: Flask) -> str:
    """One school, so commands that default to "the only school" have one."""
    with app.app_context():
        return create_school(db.session(), "Test school")[0].name


@pytest.fixture
def runner(app: Flask) -> Any:
    return app.test_cli_runner()


# --- schools, people and their sessions (access tests, pages) ------------------------------------

PASSWORD = "correct horse battery"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def csrf_token_of(html: str) -> str:
    match = CSRF_META.search(html)
    assert match, "page has no csrf-token meta tag"
    return match.group(1)


class Actor:
    """One caller with its own cookie jar: anonymous, signed in on the web, or an app with a key."""

    def __init__(self, name: str, client: FlaskClient, key: str | None = None) -> None:
        self.name = name
        self.client = client
        self.headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.csrf = ""

    def refresh_csrf(self, page: str) -> None:
        self.csrf = csrf_token_of(self.client.get(page, headers=self.headers).get_data(as_text=True))

    def request(self, method: str, url: str, *, json: Any = None, form: dict[str, str] | None = None) -> Any:
        headers = dict(self.headers)
        if self.csrf and form is None and method not in ("GET", "HEAD"):
            headers["X-CSRFToken"] = self.csrf
        if form is not None:
            form = {"csrf_token": self.csrf, **form}
        response = self.client.open(url, method=method, headers=headers, json=json, data=form)
        response.get_data()  # buffered, so the file of a static response can be closed now
        response.close()
        return response

    def sign_in_staff(self, email: str, password: str = PASSWORD) -> Any:
        self.refresh_csrf("/login")
        return self.request("POST", "/login", form={"email": email, "password": password})

    def sign_in_student(self, join_code: str, personal_code: str) -> Any:
        self.refresh_csrf("/student-login")
        return self.request(
            "POST", "/student-login", form={"join_code": join_code, "personal_code": personal_code}
        )


@dataclass
class World:
    """Two schools. North: an admin, teacher A (class A: student A), teacher B (class B: student B),
    app 1. South: app 2."""

    north: int
    south: int
    class_a: int
    class_b: int
    join_a: str
    join_b: str
    student_a: str
    student_b: str
    code_a: str
    code_b: str
    key_1: str
    key_2: str
    actors: dict[str, Actor] = field(default_factory=dict)


@pytest.fixture
def world(app: Flask) -> World:
    with app.app_context():
        session = db.session()
        north, _ = create_school(session, "North")
        south, _ = create_school(session, "South")
        create_staff_user(session, north, "admin@north.test", "Ada Admin", PASSWORD, role=Role.ADMIN)
        teacher_a = create_staff_user(session, north, "a@north.test", "A", PASSWORD, role=Role.TEACHER)
        teacher_b = create_staff_user(session, north, "b@north.test", "B", PASSWORD, role=Role.TEACHER)
        class_a = create_class(session, teacher_a, "Class A")
        class_b = create_class(session, teacher_b, "Class B")
        [a] = enroll(session, class_a, ["student-a"])
        [b] = enroll(session, class_b, ["student-b"])
        assert a.code and b.code
        built = World(
            north=north.id,
            south=south.id,
            class_a=class_a.id,
            class_b=class_b.id,
            join_a=class_a.join_code,
            join_b=class_b.join_code,
            student_a=a.student_id,
            student_b=b.student_id,
            code_a=a.code,
            code_b=b.code,
            key_1=create_api_key(session, "app-1", north).key,
            key_2=create_api_key(session, "app-2", south).key,
        )
    actors = {name: Actor(name, app.test_client()) for name in ROLES}
    actors["app1"] = Actor("app1", app.test_client(), built.key_1)
    actors["app2"] = Actor("app2", app.test_client(), built.key_2)
    for name, email in (
        ("teacher_a", "a@north.test"),
        ("teacher_other", "b@north.test"),
        ("admin", "admin@north.test"),
    ):
        assert actors[name].sign_in_staff(email).status_code == 302
        actors[name].refresh_csrf("/classes")
    for name, join, code in (
        ("student_a", built.join_a, built.code_a),
        ("student_b", built.join_b, built.code_b),
    ):
        assert actors[name].sign_in_student(join, code).status_code == 302
        actors[name].refresh_csrf("/me")
    for name in ("anonymous", "app1", "app2"):
        actors[name].refresh_csrf("/login")
    built.actors = actors
    return built


ROLES = ("anonymous", "student_a", "student_b", "teacher_a", "teacher_other", "app1", "app2", "admin")


# --- background jobs ------------------------------------------------------------------------------


@pytest.fixture
def jobs_worker(app: Flask) -> Iterator[Any]:
    """Huey's consumer, in threads of this process, on the app's real queue storage (SQLite, as configured):
    runs the jobs the test queues (tests/jobs_support.py starts real worker processes)."""
    from app.services.operations.queue import EXTENSION

    queue = app.extensions[EXTENSION]
    queue.flush()  # messages left by an earlier test (whose jobs are gone with its data)
    consumer = queue.consumer(2, signals=False)
    consumer.start()
    try:
        yield queue
    finally:
        consumer.stop(graceful=True)


def finished_job(actor: Any, location: str, timeout: float = 120) -> dict[str, Any]:
    """GET a job (by its Location) until its state is final: its last body."""
    from tests.jobs_support import wait_for

    def final() -> dict[str, Any] | None:
        body: dict[str, Any] = actor.request("GET", location).get_json()
        return body if body["state"] in ("succeeded", "failed", "cancelled") else None

    return dict(wait_for(final, timeout))
