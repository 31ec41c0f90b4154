"""Who is calling: web sessions (Flask-Login) and the principal of the current request.

A session cookie names ``staff:<id>:<version>`` or ``student:<id>:<version>``; the
version changes with the password or personal code and at sign-out, which ends every
session signed in before (copies of the cookie included). A session also ends
``PERMANENT_SESSION_LIFETIME`` after sign-in, however often it is used: each request
renews the cookie, so the lifetime is counted from the sign-in kept inside it.
"""

from __future__ import annotations

import hashlib
import time
from datetime import timedelta

from flask import Flask, current_app, g
from flask import session as cookie_session
from flask_login import UserMixin, current_user, login_user, logout_user
from limits import parse

from app.domain.access import Principal
from app.extensions import db, login_manager
from app.services.people import accounts
from app.services.people.throttle import HashSlots, LoginPolicy
from app.settings import current_settings

SIGNED_IN_AT = "signed_in_at"  # in the (signed) cookie: when the session began, in Unix seconds
HASH_SLOTS = "tutor.hash_slots"


class SessionUser(UserMixin):
    def __init__(self, principal: Principal, session_id: str) -> None:
        self.principal = principal
        self.session_id = session_id

    def get_id(self) -> str:
        return self.session_id


def signed_in() -> Principal | None:
    """The principal of the signed-in web user, or None (loads the session's user: a database read)."""
    if current_user.is_authenticated:
        principal: Principal = current_user.principal
        return principal
    return None


def loaded_principal() -> Principal | None:
    """The signed-in principal if this request has already loaded it, else None. Never reads the
    database: for error pages, whose error may be the database."""
    user = g.get("_login_user")  # Flask-Login's per-request cache behind current_user
    if user is not None and user.is_authenticated:
        principal: Principal = user.principal
        return principal
    return None


def start_session(signed: accounts.SignedIn) -> None:
    logout_user()
    login_user(SessionUser(signed.principal, signed.session_id))
    cookie_session.permanent = True
    cookie_session[SIGNED_IN_AT] = int(time.time())


def end_session() -> None:
    """Sign-out, server-side: this user's sessions end everywhere, then the cookie is cleared."""
    principal = signed_in()
    if principal is not None:
        accounts.end_sessions(db.session(), principal)
    logout_user()
    cookie_session.pop(SIGNED_IN_AT, None)


def login_policy() -> LoginPolicy:
    settings = current_settings()
    per_address = parse(settings.rate_limits.login)
    return LoginPolicy(
        key=str(current_app.config["SECRET_KEY"]).encode(),
        per_address=per_address.amount,
        window=timedelta(seconds=per_address.get_expiry()),
        max_failures=settings.sign_in.max_failures,
        backoff=settings.sign_in.backoff,
        backoff_max=settings.sign_in.lockout,
    )


def hash_slots() -> HashSlots:
    slots: HashSlots = current_app.extensions[HASH_SLOTS]
    return slots


def _load_user(session_id: str) -> SessionUser | None:
    started = cookie_session.get(SIGNED_IN_AT)
    lifetime = current_app.permanent_session_lifetime.total_seconds()
    if not isinstance(started, int) or not 0 <= time.time() - started <= lifetime:
        return None
    principal = accounts.load_session_principal(db.session(), session_id)
    return SessionUser(principal, session_id) if principal is not None else None


def init_app(app: Flask) -> None:
    # Templates get ``signed_in`` from app.web; Flask-Login's own ``current_user`` would load the user for
    # every page rendered, error pages included (and the database may be the error).
    login_manager.init_app(app, add_context_processor=False)
    login_manager.user_loader(_load_user)
    # One set of slots per database: the workers of one deployment share them, test databases do not.
    deployment = hashlib.sha256(str(app.config["SQLALCHEMY_DATABASE_URI"]).encode()).hexdigest()[:16]
    sign_in = app.extensions["settings"].sign_in
    app.extensions[HASH_SLOTS] = HashSlots(sign_in.hash_lock_dir, deployment, sign_in.hash_concurrency)
