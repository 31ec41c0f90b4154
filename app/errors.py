"""One error shape for the whole API: {"code", "status", "message", "errors"?}; HTML pages elsewhere.

flask-smorest already answers HTTP errors (including 404 for unknown routes, 405,
and 422 for schema failures) in this shape (see ``TutorApi``); here domain errors
are mapped onto the same shape, so a view never builds an error body itself.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import Flask, jsonify, render_template
from flask.typing import ResponseReturnValue

from app.domain.errors import Conflict, DomainError, Forbidden, InvalidInput, InvalidParameters, NotFound
from app.domain.grading import InvalidAnswer
from app.extensions import is_api_request


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


def init_app(app: Flask) -> None:
    app.register_error_handler(DomainError, _domain_error)
