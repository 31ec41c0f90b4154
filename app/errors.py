"""One error shape for the whole API: {"code", "status", "message", "errors"?}; one HTML page elsewhere.

flask-smorest already answers HTTP errors (including 404 for unknown routes, 405,
and 422 for schema failures) in this shape (see ``TutorApi``); here domain errors
are mapped onto the same shape, so a view never builds an error body itself.
Outside /api every error path renders its page with ``render_error``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import structlog
from flask import Flask, Response, g, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import OperationalError

from app.domain.errors import Conflict, DomainError, Forbidden, InvalidInput, InvalidParameters, NotFound
from app.domain.grading import InvalidAnswer
from app.observability import current_request_id

RETRY_AFTER_SECONDS = 2
# Set while an error page renders: the page's template context must then not read the database
# (app.web's context processor shows only a principal the request had already loaded).
RENDERING_ERROR = "tutor_rendering_error"
log = structlog.stdlib.get_logger(__name__)


def is_api_request() -> bool:
    return request.path == "/api" or request.path.startswith("/api/")


def render_error(
    status: int, message: str, *, title: str | None = None, headers: dict[str, str] | None = None
) -> ResponseReturnValue:
    """The one HTML error page. It never touches the database, so it renders when the database is the
    error (a 503 for a signed-in page): the navigation shows a signed-in user only if this request had
    already loaded them."""
    g.setdefault(RENDERING_ERROR, True)
    page = render_template(
        "error.html", code=status, title=title or HTTPStatus(status).phrase, message=message
    )
    return page, status, headers or {}


def error_body(status: int, message: str, errors: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": status, "status": HTTPStatus(status).phrase, "message": message}
    if errors:
        body["errors"] = errors
    body["request_id"] = current_request_id()
    return body


def _status_of(error: DomainError) -> tuple[int, Any]:
    if isinstance(error, NotFound):
        return 404, ({"json": {error.field: [str(error)]}} if error.field else None)
    if isinstance(error, InvalidAnswer):
        return 422, {"json": {"answer": [str(error)]}}
    if isinstance(error, Forbidden):
        return 403, None
    if isinstance(error, Conflict):
        return 409, None
    if isinstance(error, (InvalidParameters, InvalidInput)):
        return 422, None
    return 400, None


def _domain_error(error: DomainError) -> ResponseReturnValue:
    status, errors = _status_of(error)
    if is_api_request():
        return jsonify(error_body(status, str(error), errors)), status
    return render_error(status, str(error))


# PostgreSQL SQLSTATEs worth a retry: connection (08), rollback on serialization/deadlock (40), resources
# (53), lock not available (55P03), statement timeout (57014), shutting down or starting (57P01-3).
TRANSIENT_SQLSTATES = ("08", "40", "53", "55P03", "57014", "57P01", "57P02", "57P03")
TRANSIENT_SQLITE = (
    "database is locked",
    "database table is locked",
    "database is busy",
    "unable to open database file",
)


def _is_transient(error: OperationalError) -> bool:
    """Busy, locked or unreachable: the same request may succeed in a moment."""
    if error.connection_invalidated:
        return True
    sqlstate = getattr(error.orig, "sqlstate", None)
    if error.orig is not None and type(error.orig).__module__.startswith("psycopg"):
        return sqlstate is None or sqlstate.startswith(TRANSIENT_SQLSTATES)  # no state: could not connect
    return any(phrase in str(error.orig) for phrase in TRANSIENT_SQLITE)


def _database_unavailable(error: OperationalError) -> ResponseReturnValue:
    """The database is busy past its lock timeout (SQLite's busy timeout, a long replay holding the write
    lock) or unreachable: the transaction rolled back, nothing was written, so the client may simply retry.
    Anything else (a missing table, a full disk) is a bug or an outage to see in the logs: a 500."""
    if not _is_transient(error):
        raise error
    reason = str(error.orig or error).splitlines()[0]
    log.warning("database.unavailable", reason=reason)
    message = "The database is busy or unavailable; nothing was recorded. Retry shortly."
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if is_api_request():
        return jsonify(error_body(503, message)), 503, headers
    return render_error(503, message, headers=headers)


# Statuses whose Retry-After means something: wait this long, then the same request may succeed.
RETRY_STATUSES = frozenset({429, 503})


def keep_retry_after(response: Response) -> Response:
    """Flask-Limiter stamps every response with Retry-After = the end of its window (up to a minute away),
    even a 200, where it would tell a client to back off from a request that worked: only a 429 keeps
    it (the limiter's, or the sign-in throttle's) and a 503 gets ours. The X-RateLimit-* headers stay: they
    tell the budget left. Registered before the limiter, so it runs after it."""
    if response.status_code == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    elif response.status_code not in RETRY_STATUSES:
        response.headers.pop("Retry-After", None)
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(OperationalError, _database_unavailable)
