"""One error shape for the whole API: {"code", "status", "message", "errors"?}.

flask-smorest already answers HTTP errors (including 404 for unknown routes, 405,
and 422 for schema failures) in this shape; here domain errors are mapped onto
the same shape, so a view never builds an error body itself.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from flask import Flask, jsonify
from flask.typing import ResponseReturnValue

from app.domain.errors import Conflict, DomainError, InvalidParameters, NotFound
from app.domain.grading import InvalidAnswer


def error_body(status: int, message: str, errors: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"code": status, "status": HTTPStatus(status).phrase, "message": message}
    if errors:
        body["errors"] = errors
    return body


def _domain_error(error: DomainError) -> ResponseReturnValue:
    if isinstance(error, NotFound):
        if error.field:
            return jsonify(error_body(422, str(error), {"json": {error.field: [str(error)]}})), 422
        return jsonify(error_body(404, str(error))), 404
    if isinstance(error, InvalidAnswer):
        return jsonify(error_body(422, str(error), {"json": {"answer": [str(error)]}})), 422
    if isinstance(error, Conflict):
        return jsonify(error_body(409, str(error))), 409
    if isinstance(error, InvalidParameters):
        return jsonify(error_body(422, str(error))), 422
    return jsonify(error_body(400, str(error))), 400


def init_app(app: Flask) -> None:
    app.register_error_handler(DomainError, _domain_error)
