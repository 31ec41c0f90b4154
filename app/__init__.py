"""Application factory."""

from __future__ import annotations

import os
from typing import Any

from flask import Flask, Response, request
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug.middleware.proxy_fix import ProxyFix

from app import api, cli, errors, inputs, observability, rate_limits, sessions, web
from app.extensions import READ_SNAPSHOT, RowIdConverter, csrf, db, limiter, migrate
from app.observability import metrics, requests
from app.services.operations import queue
from app.settings import configure


class Tutor(Flask):
    def log_exception(self, exc_info: Any) -> None:
        # An exception no handler took (a 500): one ERROR line with the traceback and the request id.
        requests.log_unhandled(exc_info)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    app = Tutor(__name__, instance_relative_config=True)
    app.url_map.converters["id"] = RowIdConverter
    os.makedirs(app.instance_path, exist_ok=True)
    # defaults <- env <- instance/config.py (or test_config), validated once: a bad value stops here.
    settings = configure(app, test_config)
    # Logs first, so every later line is structured; request ids before any other hook can refuse.
    observability.init_app(app)

    if settings.proxy_count:
        # Behind N reverse proxies: take the client address and scheme from their X-Forwarded-* headers,
        # so rate limits count clients, not the proxy.
        hops = settings.proxy_count
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)  # type: ignore[method-assign]

    db.init_app(app)
    migrate.init_app(app, db, directory=os.path.join(os.path.dirname(__file__), "..", "migrations"))
    queue.init_app(app)  # the job queue (JOBS_URL): workers run what the API, pages and CLI queue
    with app.app_context():
        _tune_sqlite(db.engine, settings.sqlite_busy_timeout_ms)
        metrics.watch_pool(db.engine)
    app.after_request(errors.keep_retry_after)  # before the limiter's, so it runs after it
    rate_limits.init_app(app, limiter)  # the counters' storage options, its failures logged
    limiter.init_app(app)  # first: rate limits apply before any other check (CSRF included)
    inputs.init_app(app)
    csrf.init_app(app)
    sessions.init_app(app)
    errors.init_app(app)
    api.init_app(app)
    web.init_app(app)
    cli.init_app(app)
    app.after_request(_security_headers)
    return app


# Every asset is served by the app itself: no inline scripts, no CDN, no framing.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)


def _security_headers(response: Response) -> Response:
    headers = response.headers
    headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
    headers.setdefault("X-Frame-Options", "DENY")
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint != "static":
        # Pages and answers carry student data: never kept by browsers or proxies.
        headers.setdefault("Cache-Control", "no-store")
    return response


def _tune_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    """SQLite: WAL, a busy timeout, foreign keys, and BEGIN IMMEDIATE.

    Every transaction takes the write lock up front, so two requests answering for
    the same student serialise instead of failing with "database is locked" when
    the second one tries to upgrade its read lock. A connection with the execution
    option ``READ_SNAPSHOT`` (a long read-only check) begins a plain read
    transaction instead: a WAL snapshot that never blocks the writers.
    """
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below be the only one
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms:d}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        snapshot = connection.get_execution_options().get(READ_SNAPSHOT)
        connection.exec_driver_sql("BEGIN DEFERRED" if snapshot else "BEGIN IMMEDIATE")
