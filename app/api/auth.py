"""Bearer-key authentication for API blueprints."""

from __future__ import annotations

from flask import g, request
from flask_smorest import Blueprint, abort

from app.extensions import db
from app.services.apps import authenticate


def require_api_key() -> None:
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if scheme.lower() != "bearer" or not key.strip():
        abort(401, message="Missing API key: send 'Authorization: Bearer <api key>'.",
              headers={"WWW-Authenticate": "Bearer"})
    app_id = authenticate(db.session(), key.strip())
    if app_id is None:
        abort(401, message="Invalid or revoked API key.", headers={"WWW-Authenticate": "Bearer"})
    g.app_id = app_id


def require_json_body() -> None:
    # Without this, a form-encoded body would be read as "no body" and give a
    # confusing "missing field" error.
    if request.method in ("POST", "PUT", "PATCH") and request.content_length and not request.is_json:
        abort(415, message="Send the request body as JSON (Content-Type: application/json).")


def api_blueprint(name: str, import_name: str, description: str) -> Blueprint:
    blp = Blueprint(name, import_name, description=description)
    blp.before_request(require_api_key)
    blp.before_request(require_json_body)
    return blp
