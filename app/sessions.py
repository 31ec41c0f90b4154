"""Who is calling: web sessions (Flask-Login) and the principal of the current request.

A session cookie names ``staff:<id>:<version>`` or ``student:<id>:<version>``; the
version changes with the password or personal code, which ends older sessions.
"""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, current_app
from flask_login import UserMixin, current_user

from app.domain.access import Principal
from app.extensions import db, login_manager
from app.services import accounts


class SessionUser(UserMixin):
    def __init__(self, principal: Principal, session_id: str) -> None:
        self.principal = principal
        self.session_id = session_id

    def get_id(self) -> str:
        return self.session_id


def signed_in() -> Principal | None:
    """The principal of the signed-in web user, or None."""
    if current_user.is_authenticated:
        principal: Principal = current_user.principal
        return principal
    return None


def login_policy() -> accounts.LoginPolicy:
    return accounts.LoginPolicy(
        max_failures=int(current_app.config["LOGIN_MAX_FAILURES"]),
        lockout=timedelta(minutes=float(current_app.config["LOGIN_LOCKOUT_MINUTES"])),
    )


def _load_user(session_id: str) -> SessionUser | None:
    principal = accounts.load_session_principal(db.session(), session_id)
    return SessionUser(principal, session_id) if principal is not None else None


def init_app(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.user_loader(_load_user)
