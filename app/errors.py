"""One error shape for the whole API: {"code", "status", "message", "errors"?}; one HTML page elsewhere.

flask-smorest already answers HTTP errors (including 404 for unknown routes, 405,
and 422 for schema failures) in this shape (see ``TutorApi``); here domain errors
are mapped onto the same shape, so a view never builds an error body itself.
Outside /api every error path renders its page with ``render_error``.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import Flask, Response, current_app, g, jsonify, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import OperationalError

from app.domain.errors import Conflict, DomainError, Forbidden, InvalidInput, InvalidParameters, NotFound
from app.domain.grading import InvalidAnswer

RETRY_AFTER_SECONDS = 2
# Set while an error page renders: the page's template context must then not read the database
# (app.web's context processor shows only a principal the request had already loaded).
RENDERING_ERROR = "tutor_rendering_error"


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
    return body


def _status_of(error: DomainError) -> tuple[int, Any]:
    if isinstance(error, NotFound):
        if error.field:
            return 422, {"json": {error.field: [str(error)]}}
        return 404, None
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
    current_app.logger.warning("database unavailable: %s", reason)
    message = "The database is busy or unavailable; nothing was recorded. Retry shortly."
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if is_api_request():
        return jsonify(error_body(503, message)), 503, headers
    return render_error(503, message, headers=headers)


def keep_retry_after(response: Response) -> Response:
    """Flask-Limiter stamps every response with Retry-After = the end of its window (up to a minute away);
    a 503 keeps ours. Registered before the limiter, so it runs after it."""
    if response.status_code == 503:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


def init_app(app: Flask) -> None:
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(OperationalError, _database_unavailable)
