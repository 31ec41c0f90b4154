"""One error shape for the whole API: {"code", "status", "message", "errors"?}; HTML pages elsewhere.

flask-smorest already answers HTTP errors (including 404 for unknown routes, 405,
and 422 for schema failures) in this shape (see ``TutorApi``); here domain errors
are mapped onto the same shape, so a view never builds an error body itself.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import Flask, current_app, jsonify, render_template
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import OperationalError

from app.domain.errors import Conflict, DomainError, Forbidden, InvalidInput, InvalidParameters, NotFound
from app.domain.grading import InvalidAnswer
from app.extensions import is_api_request

RETRY_AFTER_SECONDS = 2


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
    page = render_template("error.html", code=status, title=HTTPStatus(status).phrase, message=str(error))
    return page, status


def _database_unavailable(error: OperationalError) -> ResponseReturnValue:
    """The database is down, or busy past its lock timeout (SQLite's busy timeout, a long fit holding the
    write lock): nothing was written (the transaction rolled back), so the client may simply retry."""
    reason = str(error.orig or error).splitlines()[0]
    current_app.logger.warning("database unavailable: %s", reason)
    message = "The database is busy or unavailable; nothing was recorded. Retry shortly."
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
    if is_api_request():
        return jsonify(error_body(503, message)), 503, headers
    page = render_template("error.html", code=503, title=HTTPStatus(503).phrase, message=message)
    return page, 503, headers


def init_app(app: Flask) -> None:
    app.register_error_handler(DomainError, _domain_error)
    app.register_error_handler(OperationalError, _database_unavailable)
