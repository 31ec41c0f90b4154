"""Configuration defaults. Order of precedence (last wins):
these defaults, environment variables, ``instance/config.py``, the test mapping.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path
from typing import Any

DEFAULT_SECRET_KEY = "dev"  # noqa: S105 - refused outside debug/testing, see create_app
PROJECT_ROOT = Path(__file__).resolve().parent.parent


def database_url_from_env(instance_path: str) -> str:
    url = os.environ.get("DATABASE_URL")
    if not url:
        return "sqlite:///" + os.path.join(instance_path, "tutor.sqlite3")
    # Accept the common postgres:// spellings; always use the psycopg 3 driver.
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url


def _env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def defaults(instance_path: str) -> dict[str, Any]:
    return {
        "SECRET_KEY": os.environ.get("SECRET_KEY", DEFAULT_SECRET_KEY),
        "SQLALCHEMY_DATABASE_URI": database_url_from_env(instance_path),
        "CONTENT_DIR": os.environ.get("CONTENT_DIR", str(PROJECT_ROOT / "content")),
        # P(L) at or above which a skill counts as mastered (Corbett & Anderson; OATutor).
        "MASTERY_THRESHOLD": float(os.environ.get("MASTERY_THRESHOLD", "0.95")),
        # Sessions (web sign-in). Secure cookies by default: set SESSION_COOKIE_SECURE=false only
        # for plain http on loopback (scripts/serve does, in instance/config.py).
        "SESSION_COOKIE_SECURE": _env_flag("SESSION_COOKIE_SECURE", True),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
        # CSRF tokens live as long as the session (a student may practise for hours).
        "WTF_CSRF_TIME_LIMIT": None,
        # Sign-in throttling: per account (lockout) and per client address (rate limit).
        "LOGIN_MAX_FAILURES": 5,
        "LOGIN_LOCKOUT_MINUTES": 15,
        "RATELIMIT_STORAGE_URI": os.environ.get("RATELIMIT_STORAGE_URI", "memory://"),
        "RATELIMIT_LOGIN": os.environ.get("RATELIMIT_LOGIN", "10 per minute"),
        "RATELIMIT_API": os.environ.get("RATELIMIT_API", "1200 per minute"),
        # SQLite: how long a request waits for the write lock before giving up with a 503 (Retry-After).
        "SQLITE_BUSY_TIMEOUT_MS": int(os.environ.get("SQLITE_BUSY_TIMEOUT_MS", "30000")),
        # Request bodies above this many bytes are refused with a 413 before they are read. The largest
        # legitimate body (a bias check over 500 named skills) is about 50 KB.
        "MAX_CONTENT_LENGTH": int(os.environ.get("MAX_REQUEST_BYTES", str(256 * 1024))),
        # Reverse proxies in front of the app (X-Forwarded-For is trusted from that many hops).
        "PROXY_COUNT": int(os.environ.get("PROXY_COUNT", "0")),
        # Retention (days): raw answers and recommendations, and the access log. `flask purge-expired`.
        "RETENTION_RESPONSE_DAYS": int(os.environ.get("RETENTION_RESPONSE_DAYS", "365")),
        "RETENTION_ACCESS_LOG_DAYS": int(os.environ.get("RETENTION_ACCESS_LOG_DAYS", "365")),
        # flask-smorest / OpenAPI
        "API_TITLE": "Adaptive tutor API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "JSON_SORT_KEYS": False,
    }
