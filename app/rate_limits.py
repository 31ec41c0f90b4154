"""Where the API's rate-limit counters live, so that a limit holds across every worker process.

Flask-Limiter (``app.extensions.limiter``) counts in the storage ``RATELIMIT_STORAGE_URI`` names:

- ``sqlite:///<file>`` (the default: ``ratelimits.sqlite3`` in the instance folder): ``SqliteCounters``
  below, a fixed-window counter table in a SQLite file of its own, shared by every process of one machine
  (gunicorn's workers, threads included). Its own file, not the tutor's database: a counter is a write on
  every API request, and on SQLite the tutor's database has one write lock that answers queue for;
- ``redis://host:port[/db]`` or ``rediss://`` (TLS): Redis, shared by every machine (``limits[redis]``, the
  ``redis`` extra);
- ``memory://``: one process only (tests, ``flask run``); N workers would allow N times the limit.

Sign-in throttling does not use this: it is kept in the database (``services/people/throttle.py``).

Only the fixed-window strategy (Flask-Limiter's default) is supported: ``SqliteCounters`` implements it
alone, and one strategy keeps a limit meaning the same on every storage.

A storage that fails (Redis down, the file unwritable) never turns a request into a 500: Flask-Limiter's
in-memory fallback takes over, so each worker counts on its own (the limit holds per process: at worst N
workers allow N times it) and tries the storage again after 1, 2, 4, ... 32 s. The switch is logged once per
process (``rate_limit.storage_unavailable``, a WARNING with the error), and so is the way back
(``rate_limit.storage_recovered``). Fail-open to per-process counting, not fail-closed: a limit guards
against floods, and refusing every student's answers while Redis restarts would be the outage itself.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import sys
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import structlog
from flask import Flask, Response, current_app
from flask_limiter import Limiter
from limits.storage import Storage

SQLITE_PREFIX = "sqlite:///"
STORAGE_SCHEMES = ("sqlite", "redis", "rediss", "memory")
STRATEGY = "fixed-window"
DEFAULT_FILE = "ratelimits.sqlite3"
# Redis: a storage that does not answer costs a request this long (then the fallback takes over).
REDIS_TIMEOUTS = {"socket_connect_timeout": 0.5, "socket_timeout": 0.5}
PURGE_EVERY = 300.0  # seconds between deletions of expired counters, per process
log = structlog.stdlib.get_logger(__name__)


def sqlite_path(uri: str) -> str:
    """The file of a ``sqlite:///`` URI: ``sqlite:///relative/path``, ``sqlite:////absolute/path``."""
    return uri[len(SQLITE_PREFIX) :]


class SqliteCounters(Storage):
    """Fixed-window counters in a SQLite file, shared by the processes of one machine.

    One row per limit key: its count and when its window ends (``time.time()`` seconds). An increment is
    one UPSERT in its own transaction (a new window when the old one has ended); SQLite's file locks
    serialise the increments of every process, so N workers never count more than the limit. WAL with
    ``synchronous=NORMAL``: readers do not wait for the writer and a commit does not wait for the disk (a
    crash of the machine may lose the last increments, never the file). One connection per thread and per
    process (a forked worker opens its own). Expired rows are deleted every few minutes.
    """

    STORAGE_SCHEME = ["sqlite"]

    def __init__(
        self, uri: str, wrap_exceptions: bool = False, busy_timeout: float = 1.0, **options: Any
    ) -> None:
        super().__init__(uri, wrap_exceptions=wrap_exceptions, **options)
        self.path = sqlite_path(uri)
        self.busy_timeout = float(busy_timeout)
        self._local = threading.local()
        self._last_purge = 0.0

    @property
    def base_exceptions(self) -> type[Exception] | tuple[type[Exception], ...]:
        return sqlite3.Error

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._local.pid != os.getpid():
            # A connection inherited through fork is left alone (SQLite forbids using it in the child).
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute(
                "CREATE TABLE IF NOT EXISTS rate_limit_counters ("
                " key TEXT PRIMARY KEY, count INTEGER NOT NULL, expires_at REAL NOT NULL) WITHOUT ROWID"
            )
            self._local.conn, self._local.pid = conn, os.getpid()
        return conn

    def incr(self, key: str, expiry: int, amount: int = 1) -> int:
        now = time.time()
        conn = self._connection()
        # fetchall: the statement (and with it the implicit transaction and its lock) ends here.
        rows = conn.execute(
            "INSERT INTO rate_limit_counters (key, count, expires_at) VALUES (:key, :amount, :ends)"
            " ON CONFLICT (key) DO UPDATE SET"
            "  count = CASE WHEN expires_at <= :now THEN :amount ELSE count + :amount END,"
            "  expires_at = CASE WHEN expires_at <= :now THEN :ends ELSE expires_at END"
            " RETURNING count",
            {"key": key, "amount": amount, "ends": now + expiry, "now": now},
        ).fetchall()
        if now - self._last_purge > PURGE_EVERY:
            self._last_purge = now
            conn.execute("DELETE FROM rate_limit_counters WHERE expires_at <= ?", (now,))
        return int(rows[0][0])

    def _live(self, key: str) -> tuple[int, float] | None:
        now = time.time()
        row = (
            self._connection()
            .execute(
                "SELECT count, expires_at FROM rate_limit_counters WHERE key = ? AND expires_at > ?",
                (key, now),
            )
            .fetchone()
        )
        return None if row is None else (int(row[0]), float(row[1]))

    def get(self, key: str) -> int:
        live = self._live(key)
        return 0 if live is None else live[0]

    def get_expiry(self, key: str) -> float:
        live = self._live(key)
        return time.time() if live is None else live[1]

    def check(self) -> bool:
        try:
            self._connection().execute("SELECT 1").fetchall()
        except sqlite3.Error:
            return False
        return True

    def reset(self) -> int | None:
        return int(self._connection().execute("DELETE FROM rate_limit_counters").rowcount)

    def clear(self, key: str) -> None:
        self._connection().execute("DELETE FROM rate_limit_counters WHERE key = ?", (key,))


# --- settings ----------------------------------------------------------------------------------------


def default_storage_uri(instance_path: str) -> str:
    return SQLITE_PREFIX + os.path.join(instance_path, DEFAULT_FILE)


def storage_problem(uri: str) -> str | None:
    """Why ``uri`` cannot hold the counters (for RATELIMIT_STORAGE_URI's message), or None."""
    scheme = uri.partition("://")[0]
    if scheme not in STORAGE_SCHEMES or "://" not in uri:
        return (
            "must be sqlite:///<file> (one machine; the default is the instance folder's "
            f"{DEFAULT_FILE}), redis://host:port[/db] or rediss://... (every machine), or memory:// (one "
            f"process only), not {uri!r}"
        )
    if scheme == "sqlite":
        path = sqlite_path(uri) if uri.startswith(SQLITE_PREFIX) else ""
        if not path:
            return f"must name a file: sqlite:///<relative path> or sqlite:////<absolute path>, not {uri!r}"
        folder = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(folder):
            return f"names a file in {folder}, which is not a folder that exists"
    if scheme in ("redis", "rediss") and not urlsplit(uri).hostname:
        return f"must name a host, e.g. redis://127.0.0.1:6379, not {uri!r}"
    return None


def described(uri: str) -> str:
    """The storage for a log line: its scheme and where it is, never a password."""
    parts = urlsplit(uri)
    if parts.scheme == "sqlite":
        return uri
    where = parts.hostname or ""
    if parts.port:
        where += f":{parts.port}"
    return f"{parts.scheme}://{where}{parts.path}"


# --- the fallback, logged -------------------------------------------------------------------------

UNREACHABLE = "Rate limit storage unreachable"
_outage: dict[str, float] = {}  # this process: the storage (described) -> when it stopped answering


class _StorageEvents(logging.Filter):
    """Flask-Limiter's own line when the storage fails is replaced by the tutor's event, with the error
    (the line is logged inside the ``except`` block that caught it)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(UNREACHABLE):
            return True
        error = sys.exc_info()[1]
        storage = described(str(current_app.config["RATELIMIT_STORAGE_URI"]))
        _outage.setdefault(storage, time.time())
        log.warning(
            "rate_limit.storage_unavailable",
            storage=storage,
            error=f"{type(error).__name__}: {error}" if error else None,
            counting="per process until the storage answers again",
        )
        return False


_STORAGE_EVENTS = _StorageEvents()


def init_app(app: Flask, limiter: Limiter) -> None:
    """Before ``limiter.init_app``: the storage's connection options, and the fallback's events."""
    uri = str(app.config["RATELIMIT_STORAGE_URI"])
    if uri.partition("://")[0] in ("redis", "rediss"):
        given = app.config.get("RATELIMIT_STORAGE_OPTIONS") or {}
        app.config["RATELIMIT_STORAGE_OPTIONS"] = {**REDIS_TIMEOUTS, **given}
    limiter_log = logging.getLogger("flask-limiter")
    if _STORAGE_EVENTS not in limiter_log.filters:
        limiter_log.addFilter(_STORAGE_EVENTS)

    @app.after_request
    def note_recovery(response: Response) -> Response:
        if _outage:
            storage = described(uri)
            began = _outage.get(storage)
            # Public attributes only: the strategy in use counts in the configured storage again.
            if began is not None and limiter.limiter.storage is limiter.storage:
                del _outage[storage]
                log.info(
                    "rate_limit.storage_recovered",
                    storage=storage,
                    after_seconds=round(time.time() - began, 1),
                )
        return response
