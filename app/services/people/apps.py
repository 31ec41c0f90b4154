"""Learning apps and their API keys.

A key looks like ``tk_<prefix>_<secret>``. Only the SHA-256 of the whole key is
stored: the secret has 256 bits of entropy, so a slow password hash would add
latency to every request without adding safety.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, ensure_allowed
from app.domain.errors import UnknownApiKey
from app.models import ApiKey, LearningApp, School, utcnow
from app.services.people.accounts import AccountError, app_principal
from app.services.people.school_admin import record_change

KEY_SCHEME = "tk"
# Writing last_used_at on every request would turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)


@dataclass(frozen=True)
class IssuedKey:
    app_id: int
    app_name: str
    prefix: str
    key: str


def _digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(session: Session, app_name: str, school: School) -> IssuedKey:
    """Issue a new key to the app ``app_name`` of ``school`` (the app is created if new); commit.

    The key is returned once and never stored.
    """
    issued = _add_api_key(session, app_name, school.id)
    session.commit()
    return issued


def _add_api_key(session: Session, app_name: str, school_id: int) -> IssuedKey:
    name = app_name.strip()
    if not name or len(name) > 100:
        raise AccountError("an app name must be 1 to 100 characters")
    # Names are unique per school, not across schools: whether another tenant has an app of this name is
    # none of this school's business (a refusal here would tell it).
    app = session.scalar(
        select(LearningApp).where(LearningApp.school_id == school_id, LearningApp.name == name)
    )
    if app is None:
        app = LearningApp(name=name, school_id=school_id)
        session.add(app)
        session.flush()
    prefix = secrets.token_hex(4)
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    session.add(ApiKey(app_id=app.id, prefix=prefix, key_hash=_digest(key)))
    session.flush()
    return IssuedKey(app_id=app.id, app_name=app.name, prefix=prefix, key=key)


def issue_api_key(session: Session, by: Principal, app_name: str) -> IssuedKey:
    """An admin issues a key to an app of their school (recorded in the admins' change log); commits."""
    ensure_allowed(by, Action.MANAGE_API_KEYS)
    issued = _add_api_key(session, app_name, by.school_id)
    record_change(session, by, "API key issued", issued.app_name, f"prefix {issued.prefix}")
    session.commit()
    return issued


def list_api_keys(session: Session, by: Principal) -> list[tuple[ApiKey, str]]:
    """(key, app name) for the admin's school, newest first: prefixes and dates, never the keys."""
    ensure_allowed(by, Action.MANAGE_API_KEYS)
    rows = session.execute(
        select(ApiKey, LearningApp.name)
        .join(LearningApp, LearningApp.id == ApiKey.app_id)
        .where(LearningApp.school_id == by.school_id)
        .order_by(ApiKey.id.desc())
    ).all()
    return [(key, name) for key, name in rows]


def revoke_api_key(session: Session, prefix: str, *, by: Principal | None = None) -> ApiKey:
    """Revoke the key with this prefix; commit. Idempotent.

    ``by``: an admin, who reaches only their school's keys (None: the operator's CLI).
    """
    query = select(ApiKey).join(LearningApp, LearningApp.id == ApiKey.app_id).where(ApiKey.prefix == prefix)
    if by is not None:
        ensure_allowed(by, Action.MANAGE_API_KEYS)
        query = query.where(LearningApp.school_id == by.school_id)
    row: ApiKey | None = session.scalar(query)
    if row is None:
        raise UnknownApiKey(prefix)
    if row.revoked_at is None:
        row.revoked_at = utcnow()
        if by is not None:
            record_change(session, by, "API key revoked", row.app.name, f"prefix {row.prefix}")
        session.commit()
    return row


def authenticate(session: Session, key: str) -> Principal | None:
    """The app owning this (unrevoked) key, as a principal; or None."""
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != KEY_SCHEME:
        return None
    found = session.execute(
        select(ApiKey, LearningApp)
        .join(LearningApp, LearningApp.id == ApiKey.app_id)
        .where(ApiKey.prefix == parts[1])
    ).first()
    if found is None:
        return None
    row, app = found
    if row.revoked_at is not None or not hmac.compare_digest(row.key_hash, _digest(key)):
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
        session.commit()
    return app_principal(app)
