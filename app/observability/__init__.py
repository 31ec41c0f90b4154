"""Observability: structured logs, request ids, metrics, health and readiness (docs/OPERATIONS.md).

- ``logs``: structlog over the standard library's logging, one event per line (JSON or console);
- ``requests``: the request id (``X-Request-Id``), the ``request`` event (the access log), 4xx bursts, 500s;
- ``metrics``: Prometheus metrics through prometheus-flask-exporter, ``/metrics`` and who may read it;
- ``health``: ``/healthz`` (the process) and ``/readyz`` (the database and its migrations).

This module itself is a leaf (Flask and structlog only), so ``app.errors`` and the services can import it
without an import cycle; ``init_app`` imports the parts that need the rest of the app.
"""

from __future__ import annotations

import uuid

import structlog
from flask import Flask, g, has_request_context

REQUEST_ID_HEADER = "X-Request-Id"
REQUEST_ID = "tutor_request_id"  # on flask.g


def current_request_id() -> str:
    """The id of the current request: the client's ``X-Request-Id`` when it is valid, else a new uuid4 hex
    (``app.observability.requests`` sets it before any other hook runs); "" outside a request."""
    if not has_request_context():
        return ""
    request_id: str | None = g.get(REQUEST_ID)
    if request_id is None:  # an error raised before the first before_request hook ran
        request_id = uuid.uuid4().hex
        setattr(g, REQUEST_ID, request_id)
        structlog.contextvars.bind_contextvars(request_id=request_id)
    return request_id


def init_app(app: Flask) -> None:
    """Logs first (so every later line is structured), then request ids and the access log (their
    before_request hook ahead of every other, the limiter's included), metrics, and the probes."""
    from app.observability import health, logs, metrics, requests

    settings = app.extensions["settings"].observability
    logs.configure(settings.log_format, settings.log_level, capture_warnings=not app.testing)
    requests.init_app(app, settings)
    metrics.init_app(app, settings)
    health.init_app(app, settings)
