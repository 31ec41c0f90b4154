"""Sign-in throttling that holds across every worker process, and a cap on password hashing per host.

In the database (``sign_in_throttles``), so the embedded SQLite setup needs no extra server and every
gunicorn worker (on any machine) sees the same counts; checked before any password is hashed:

- per client address: at most ``per_address`` failed sign-ins per ``window`` (``RATELIMIT_LOGIN``),
  whatever the account. Successful sign-ins do not count, so a class behind one school address can
  sign in at the start of a lesson;
- per address *and* account: after ``max_failures`` failures in a row, each further attempt must wait
  ``backoff``, doubling with every failure, up to ``backoff_max``. An attacker's flood of wrong
  passwords pauses the attacker's address only: the owner signs in from their own.

An attempt is counted as a failure when it is let through, and the count is taken back when it
succeeds, so parallel posts cannot all slip past the check. An address that is paused costs a read
(on SQLite one that does not take the write lock), not a write. Unknown accounts are throttled exactly
like known ones: the answers say nothing about which accounts exist.

The keys are HMAC-SHA256 digests of the address and of the account name, keyed with the app's
SECRET_KEY: the table holds no address, email or code (docs/DATA.md). Rows untouched for a day are
deleted.

Hashing a password takes about half a second of CPU, and gunicorn's sync workers serve one request
each: ``HashSlots`` lets at most N sign-ins hash at once on this host, across processes and threads,
and refuses the others at once (429) instead of letting them queue, so answers keep their workers.
"""

from __future__ import annotations

import fcntl
import hashlib
import hmac
import math
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import structlog
from sqlalchemy import delete, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from app.domain.errors import DomainError
from app.extensions import READ_SNAPSHOT
from app.models import SignInThrottle, utcnow
from app.observability.metrics import SIGN_IN_LOCKOUTS

ANY_ACCOUNT = ""  # the account_key of an address's count over every account
FORGET_AFTER = timedelta(days=1)
PURGE_EVERY = timedelta(minutes=10)
MAX_DOUBLINGS = 20  # far past any backoff_max; keeps 2**n small
HASHING_BUSY_RETRY_SECONDS = 1
log = structlog.stdlib.get_logger(__name__)


@dataclass(frozen=True)
class LoginPolicy:
    key: bytes  # of the HMAC digests: the app's SECRET_KEY
    per_address: int = 10
    window: timedelta = timedelta(minutes=1)
    max_failures: int = 5
    backoff: timedelta = timedelta(seconds=30)
    backoff_max: timedelta = timedelta(minutes=15)


class SignInPaused(DomainError):
    """Sign-in refused for now, before any password was checked; ``retry_after`` in whole seconds (>= 1)."""

    def __init__(self, message: str, retry_after: float) -> None:
        self.retry_after = max(1, math.ceil(retry_after))
        super().__init__(message)


def _paused(seconds: float, scope: str, policy: LoginPolicy, account: str | None) -> SignInPaused:
    """The refusal of an attempt while the address (``scope`` "address") or the address on this account
    ("account") must wait; logged and counted (the log names the account by ``log_key`` only)."""
    wait = max(1, math.ceil(seconds))
    SIGN_IN_LOCKOUTS.labels(scope).inc()
    log.warning(
        "sign_in.locked_out",
        kind=account.partition(":")[0] if account else None,
        scope=scope,
        retry_after=wait,
        account=log_key(policy, account) if account else None,
    )
    return SignInPaused(f"Too many failed sign-ins from your network: try again in {wait} seconds.", wait)


def staff_account(email: str) -> str:
    return "staff:" + email.strip().lower()


def student_account(login_prefix: str) -> str:
    return "student:" + login_prefix


def _digest(policy: LoginPolicy, kind: str, value: str) -> str:
    return hmac.new(policy.key, f"{kind}\0{value}".encode(), hashlib.sha256).hexdigest()


def log_key(policy: LoginPolicy, account: str) -> str:
    """How log lines name an account: 12 hex digits of its keyed digest (the start of its rows' key here),
    never the email or code; without SECRET_KEY it cannot be turned back into either."""
    return _digest(policy, "account", account)[:12]


def _keys(policy: LoginPolicy, address: str, account: str | None) -> tuple[str, str | None]:
    address_key = _digest(policy, "address", address)
    return address_key, None if account is None else _digest(policy, "account", account)


def _wait(row: SignInThrottle | None, now: datetime, policy: LoginPolicy, *, per_address: bool) -> float:
    """Seconds the address (or address+account) must wait before its next attempt; 0 = go ahead."""
    if row is None:
        return 0.0
    if per_address:
        if now >= row.window_start + policy.window or row.failures < policy.per_address:
            return 0.0
        return (row.window_start + policy.window - now).total_seconds()
    if row.next_allowed_at is None or row.updated_at < now - FORGET_AFTER:
        return 0.0
    return max(0.0, (row.next_allowed_at - now).total_seconds())


def admit(session: Session, policy: LoginPolicy, address: str, account: str | None) -> None:
    """Let one sign-in attempt from ``address`` on ``account`` through, counted as a failure until
    ``succeeded`` takes it back; ``account`` None: a refused form (no CSRF token, a field missing), a
    failure of the address. Raises SignInPaused when the address or the address+account must wait.

    Commits its own short transaction: call it before hashing, with nothing else pending."""
    address_key, account_key = _keys(policy, address, account)
    now = utcnow()
    wanted = [ANY_ACCOUNT] if account_key is None else [ANY_ACCOUNT, account_key]

    # First a plain read: a paused address flooding the form costs no write (and on SQLite no write lock).
    begin_read(session)
    rows = {
        r.account_key: r
        for r in session.scalars(
            select(SignInThrottle).where(
                SignInThrottle.address_key == address_key, SignInThrottle.account_key.in_(wanted)
            )
        )
    }
    address_wait = _wait(rows.get(ANY_ACCOUNT), now, policy, per_address=True)
    account_wait = 0.0
    if account_key is not None:
        account_wait = _wait(rows.get(account_key), now, policy, per_address=False)
    session.rollback()
    if address_wait > 0 or account_wait > 0:
        scope = "address" if address_wait >= account_wait else "account"
        raise _paused(max(address_wait, account_wait), scope, policy, account)

    try:
        by_address = _locked_row(session, address_key, ANY_ACCOUNT, now)
        wait = _wait(by_address, now, policy, per_address=True)  # again, under the lock
        if wait > 0:
            raise _paused(wait, "address", policy, account)
        if now >= by_address.window_start + policy.window:
            by_address.window_start, by_address.failures = now, 0
        by_address.failures += 1
        by_address.updated_at = now
        if account_key is not None:
            by_account = _locked_row(session, address_key, account_key, now)
            wait = _wait(by_account, now, policy, per_address=False)
            if wait > 0:
                session.commit()  # paused since the read above: the attempt still counts for the address
                raise _paused(wait, "account", policy, account)
            if by_account.updated_at < now - FORGET_AFTER:
                by_account.failures = 0
            by_account.failures += 1
            if by_account.failures >= policy.max_failures:
                doublings = min(by_account.failures - policy.max_failures, MAX_DOUBLINGS)
                by_account.next_allowed_at = now + min(policy.backoff * 2**doublings, policy.backoff_max)
            by_account.updated_at = now
        session.commit()
    except BaseException:
        session.rollback()
        raise
    _purge_now_and_then(session, now)


def begin_read(session: Session) -> None:
    """End what the request read so far (the session's user, say: nothing may be pending) and begin a
    transaction that only reads: on SQLite, one that does not take the write lock, so a sign-in's
    reads do not hold back answers (every other transaction there begins with it)."""
    session.commit()
    if session.get_bind().dialect.name == "sqlite":
        session.connection(execution_options={READ_SNAPSHOT: True})


def succeeded(session: Session, policy: LoginPolicy, address: str, account: str) -> None:
    """The attempt ``admit`` let through was right: its failures from this address are forgotten and it
    is taken back from the address's count. In the caller's transaction (the caller commits)."""
    address_key, account_key = _keys(policy, address, account)
    session.execute(
        delete(SignInThrottle).where(
            SignInThrottle.address_key == address_key, SignInThrottle.account_key == account_key
        )
    )
    session.execute(
        update(SignInThrottle)
        .where(
            SignInThrottle.address_key == address_key,
            SignInThrottle.account_key == ANY_ACCOUNT,
            SignInThrottle.failures > 0,
        )
        .values(failures=SignInThrottle.failures - 1)
    )


def _locked_row(session: Session, address_key: str, account_key: str, now: datetime) -> SignInThrottle:
    """The row, created if new, locked until the transaction ends (SQLite: BEGIN IMMEDIATE holds it)."""
    insert = postgresql_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert
    session.execute(
        insert(SignInThrottle)
        .values(
            address_key=address_key,
            account_key=account_key,
            failures=0,
            window_start=now,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["address_key", "account_key"])
    )
    row: SignInThrottle = session.scalars(
        select(SignInThrottle)
        .where(SignInThrottle.address_key == address_key, SignInThrottle.account_key == account_key)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    return row


_last_purge: datetime | None = None  # per process: the purge is housekeeping, not a guarantee


def _purge_now_and_then(session: Session, now: datetime) -> None:
    global _last_purge
    if _last_purge is not None and now - _last_purge < PURGE_EVERY:
        return
    _last_purge = now
    purge_stale(session, now)


def purge_stale(session: Session, now: datetime | None = None) -> int:
    """Delete rows untouched for FORGET_AFTER; commits. Rows another sign-in holds are skipped (never
    waited for), so the purge cannot deadlock with it. Returns the rows deleted."""
    cutoff = (now or utcnow()) - FORGET_AFTER
    stale = (
        select(SignInThrottle.address_key, SignInThrottle.account_key)
        .where(SignInThrottle.updated_at < cutoff)
        .with_for_update(skip_locked=True)
    )
    deleted = session.execute(
        delete(SignInThrottle).where(
            tuple_(SignInThrottle.address_key, SignInThrottle.account_key).in_(stale)
        )
    )
    session.commit()
    return int(getattr(deleted, "rowcount", 0) or 0)


class HashSlots:
    """At most ``count`` password hashes at once on this host, across worker processes and threads.

    Each slot is a lock file (``flock``: separate opens conflict even within one process, and the
    kernel releases the lock of a process that dies). ``hold`` takes a free slot without waiting, or
    raises SignInPaused at once: a sign-in flood gets quick 429s instead of occupying every worker.
    ``name`` separates deployments (and test databases) sharing a directory.
    """

    def __init__(self, directory: str | os.PathLike[str], name: str, count: int) -> None:
        if count < 1:
            raise ValueError("LOGIN_HASH_CONCURRENCY must be at least 1")
        self.paths = [Path(directory) / f"sign-in-hashing-{name}-{i}.lock" for i in range(count)]

    @contextmanager
    def hold(self) -> Iterator[None]:
        for path in self.paths:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            try:
                yield
                return
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)
        log.warning("sign_in.busy", slots=len(self.paths), retry_after=HASHING_BUSY_RETRY_SECONDS)
        raise SignInPaused("Sign-in is busy right now: try again in a moment.", HASHING_BUSY_RETRY_SECONDS)
