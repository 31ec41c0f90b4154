"""Authentication for API blueprints: an app's Bearer key, or a signed-in web session.

Session-authenticated writes must carry the CSRF token (X-CSRFToken header, from
the page's ``csrf-token`` meta tag); Bearer requests cannot be forged cross-site.
"""

from __future__ import annotations

from flask import current_app, g, request
from flask_smorest import abort

from app.domain.access import Principal
from app.extensions import csrf, db, limiter
from app.inputs import StrictBlueprint
from app.services.people.apps import authenticate
from app.sessions import signed_in

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def current_principal() -> Principal:
    principal: Principal = g.principal
    return principal


def authenticate_request() -> None:
    header = request.headers.get("Authorization")
    if header is not None:
        scheme, _, key = header.partition(" ")
        if scheme.lower() != "bearer" or not key.strip():
            abort(
                401,
                message="Malformed Authorization header: send 'Authorization: Bearer <api key>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = authenticate(db.session(), key.strip())
        if principal is None:
            abort(401, message="Invalid or revoked API key.", headers={"WWW-Authenticate": "Bearer"})
    else:
        principal = signed_in()
        if principal is None:
            abort(
                401,
                message="Missing credentials: send 'Authorization: Bearer <api key>', or sign in.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if request.method not in SAFE_METHODS and current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()
    g.principal = principal


def require_json_body() -> None:
    # Without this, a form-encoded body would be read as "no body" and give a
    # confusing "missing field" error.
    if request.method in ("POST", "PUT", "PATCH") and request.content_length and not request.is_json:
        abort(415, message="Send the request body as JSON (Content-Type: application/json).")


def _rate_limit() -> str:
    return str(current_app.config["RATELIMIT_API"])


def _rate_key() -> str:
    """One budget per API key (its public prefix), per signed-in user, else per address."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    parts = key.strip().split("_")
    if scheme.lower() == "bearer" and len(parts) >= 3:
        return f"key:{parts[1]}"
    principal = signed_in()
    if principal is not None:
        return principal.actor
    return f"addr:{request.remote_addr}"


def api_blueprint(name: str, import_name: str, description: str) -> StrictBlueprint:
    blp = StrictBlueprint(name, import_name, description=description)
    blp.before_request(authenticate_request)
    blp.before_request(require_json_body)
    csrf.exempt(blp)  # checked in authenticate_request, for session callers only
    limiter.limit(_rate_limit, key_func=_rate_key)(blp)
    return blp
