"""Prometheus metrics at ``/metrics`` (prometheus-flask-exporter), the same under one process or gunicorn's N.

Per request, from the exporter: ``tutor_http_request_duration_seconds`` (a histogram by method, route and
status; the route is the URL rule, never the path with its ids), ``tutor_http_request_total`` and
``tutor_http_request_exceptions_total``. The tutor's own, counted where the work is done: answers recorded
(by ``graded_by``), next exercises served (by reason), sign-in failures (by kind and reason) and lockouts (by
scope), the database pool (connections checked out, and the pool's size), and background jobs by state
(counted in the jobs table at each scrape). No label holds an id of any
kind: every label value comes from a short fixed list.

Under gunicorn, ``PROMETHEUS_MULTIPROC_DIR`` (set by scripts/serve, emptied at each start) makes every
worker write its values to files there, and a scrape of any worker adds them all up (prometheus_client's
multiprocess mode; the pool gauges sum over live workers, ``child_exit`` in scripts/gunicorn.conf.py drops a
dead worker's). Without it, each process counts for itself.

Who may read ``/metrics``: with ``METRICS_TOKEN`` set, a request carrying ``Authorization: Bearer <token>``
(from anywhere); without it, only a client on a loopback address that came through no proxy (no
``X-Forwarded-For``, ``Forwarded`` or ``X-Real-IP`` header: a reverse proxy on the same host must not make
it public). Everyone else gets a 401 or a 403.
"""

from __future__ import annotations

import functools
import hmac
import ipaddress
import os
from collections.abc import Callable
from typing import Any

from flask import Flask, Request, Response, current_app, request
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_flask_exporter import PrometheusMetrics
from sqlalchemy import event
from sqlalchemy.engine import Engine

from app.settings import Observability, SettingsError

METRICS_PATH = "/metrics"
MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
PROXY_HEADERS = ("X-Forwarded-For", "Forwarded", "X-Real-IP")


def check_multiprocess_dir() -> None:
    directory = os.environ.get(MULTIPROCESS_DIR)
    if directory is not None and not (os.path.isdir(directory) and os.access(directory, os.W_OK)):
        raise SettingsError(
            f"invalid {MULTIPROCESS_DIR} setting: {directory!r} is not a writable directory (scripts/serve "
            "makes instance/prometheus; unset it for one process)"
        )


# Before the first metric is made: in multiprocess mode, prometheus_client opens its files there at once.
check_multiprocess_dir()

# The tutor's own metrics: one object each per process (registry=None: each app registers them in its
# registry, so a process with several apps, as in the tests, has no duplicates).
ANSWERS = Counter(
    "tutor_answers_recorded",
    "Answers recorded (retries of a known client_response_id not counted), by who graded them.",
    ["graded_by"],
    registry=None,
)
NEXT_EXERCISES = Counter(
    "tutor_next_exercises_served",
    "Next-exercise recommendations served, by the reason they were chosen.",
    ["reason"],
    registry=None,
)
SIGN_IN_FAILURES = Counter(
    "tutor_sign_in_failures",
    "Sign-ins refused after checking: wrong credentials, or a form that was not valid; by kind (staff, "
    "student).",
    ["kind", "reason"],
    registry=None,
)
SIGN_IN_LOCKOUTS = Counter(
    "tutor_sign_in_lockouts",
    "Sign-in attempts refused unchecked because the address, or the address on that account, must wait.",
    ["scope"],
    registry=None,
)
POOL_CHECKED_OUT = Gauge(
    "tutor_db_pool_checked_out",
    "Database connections in use (checked out of the pool), over every live worker.",
    registry=None,
    multiprocess_mode="livesum",
)
POOL_SIZE = Gauge(
    "tutor_db_pool_size",
    "Connections the database pools keep (SQLAlchemy's pool_size), over every live worker.",
    registry=None,
    multiprocess_mode="livesum",
)
# Counted from the jobs table at each scrape (whichever worker answers it sets the values: "mostrecent").
JOBS = Gauge(
    "tutor_jobs",
    "Background jobs of every school by state (queued, running, succeeded, failed, cancelled), as the jobs "
    "table holds them when scraped.",
    ["state"],
    registry=None,
    multiprocess_mode="mostrecent",
)
OWN_METRICS = (
    ANSWERS,
    NEXT_EXERCISES,
    SIGN_IN_FAILURES,
    SIGN_IN_LOCKOUTS,
    POOL_CHECKED_OUT,
    POOL_SIZE,
    JOBS,
)


def route(req: Request) -> str:
    """The exporter's ``route`` label: the URL rule, or "unmatched" (a 404 for no route)."""
    return req.url_rule.rule if req.url_rule is not None else "unmatched"


def _refusal() -> Response | None:
    """Why this request may not read the metrics (a 401 or 403 answer), None when it may."""
    settings: Observability = current_app.extensions["settings"].observability
    if settings.metrics_token is not None:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), settings.metrics_token):
            return None
        return Response(
            "Send 'Authorization: Bearer <METRICS_TOKEN>'.\n",
            401,
            {"WWW-Authenticate": "Bearer", "Content-Type": "text/plain; charset=utf-8"},
        )
    try:
        loopback = ipaddress.ip_address(request.remote_addr or "").is_loopback
    except ValueError:
        loopback = False
    if loopback and not any(header in request.headers for header in PROXY_HEADERS):
        return None
    return Response(
        "Metrics are served to loopback clients only; set METRICS_TOKEN to read them from elsewhere.\n",
        403,
        {"Content-Type": "text/plain; charset=utf-8"},
    )


def _count_jobs() -> None:
    from app.extensions import db
    from app.services.operations.jobs import count_by_state

    try:
        counts = count_by_state(db.session())
    finally:
        db.session.rollback()  # a read: end its transaction (and SQLite's snapshot) at once
    for state, n in counts.items():
        JOBS.labels(state=state).set(n)


def _guarded(view: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        refused = _refusal()
        if refused is not None:
            return refused
        _count_jobs()
        return view(*args, **kwargs)

    return guarded


def init_app(app: Flask, _settings: Observability) -> None:
    check_multiprocess_dir()
    registry = CollectorRegistry()
    for metric in OWN_METRICS:
        registry.register(metric)
    exporter = PrometheusMetrics(
        app,
        path=METRICS_PATH,
        registry=registry,
        defaults_prefix="tutor",
        group_by=route,
        metrics_decorator=_guarded,
    )
    app.extensions["tutor.metrics"] = exporter
    from app.extensions import csrf, limiter

    view = app.view_functions.get("prometheus_metrics")  # none under Flask's reloader (the exporter's rule)
    if view is not None:
        csrf.exempt(view)
        limiter.exempt(view)


def _checked_out(*_args: Any) -> None:
    POOL_CHECKED_OUT.inc()


def _checked_in(*_args: Any) -> None:
    POOL_CHECKED_OUT.dec()


def watch_pool(engine: Engine) -> None:
    """Keep the pool gauges for ``engine`` (its events survive ``dispose``, which makes a new pool)."""
    size = getattr(engine.pool, "size", None)
    if callable(size):
        POOL_SIZE.set(size())
    event.listen(engine, "checkout", _checked_out)
    event.listen(engine, "checkin", _checked_in)
