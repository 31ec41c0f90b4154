"""Configuration defaults. Order of precedence (last wins):
these defaults, environment variables, ``instance/config.py``, the test mapping.
"""

from __future__ import annotations

import os
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


def defaults(instance_path: str) -> dict[str, Any]:
    return {
        "SECRET_KEY": os.environ.get("SECRET_KEY", DEFAULT_SECRET_KEY),
        "SQLALCHEMY_DATABASE_URI": database_url_from_env(instance_path),
        "CONTENT_DIR": os.environ.get("CONTENT_DIR", str(PROJECT_ROOT / "content")),
        # P(L) at or above which a skill counts as mastered (Corbett & Anderson; OATutor).
        "MASTERY_THRESHOLD": float(os.environ.get("MASTERY_THRESHOLD", "0.95")),
        # flask-smorest / OpenAPI
        "API_TITLE": "Adaptive tutor API",
        "API_VERSION": "v1",
        "OPENAPI_VERSION": "3.0.3",
        "OPENAPI_URL_PREFIX": "/api/v1",
        "OPENAPI_JSON_PATH": "openapi.json",
        "JSON_SORT_KEYS": False,
    }
