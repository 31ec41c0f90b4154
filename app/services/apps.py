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

from app.models import ApiKey, LearningApp, utcnow

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


def create_api_key(session: Session, app_name: str) -> IssuedKey:
    """Create the app if it does not exist, issue it a new key; commit. The key is shown once."""
    name = app_name.strip()
    if not name or len(name) > 100:
        raise ValueError("app name must be 1 to 100 characters")
    app = session.scalar(select(LearningApp).where(LearningApp.name == name))
    if app is None:
        app = LearningApp(name=name)
        session.add(app)
        session.flush()
    prefix = secrets.token_hex(4)
    key = f"{KEY_SCHEME}_{prefix}_{secrets.token_urlsafe(32)}"
    session.add(ApiKey(app_id=app.id, prefix=prefix, key_hash=_digest(key)))
    session.commit()
    return IssuedKey(app_id=app.id, app_name=app.name, prefix=prefix, key=key)


def authenticate(session: Session, key: str) -> int | None:
    """The id of the app owning this (unrevoked) key, or None."""
    parts = key.split("_")
    if len(parts) < 3 or parts[0] != KEY_SCHEME:
        return None
    row = session.scalar(select(ApiKey).where(ApiKey.prefix == parts[1]))
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(row.key_hash, _digest(key)):
        return None
    now = utcnow()
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
        session.commit()
    return int(row.app_id)
