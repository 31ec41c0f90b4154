"""The job queue's transport: Huey carries a job's id from whoever queued it to a worker, nothing more.

Storage: SQLite (``JOBS_URL=sqlite:///...``, by default ``instance/jobs.sqlite3``: no server, one machine)
or Redis (``JOBS_URL=redis://host:6379/0``: any number of machines). What a job is, its state, progress and
result live in the ``jobs`` table (``app.services.operations.jobs``), which is the record: a message lost
with a killed worker, or never sent, costs only time, because the periodic reaper sends the job again, and a
message sent twice costs nothing, because a worker takes a job only by winning its lease.

Each app (``create_app``) gets its own Huey instance bound to it (``init_app``): the producer side enqueues
``run_job(job_id)``, the consumer side (``flask worker``) runs it inside the app's context. Tasks are named
the same in every process, so any process of the same code base reads any other's messages.
"""

from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import structlog
from flask import Flask, current_app
from huey import RedisHuey, SqliteHuey, crontab
from huey.api import Huey
from huey.consumer import Consumer
from huey.utils import normalize_time

from app.settings import Jobs

log = structlog.stdlib.get_logger(__name__)
EXTENSION = "tutor_jobs_queue"


def worker_name() -> str:
    """How this process names itself in a job's ``worker`` column (host and process id)."""
    return f"{socket.gethostname()}:{os.getpid()}"


def make_huey(settings: Jobs) -> Huey:
    """A Huey instance on the configured storage. No result store: the jobs table holds the results."""
    if settings.url.startswith("sqlite:///"):
        path = settings.url.removeprefix("sqlite:///")  # its folder must exist (the instance folder does)
        return SqliteHuey(settings.queue, filename=path, results=False, utc=True, timeout=30)
    parts = urlsplit(settings.url)
    if parts.scheme not in ("redis", "rediss"):  # settings refuse anything else; a safeguard
        raise ValueError(f"JOBS_URL: unsupported scheme {parts.scheme!r}")
    return RedisHuey(settings.queue, url=settings.url, results=False, utc=True)


class _SilentConsumer(Consumer):
    """A consumer that leaves the process's signal handlers alone (one run in a thread, e.g. a test's)."""

    def _set_signal_handlers(self) -> None:
        pass


class JobQueue:
    """The app's queue: send a job to the workers, take one back, build a worker."""

    def __init__(self, huey: Huey, settings: Jobs, tasks: dict[str, Any]) -> None:
        self.huey = huey
        self.settings = settings
        self._tasks = tasks

    def send(self, job_id: int, delay: timedelta | None = None) -> str:
        """Queue ``run_job(job_id)``, for a worker to take at once or ``delay`` later; the message's id (to
        revoke it). Raises when the storage is down."""
        task = self._tasks["run_job"].s(job_id)
        if delay:
            task.eta = normalize_time(delay=delay.total_seconds(), utc=True)
        self.huey.enqueue(task)
        return str(task.id)

    def revoke(self, task_id: str) -> None:
        """The message of a job cancelled while queued is dropped unread (the job's state says it anyway)."""
        if task_id:
            self.huey.revoke_by_id(task_id, revoke_once=True)

    def pending(self) -> int:
        """Messages waiting in the storage (for a worker's start-up line and the tests)."""
        return int(self.huey.pending_count())

    def flush(self) -> None:
        """Drop every message of this queue (tests; a fresh queue)."""
        self.huey.storage.flush_queue()
        self.huey.storage.flush_schedule()

    def consumer(self, workers: int, *, signals: bool = True) -> Consumer:
        """A Huey consumer with ``workers`` threads and the periodic reaper. ``signals``: install SIGINT
        (finish the running jobs, then stop) and SIGTERM (stop now; the running jobs are handed back)."""
        cls = Consumer if signals else _SilentConsumer
        return cls(self.huey, workers=workers, periodic=True, worker_type="thread", max_delay=1.0)


def current_queue() -> JobQueue:
    """The queue of the current app (``init_app``)."""
    queue: JobQueue = current_app.extensions[EXTENSION]
    return queue


def init_app(app: Flask) -> None:
    """Make the app's queue and its tasks: ``run_job``, and each minute's ``requeue_stale_jobs`` and
    ``queue_due_lms_scores``."""
    settings: Jobs = app.extensions["settings"].jobs
    huey = make_huey(settings)

    # Imported here: the jobs service imports this module (current_queue) at its top.
    from app.services.operations import jobs

    def run_job(job_id: int) -> None:
        with app.app_context():
            jobs.execute(job_id, worker=worker_name())

    def requeue_stale_jobs() -> None:
        with app.app_context():
            jobs.requeue_stale()

    def queue_due_lms_scores() -> None:
        from app.services.integration import lti_grades

        with app.app_context():
            lti_grades.queue_due_sends()

    tasks = {
        "run_job": huey.task(name="run_job")(run_job),
        # Every minute on every worker: jobs whose worker stopped (their lease lapsed) go back to the queue.
        "requeue_stale_jobs": huey.periodic_task(crontab(), name="requeue_stale_jobs")(requeue_stale_jobs),
        # Every minute: LMS scores whose send failed are sent again once their back-off has passed.
        "queue_due_lms_scores": huey.periodic_task(crontab(), name="queue_due_lms_scores")(
            queue_due_lms_scores
        ),
    }
    app.extensions[EXTENSION] = JobQueue(huey, settings, tasks)
