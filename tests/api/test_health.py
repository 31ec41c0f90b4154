"""/healthz and /readyz, on both databases; and a real gunicorn with several workers: JSON lines from the
master and the workers, and one /metrics view over every worker (prometheus_client's multiprocess mode)."""

from __future__ import annotations

import http.client
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from flask import Flask
from flask_migrate import upgrade
from prometheus_client.parser import text_string_to_metric_families

from app.extensions import db
from bench.harness import ROOT, serve
from tests.conftest import World, fresh_database, issue_key, make_app

MIGRATIONS = ROOT / "migrations"


def head() -> str:
    [only] = ScriptDirectory(str(MIGRATIONS)).get_heads()
    return only


def backend_of(url: str) -> str:
    return "postgresql" if url.startswith("postgresql") else "sqlite"


def test_healthz_and_readyz_answer_when_all_is_well(app: Flask) -> None:
    client = app.test_client()
    healthz = client.get("/healthz")
    assert healthz.status_code == 200 and healthz.get_json() == {"status": "ok"}
    readyz = client.get("/readyz")
    assert readyz.status_code == 200, readyz.get_json()
    assert readyz.get_json() == {"status": "ready", "revision": [head()]}
    assert readyz.headers["Cache-Control"] == "no-store" and readyz.headers["X-Request-Id"]


def test_probes_never_open_or_renew_a_session(world: World) -> None:
    """A signed-in session's cookie sent along is not read, and not renewed (every page renews it). (That
    no rate limit applies, even a configured default, is shown against gunicorn below: Flask-Limiter's
    defaults belong to its one extension object, so a test app with one would leak it to the others.)"""
    teacher = world.actors["teacher_a"].client
    assert "Set-Cookie" in teacher.get("/classes").headers
    for path in ("/healthz", "/readyz", "/metrics"):
        answer = teacher.get(path)
        assert answer.status_code == 200 and "Set-Cookie" not in answer.headers, path


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_readyz_is_503_when_the_database_cannot_be_reached(backend: str, tmp_path: Path) -> None:
    url = {
        "sqlite": f"sqlite:///{tmp_path / 'no-such-folder' / 'tutor.sqlite3'}",
        "postgresql": "postgresql+psycopg://postgres@127.0.0.1:1/nowhere",  # a closed port
    }[backend]
    unreachable = make_app(url, READYZ_TIMEOUT_SECONDS=1)
    client = unreachable.test_client()
    assert client.get("/healthz").status_code == 200  # the process is fine
    readyz = client.get("/readyz")
    assert readyz.status_code == 503
    assert readyz.get_json() == {"status": "unavailable", "reason": "database unreachable"}
    assert readyz.headers["Retry-After"] == "2"
    assert not (tmp_path / "no-such-folder" / "tutor.sqlite3").exists()  # the probe creates no database


def test_readyz_is_503_until_the_database_is_migrated_to_head(database_url: str, tmp_path: Path) -> None:
    with fresh_database(backend_of(database_url), tmp_path, prefix="tutor_readyz") as url:
        behind = make_app(url)
        with behind.app_context():
            db.engine.connect().close()  # an empty database (SQLite: the file exists)
        client = behind.test_client()
        empty = client.get("/readyz")
        assert empty.status_code == 503
        assert empty.get_json() == {
            "status": "unavailable",
            "reason": "migrations not at head",
            "database_revision": [],
            "code_revision": [head()],
        }
        previous = ScriptDirectory(str(MIGRATIONS)).get_revision(head()).down_revision
        with behind.app_context():
            upgrade(revision=previous)
        older = client.get("/readyz")
        assert older.status_code == 503
        assert older.get_json()["database_revision"] == [previous]
        with behind.app_context():
            upgrade()
        assert client.get("/readyz").status_code == 200
        with behind.app_context():
            db.engine.dispose()


# --- gunicorn with several workers ------------------------------------------------------------------

WORKERS = 2


def get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, str]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers=headers or {})
        response = connection.getresponse()
        return response.status, response.read().decode()
    finally:
        connection.close()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def test_gunicorn_workers_log_json_lines_and_share_one_metrics_view(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    key = issue_key(app, "gunicorn-app")
    multiprocess = tmp_path / "prometheus"
    multiprocess.mkdir()
    log = tmp_path / "stderr.log"
    env = {
        "SECRET_KEY": "health-test",
        "RATELIMIT_API": "1000000 per minute",
        # scripts/serve's settings: its gunicorn config (JSON lines, no access log) and the metrics folder.
        "GUNICORN_CMD_ARGS": f"-c {ROOT / 'scripts' / 'gunicorn.conf.py'}",
        "PROMETHEUS_MULTIPROC_DIR": str(multiprocess),
        "LOG_LEVEL": "INFO",
        "LOG_FORMAT": "json",
    }
    # A default rate limit for every route that has none (the API has its own): probes are exempt.
    target = "app:create_app({'RATELIMIT_DEFAULT': '1 per minute'})"
    with (
        open(log, "wb") as stderr,
        serve(target, database_url, workers=WORKERS, env=env, log=stderr) as server,
    ):
        port = server.port
        sent: list[str] = []

        def one(n: int) -> None:
            request_id = f"gw-{n}"
            status, _ = get(
                port, "/api/v1/skills", {"Authorization": f"Bearer {key}", "X-Request-Id": request_id}
            )
            assert status == 200
            sent.append(request_id)

        pids: set[int] = set()
        for round_ in range(5):  # until both workers have answered (8 clients at once: almost surely at once)
            with ThreadPoolExecutor(max_workers=8) as pool:
                list(pool.map(one, range(round_ * 24, (round_ + 1) * 24)))
            lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            pids = {
                line["pid"] for line in lines if line["event"] == "request" and line["request_id"] in sent
            }
            if len(pids) == WORKERS:
                break
        assert len(pids) == WORKERS
        for path in ("/healthz", "/readyz", "/metrics"):
            assert {get(port, path)[0] for _ in range(6)} == {200}, path
        assert 429 in {get(port, "/login")[0] for _ in range(2 * WORKERS + 1)}  # the default applies here
        status, text = get(port, "/metrics")
        assert status == 200
        metrics = samples(text)
        skills = (("method", "GET"), ("route", "/api/v1/skills"), ("status", "200"))
        assert metrics[("tutor_http_request_duration_seconds_count", skills)] == len(sent)
        with app.app_context():
            per_worker = db.engine.pool.size()
        assert metrics[("tutor_db_pool_size", ())] == WORKERS * per_worker
        assert ("tutor_db_pool_checked_out", ()) in metrics
        refused, _ = get(port, "/metrics", {"X-Forwarded-For": "192.0.2.1"})
        assert refused == 403
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]  # every line is JSON
    master = [line for line in lines if line["logger"] == "gunicorn.error"]
    assert any(line["event"].startswith("Booting worker with pid") for line in master)
    assert all({"timestamp", "level", "event", "logger", "pid"} <= set(line) for line in lines)
    requests = [
        line for line in lines if line["event"] == "request" and line.get("route") == "/api/v1/skills"
    ]
    assert sorted(line["request_id"] for line in requests) == sorted(sent)
    assert all(line["principal_kind"] == "app" and line["status"] == 200 for line in requests)
    assert not [line for line in lines if "GET /api/v1/skills HTTP" in line["event"]]  # no text access log
    assert key not in log.read_text()
