"""Rate limits that hold across worker processes: gunicorn with 4 workers, on both databases, with the
embedded default (the SQLite counter file, ``app/rate_limits.py``) and with Redis (127.0.0.1:6379, as in CI).

Sign-in throttling is in the database (``services/people/throttle.py``) and API limits in the counter storage;
either way, 4 workers must not allow 4 times the limit. A storage that fails never answers 500: each process
counts on its own until it answers again, and both switches are logged.
"""

from __future__ import annotations

import http.client
import io
import json
import logging
import re
import shutil
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import redis
import time_machine
from flask import Flask

from app.extensions import db
from app.observability import logs
from app.settings import SettingsError, defaults
from bench.harness import free_port, serve
from tests.conftest import csrf_token_of, issue_key, make_app

WORKERS = 4
POSTS = 40
LOGIN_LIMIT, API_LIMIT = 10, 20
REDIS_URL = "redis://127.0.0.1:6379/0"
PAUSED = "Too many failed sign-ins from your network"
DEADLINE = 120.0
SENT = (("POST", "/login"), ("GET", "/api/v1/skills"))


def storage_uri(kind: str, folder: Path) -> str:
    return f"sqlite:///{folder / 'ratelimits.sqlite3'}" if kind == "sqlite" else REDIS_URL


@contextmanager
def gunicorn(database_url: str, storage: str, prefix: str, folder: Path) -> Iterator[tuple[int, Path]]:
    """4 workers on the test database with the limits of the issue; yields (port, stderr log)."""
    env = {
        "SECRET_KEY": "shared-limits-test",
        "RATELIMIT_LOGIN": f"{LOGIN_LIMIT} per minute",
        "RATELIMIT_API": f"{API_LIMIT} per minute",
        "RATELIMIT_STORAGE_URI": storage,
        "RATELIMIT_KEY_PREFIX": prefix,
        # A slot per worker: this test counts the throttle's answers, not the hashing cap's quick 429s.
        "LOGIN_HASH_CONCURRENCY": str(WORKERS),
        "LOGIN_HASH_LOCK_DIR": str(folder),
        "LOG_FORMAT": "json",
    }
    log = folder / "gunicorn.log"
    # create_app({}): everything from the environment, as in production (never a developer's
    # instance/config.py).
    with (
        open(log, "wb") as stderr,
        serve("app:create_app({})", database_url, workers=WORKERS, env=env, log=stderr) as server,
    ):
        yield server.port, log


def request(port: int, method: str, path: str, **kwargs: Any) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, **kwargs)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


def sign_in_form(port: int) -> tuple[str, str]:
    """A visitor's session cookie and the sign-in form's CSRF token (a real browser's first GET)."""
    status, headers, html = request(port, "GET", "/login")
    assert status == 200
    return headers["Set-Cookie"].split(";", 1)[0], csrf_token_of(html)


def wrong_password(port: int, form: tuple[str, str], i: int) -> tuple[int, dict[str, str], str]:
    cookie, token = form
    # Each post another account: the per-account back-off (after LOGIN_MAX_FAILURES) never applies, only the
    # address's limit.
    body = f"csrf_token={token}&email=nobody{i}%40north.test&password=guessing+wrong"
    headers = {"Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"}
    return request(port, "POST", "/login", body=body, headers=headers)


def all_at_once(calls: list[Any], threads: int = 8) -> list[Any]:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(call) for call in calls]
        return [future.result(timeout=DEADLINE) for future in futures]


def request_lines(log: Path, method: str, route: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    return [
        line
        for line in lines
        if line.get("event") == "request" and line.get("method") == method and line.get("route") == route
    ]


def forget_redis_counters(prefix: str) -> None:
    client = redis.Redis.from_url(REDIS_URL)
    for key in client.scan_iter(match=f"LIMITS:LIMITER/{prefix}/*"):
        client.delete(key)
    client.close()


@pytest.mark.parametrize("kind", ["sqlite", "redis"])
def test_four_workers_hold_the_sign_in_and_api_limits(
    app: Flask, database_url: str, tmp_path: Path, kind: str
) -> None:
    prefix = f"tutor-test-{uuid.uuid4().hex[:12]}"
    key = issue_key(app, "limits-app")
    try:
        with gunicorn(database_url, storage_uri(kind, tmp_path), prefix, tmp_path) as (port, log):
            forms = all_at_once([lambda: sign_in_form(port) for _ in range(POSTS)])
            posts = all_at_once(
                [lambda i=i, form=form: wrong_password(port, form, i) for i, form in enumerate(forms)]
            )
            bearer = {"Authorization": f"Bearer {key}"}
            calls = all_at_once(
                [lambda: request(port, "GET", "/api/v1/skills", headers=bearer) for _ in range(POSTS)]
            )
            logged = {route: request_lines(log, method, route) for method, route in SENT}
    finally:
        if kind == "redis":
            forget_redis_counters(prefix)

    # Sign-in: exactly RATELIMIT_LOGIN failures let through (each checked, and wrong), the rest paused.
    statuses = Counter(status for status, _, _ in posts)
    assert statuses == {401: LOGIN_LIMIT, 429: POSTS - LOGIN_LIMIT}, statuses
    for status, headers, html in posts:
        if status == 429:
            assert PAUSED in html and 1 <= int(headers["Retry-After"]) <= 60
    # The API key's budget: RATELIMIT_API over every worker.
    statuses = Counter(status for status, _, _ in calls)
    assert statuses == {200: API_LIMIT, 429: POSTS - API_LIMIT}, statuses
    for status, headers, body in calls:
        assert headers["X-RateLimit-Limit"] == str(API_LIMIT)
        if status == 429:
            assert 1 <= int(headers["Retry-After"]) <= 60 and json.loads(body)["code"] == 429
    # The posts and calls were answered by several workers (with per-process counters each would admit its
    # own budget).
    for route, lines in logged.items():
        assert len(lines) == POSTS and len({line["pid"] for line in lines}) >= 2, route


# --- a storage that fails --------------------------------------------------------------------------


@contextmanager
def captured_events() -> Iterator[io.StringIO]:
    """The app's log lines (JSON) while the block runs."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json"))
    root = logging.getLogger()
    before = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(before)


def events(stream: io.StringIO, name: str) -> list[dict[str, Any]]:
    lines = [json.loads(line) for line in stream.getvalue().splitlines() if line.startswith("{")]
    return [line for line in lines if line["event"] == name]


def skills(client: Any, key: str, n: int) -> list[int]:
    return [
        client.get("/api/v1/skills", headers={"Authorization": f"Bearer {key}"}).status_code for _ in range(n)
    ]


def until_recovered(call: Callable[[], int], clock: Any, logged: io.StringIO) -> int:
    """Calls, moving the clock on, until Flask-Limiter has tried the storage again and found it answering
    (it waits 1, 2, 4, ... 32 s between tries); the status of the call that found it."""
    for _ in range(40):
        clock.shift(4)
        status = call()
        assert status in (200, 429)
        if events(logged, "rate_limit.storage_recovered"):
            return status
    raise AssertionError("the storage was never tried again")


@contextmanager
def redis_server(port: int) -> Iterator[None]:
    process = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(port=port)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_redis_down_counts_per_process_and_recovers_without_a_500(app: Flask, database_url: str) -> None:
    port = free_port()  # nothing listens here yet
    flaky = make_app(
        database_url,
        RATELIMIT_STORAGE_URI=f"redis://127.0.0.1:{port}/0",
        RATELIMIT_KEY_PREFIX=f"tutor-test-{uuid.uuid4().hex[:12]}",
        RATELIMIT_API="3 per minute",
    )
    key = issue_key(app, "flaky-app")
    client = flaky.test_client()
    with captured_events() as logged, time_machine.travel(time.time(), tick=True) as clock:
        # Fail-open to per-process counting: the limit still holds in this process.
        assert skills(client, key, 5) == [200, 200, 200, 429, 429]
        (down,) = events(logged, "rate_limit.storage_unavailable")
        assert down["level"] == "warning" and down["storage"] == f"redis://127.0.0.1:{port}/0"
        assert "ConnectionError" in down["error"] and "request_id" in down
        with redis_server(port):
            assert until_recovered(lambda: skills(client, key, 1)[0], clock, logged) == 200
            assert skills(client, key, 3) == [200, 200, 429]  # counted in Redis, from zero
            (up,) = events(logged, "rate_limit.storage_recovered")
            assert up["storage"] == down["storage"] and up["after_seconds"] >= 1
    with flaky.app_context():
        db.engine.dispose()


def test_an_unwritable_counter_file_counts_per_process_instead_of_a_500(
    app: Flask, database_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "limits"
    folder.mkdir()
    fragile = make_app(
        database_url,
        RATELIMIT_STORAGE_URI=f"sqlite:///{folder / 'ratelimits.sqlite3'}",
        RATELIMIT_API="2 per minute",
    )
    key = issue_key(app, "fragile-app")
    assert skills(fragile.test_client(), key, 3) == [200, 200, 429]  # counted in the file
    with captured_events() as logged, time_machine.travel(time.time(), tick=True) as clock:
        shutil.rmtree(folder)  # the file goes away under the running app
        # Another thread opens its own connection, and the file cannot be opened any more.
        (statuses,) = all_at_once([lambda: skills(fragile.test_client(), key, 3)], threads=1)
        assert statuses == [200, 200, 429]  # counted in this process from then on
        (down,) = events(logged, "rate_limit.storage_unavailable")
        assert "OperationalError" in down["error"] and down["storage"].endswith("limits/ratelimits.sqlite3")
        folder.mkdir()
        (first,) = all_at_once(
            [lambda: until_recovered(lambda: skills(fragile.test_client(), key, 1)[0], clock, logged)],
            threads=1,
        )
        # A new file, counted from zero (by new connections: this thread's own still has the old file open).
        assert first == 200
        assert all_at_once([lambda: skills(fragile.test_client(), key, 2)], threads=1) == [[200, 429]]
    with fragile.app_context():
        db.engine.dispose()


def test_the_default_storage_is_the_instance_folders_counter_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RATELIMIT_STORAGE_URI", raising=False)
    assert defaults("/srv/tutor/instance")["RATELIMIT_STORAGE_URI"] == (
        "sqlite:////srv/tutor/instance/ratelimits.sqlite3"
    )
    monkeypatch.setenv("RATELIMIT_STORAGE_URI", "redis://10.0.0.7:6379/2")
    assert defaults("/srv/tutor/instance")["RATELIMIT_STORAGE_URI"] == "redis://10.0.0.7:6379/2"


def test_unsupported_storages_and_strategies_stop_the_start(database_url: str, tmp_path: Path) -> None:
    refused = {
        "RATELIMIT_STORAGE_URI": ("memcached://127.0.0.1:11211", "must be sqlite:///<file>"),
        "RATELIMIT_STRATEGY": ("moving-window", "only 'fixed-window' is supported"),
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": (False, "must stay true"),
        "RATELIMIT_KEY_PREFIX": ("two words", "must be 1-64 letters"),
    }
    for key, (value, message) in refused.items():
        with pytest.raises(SettingsError, match=re.escape(f"invalid {key} setting: {message}")):
            make_app(database_url, **{key: value})
    missing = f"sqlite:///{tmp_path / 'no-such-folder' / 'ratelimits.sqlite3'}"
    with pytest.raises(SettingsError, match="which is not a folder that exists"):
        make_app(database_url, RATELIMIT_STORAGE_URI=missing)
