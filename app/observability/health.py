"""``/healthz`` and ``/readyz``, for a load balancer or an orchestrator.

``/healthz``: the process answers (200 ``{"status": "ok"}``); it reads nothing. ``/readyz``: the database
answers within ``READYZ_TIMEOUT_SECONDS`` and its schema is at the migrations' head (alembic's current
revision equals the script directory's head): 200 ``{"status": "ready", ...}``, else 503 ``{"status":
"unavailable", "reason": ...}`` and a WARNING line with the details. The body names no host or error text:
the probe is public, the log line is not.

Both are exempt from rate limits and CSRF, and never open or renew a session (a cookie sent along is not
read). The readiness check uses a connection of its own, never one of the pool's (a pool exhausted by slow
requests would hang it): on PostgreSQL a new connection with ``connect_timeout`` and a
``statement_timeout``, on SQLite a read-only open with a busy timeout (the file is not created).
"""

from __future__ import annotations

import math
from typing import Any

import structlog
from alembic.script import ScriptDirectory
from flask import Blueprint, Flask, Request, current_app, jsonify
from flask.sessions import SessionInterface, SessionMixin
from flask.typing import ResponseReturnValue
from sqlalchemy import column, create_engine, inspect, select, table
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from app.settings import Observability

log = structlog.stdlib.get_logger("app.health")
bp = Blueprint("observability", __name__)
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
PROBE_ENGINE = "tutor.readiness_engine"
HEADS = "tutor.migration_heads"
VERSION_TABLE = "alembic_version"  # alembic's (and Flask-Migrate's) default


class ProbeSessions(SessionInterface):
    """The app's session interface, except that probe and metric paths get no session at all."""

    def __init__(self, inner: SessionInterface) -> None:
        self.inner = inner

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        if request.path in PROBE_PATHS:
            return None  # Flask then uses a null session, never saved
        return self.inner.open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Any) -> None:
        self.inner.save_session(app, session, response)


@bp.get("/healthz")
def healthz() -> ResponseReturnValue:
    return jsonify(status="ok")


def _probe_engine(app: Flask, timeout: float) -> Engine:
    """An engine whose every connection is new and bounded in time (made once per app)."""
    engine: Engine | None = app.extensions.get(PROBE_ENGINE)
    if engine is not None:
        return engine
    from app.extensions import db

    url = db.engine.url  # as Flask-SQLAlchemy resolved it (a relative SQLite path is in the instance folder)
    if url.get_backend_name() == "postgresql":
        engine = create_engine(
            url,
            poolclass=NullPool,
            connect_args={
                "connect_timeout": max(1, math.ceil(timeout)),
                "options": f"-c statement_timeout={math.ceil(timeout * 1000)}",
            },
        )
    elif url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
        engine = create_engine(
            url.set(database=f"file:{url.database}", query={**url.query, "mode": "ro", "uri": "true"}),
            poolclass=NullPool,
            connect_args={"timeout": timeout},
        )
    else:
        engine = db.engine  # another backend: the app's own pool
    app.extensions[PROBE_ENGINE] = engine
    return engine


def _heads(app: Flask) -> set[str]:
    """The migrations' head revision(s), read once per app (the scripts do not change while it runs)."""
    heads: set[str] | None = app.extensions.get(HEADS)
    if heads is None:
        heads = set(ScriptDirectory(app.extensions["migrate"].directory).get_heads())
        app.extensions[HEADS] = heads
    return heads


def readiness(app: Flask, timeout: float) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """(the body of the answer, the details of a failure for the log or None when ready)."""
    heads = _heads(app)
    try:
        with _probe_engine(app, timeout).connect() as connection:
            # Read directly, not through alembic's MigrationContext: that logs two lines per probe.
            current: set[str] = (
                set(connection.scalars(select(column("version_num")).select_from(table(VERSION_TABLE))))
                if inspect(connection).has_table(VERSION_TABLE)
                else set()
            )
    except SQLAlchemyError as error:
        detail = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        return {"status": "unavailable", "reason": "database unreachable"}, {"error": detail}
    if current != heads:
        revisions = {"database_revision": sorted(current), "code_revision": sorted(heads)}
        return {"status": "unavailable", "reason": "migrations not at head", **revisions}, revisions
    return {"status": "ready", "revision": sorted(heads)}, None


@bp.get("/readyz")
def readyz() -> ResponseReturnValue:
    settings: Observability = current_app.extensions["settings"].observability
    body, problem = readiness(current_app, settings.readiness_timeout)
    if problem is not None:
        log.warning("readiness.failed", reason=body["reason"], **problem)
        return jsonify(body), 503
    return jsonify(body)


def init_app(app: Flask, _settings: Observability) -> None:
    from app.extensions import csrf, limiter

    csrf.exempt(bp)
    limiter.exempt(bp)
    app.register_blueprint(bp)
    app.session_interface = ProbeSessions(app.session_interface)
