"""Request ids, the ``request`` event (the access log), bursts of 4xx answers, and unhandled exceptions.

Every request gets an id: the client's ``X-Request-Id`` when it is 1-128 characters of ``[A-Za-z0-9._-]``,
else a new uuid4 hex. It is bound into every log line of the request, returned in ``X-Request-Id`` on
every response, and put in every API error body (``request_id``) and on the error pages.

One ``request`` line per request, after the answer is built: method, route (the URL rule, never the raw
path or the query string: no ids or names from them), status, duration_ms and the principal (kind and id:
an app's id, a staff user's id, or a student's pseudonymous id). Probes, scrapes and static files that
succeed are logged at DEBUG, so a load balancer's checks and a page's assets do not fill the log.

No client address is logged (docs/DATA.md): where a client must be told apart without a principal (a
burst of 4xx), it is named by a keyed digest of its address, the same digest the sign-in throttle stores.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import threading
import time
import uuid
from typing import Any

import structlog
from flask import Flask, Response, current_app, g, request

from app.domain.access import Principal
from app.observability import REQUEST_ID, REQUEST_ID_HEADER, current_request_id
from app.settings import Observability

log = structlog.stdlib.get_logger("app.requests")

VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,128}")
STARTED = "tutor_request_started"
BURSTS = "tutor.client_error_bursts"
# Endpoints whose successful answers are logged at DEBUG: load-balancer probes, metric scrapes, and the
# stylesheet, script and icon every page fetches.
QUIET_ENDPOINTS = frozenset({"observability.healthz", "observability.readyz", "prometheus_metrics", "static"})
BURST_WINDOW_SECONDS = 60.0


def _begin() -> None:
    structlog.contextvars.clear_contextvars()
    given = request.headers.get(REQUEST_ID_HEADER)
    request_id = given if given is not None and VALID_REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
    setattr(g, REQUEST_ID, request_id)
    setattr(g, STARTED, time.perf_counter())
    structlog.contextvars.bind_contextvars(request_id=request_id)


def route() -> str | None:
    """The URL rule that matched (``/api/v1/students/<id:student_id>``), None when none did."""
    rule = request.url_rule
    return rule.rule if rule is not None else None


def principal() -> Principal | None:
    """Who called, if this request already knows (never a database read): the API's principal, or the
    web user Flask-Login loaded."""
    known: Principal | None = g.get("principal")
    if known is None:
        user = g.get("_login_user")  # Flask-Login's per-request cache behind current_user
        if user is not None and user.is_authenticated:
            known = user.principal
    return known


def client_digest(address: str) -> str:
    """12 hex digits of HMAC-SHA256(SECRET_KEY, address): tells clients apart without naming them (the
    sign-in throttle keys its rows with the same digest, ``services/people/throttle.py``)."""
    key = str(current_app.config["SECRET_KEY"]).encode()
    return hmac.new(key, f"address\0{address}".encode(), hashlib.sha256).hexdigest()[:12]


class ClientErrorBursts:
    """4xx answers per client in fixed one-minute windows, in this process: ``note`` returns the count when
    it reaches ``threshold`` (once per window), else None. Cheap: a dict update on 4xx answers only, and the
    dict is cleared of ended windows when it holds ``max_clients``."""

    def __init__(self, threshold: int, window: float = BURST_WINDOW_SECONDS, max_clients: int = 10_000):
        self.threshold, self.window, self.max_clients = threshold, window, max_clients
        self._counts: dict[str, tuple[float, int]] = {}
        self._lock = threading.Lock()

    def note(self, client: str, now: float) -> int | None:
        with self._lock:
            start, count = self._counts.get(client, (now, 0))
            if now - start >= self.window:
                start, count = now, 0
            count += 1
            if len(self._counts) >= self.max_clients and client not in self._counts:
                self._counts = {c: v for c, v in self._counts.items() if now - v[0] < self.window}
            self._counts[client] = (start, count)
        return count if count == self.threshold else None


def _finish(response: Response) -> Response:
    request_id = current_request_id()
    response.headers[REQUEST_ID_HEADER] = request_id
    status = response.status_code
    started = g.get(STARTED)
    fields: dict[str, Any] = {
        "method": request.method,
        "route": route(),
        "status": status,
        "duration_ms": round((time.perf_counter() - started) * 1000, 2) if started is not None else None,
    }
    caller = principal()
    if caller is not None:
        fields["principal_kind"] = caller.role.value
        fields["principal_id"] = caller.id
    quiet = status < 400 and request.endpoint in QUIET_ENDPOINTS
    log.log(logging.DEBUG if quiet else logging.INFO, "request", **fields)
    if 400 <= status < 500:
        client = caller.actor if caller is not None else f"address:{client_digest(request.remote_addr or '')}"
        bursts: ClientErrorBursts = current_app.extensions[BURSTS]
        count = bursts.note(client, time.monotonic())
        if count is not None:
            log.warning(
                "client_errors.burst",
                client=client,
                count=count,
                window_seconds=int(bursts.window),
                last_status=status,
                last_route=fields["route"],
            )
    return response


def _end(_error: BaseException | None) -> None:
    structlog.contextvars.clear_contextvars()


def log_unhandled(exc_info: Any) -> None:
    """An exception no handler took (the client gets a 500 without details): one ERROR line with the
    traceback, the request id, method and route."""
    log.error("request.failed", method=request.method, route=route(), exc_info=exc_info)


def init_app(app: Flask, settings: Observability) -> None:
    app.extensions[BURSTS] = ClientErrorBursts(settings.client_error_burst)
    # Registered before every other extension's: the id exists before the limiter (or anything) can
    # refuse the request, and the request line, last of the after_request hooks, sees the final status.
    app.before_request_funcs.setdefault(None, []).insert(0, _begin)
    app.after_request_funcs.setdefault(None, []).insert(0, _finish)
    app.teardown_request(_end)
    app.jinja_env.globals["request_id"] = current_request_id  # the error page shows it
