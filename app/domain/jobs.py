"""Background jobs: their states, what may follow what, and how a request names the same job twice.

The service (``app.services.operations.jobs``) keeps each job in the ``jobs`` table; these are its rules,
without a database: a job is queued, then running (leased by one worker), then succeeded, failed or
cancelled, and never leaves a final state. A running job whose worker stopped answering (its heartbeat is
older than the lease) goes back to the queue.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any


class JobState(StrEnum):
    QUEUED = "queued"  # waiting for a worker
    RUNNING = "running"  # a worker holds its lease
    SUCCEEDED = "succeeded"  # its work is committed
    FAILED = "failed"  # it stopped with an error (nothing of it committed, unless its kind says otherwise)
    CANCELLED = "cancelled"  # stopped on request before its work was committed


ACTIVE = frozenset({JobState.QUEUED, JobState.RUNNING})
FINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
STATES = tuple(state.value for state in JobState)

# An Idempotency-Key header: what clients generate (a UUID, a hash, a counter), printable ASCII.
IDEMPOTENCY_KEY = re.compile(r"[!-~]{1,200}")
IDEMPOTENCY_KEY_RULE = "An Idempotency-Key is 1 to 200 printable ASCII characters without spaces."


def is_final(state: str) -> bool:
    return state in FINAL


def params_digest(kind: str, params: dict[str, Any]) -> str:
    """SHA-256 of the kind and its parameters as canonical JSON: equal requests have equal digests whatever
    the order of their keys (a queued or running job with the same digest is the same job)."""
    text = json.dumps([kind, params], sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def is_stale(heartbeat_at: datetime | None, now: datetime, lease: timedelta) -> bool:
    """Whether a running job's worker has not been heard from for longer than the lease."""
    return heartbeat_at is None or now - heartbeat_at > lease


@dataclass(frozen=True)
class Requeue:
    """What happens to a running job whose lease lapsed: back to the queue, or failed after too many starts,
    or cancelled when that was asked for."""

    state: JobState
    error: str | None = None


def after_lapsed_lease(
    attempts: int, max_attempts: int, cancel_requested: bool, committed: bool = False
) -> Requeue:
    """The fate of a running job whose worker stopped (killed, restarted, its machine lost) after
    ``attempts`` starts (each start counts one, in [1, ...)). ``committed``: its work had committed (the
    worker stopped before recording the end): it succeeded, and is never run again."""
    if committed:
        return Requeue(JobState.SUCCEEDED)
    if cancel_requested:
        return Requeue(JobState.CANCELLED)
    if attempts >= max_attempts:
        return Requeue(
            JobState.FAILED,
            f"The worker stopped while running this job {attempts} time(s) (killed, restarted or its "
            "machine lost); it is not started again. Nothing of it was committed.",
        )
    return Requeue(JobState.QUEUED)


def progress_share(done: int, total: int | None) -> float | None:
    """Progress in [0, 1], or None when the total is not known yet."""
    if not total:
        return None
    return min(max(done / total, 0.0), 1.0)
