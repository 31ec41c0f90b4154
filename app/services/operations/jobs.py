"""Background jobs: queue long work, run it in a worker, report its progress, cancel it, survive restarts.

The ``jobs`` table is the record; Huey (``queue``) only carries a job's id to a worker. What one job goes
through:

1. ``submit`` stores it (``queued``) and sends its id. The same request again is the same job: with the same
   ``Idempotency-Key`` (for as long as the job is kept), or, without a key, with the same kind and parameters
   while that job is still queued or running (a partial unique index makes both hold under races).
2. A worker's ``execute`` takes the lease: one conditional UPDATE (``queued`` -> ``running``, a fresh random
   token in ``lease``) that only one worker can win, so a message delivered twice runs the job once. A
   heartbeat thread then writes progress and ``heartbeat_at`` every JOBS_HEARTBEAT_SECONDS and reads
   ``cancel_requested``.
3. The work runs through the kind's service function, which owns its transaction, with a principal of the
   person who asked (their role is checked again now). Before the work's transaction commits, a fence checks
   in that same transaction that the lease is still this worker's and no cancel was asked, and, for a kind
   whose work commits once (``single_commit``), records ``committed_at`` and the result's link in that very
   commit. So the work and the record of it commit together or not at all: a worker killed before the
   commit leaves nothing; one killed after it leaves a job that is finished as succeeded (with its link),
   never run again. The job reads ``succeeded`` once the worker has also stored the full result.
4. A running job not heard from for JOBS_LEASE_SECONDS (its worker was killed, or its machine lost) is
   re-queued by ``requeue_stale`` (at every worker's start and every minute on each worker), or failed after
   JOBS_MAX_ATTEMPTS starts; a worker stopping in order (SIGTERM) hands its running jobs back at once.
5. ``cancel``: a queued job is cancelled at once (its message revoked); a running one is asked to stop. It
   stops at its next progress point, or at the latest at its commit, which the fence refuses: nothing of it
   is written.

A new kind (a OneRoster import, an LTI grade send) is one ``register(JobKind(...))`` in ``job_kinds``:
what it runs, who may start it, what its result links to.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Engine, delete, func, select, update
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, Role, ensure_allowed
from app.domain.errors import Conflict, DomainError, NotFound
from app.domain.jobs import ACTIVE, FINAL, JobState, after_lapsed_lease, params_digest
from app.extensions import db
from app.models import Job, JobFile, StaffUser, utcnow
from app.services.operations.queue import current_queue, worker_name
from app.services.people.accounts import staff_principal
from app.settings import Jobs, current_settings

log = structlog.stdlib.get_logger(__name__)
JOBS = Job.__table__
MAX_PER_PAGE = 200
# Messages shown to clients: never a traceback (the log has it, under the same job id).
UNEXPECTED = "The job stopped on an unexpected error (the service's log has the details, under job_id={id})."
NOT_COMMITTED = "Nothing of it was committed."
ACTIVE_STATES = tuple(sorted(ACTIVE))


class UnknownJob(NotFound):
    kind = "job"


class IdempotencyKeyReused(Conflict):
    """An Idempotency-Key already names a job with other parameters: the request is well formed but
    contradicts what the key already stands for, so a 409 (as a reused client_response_id), not a 422."""


class JobCancelled(Exception):
    """Raised at a progress point (or by the fence) of a job asked to stop: its work is rolled back."""


class LeaseLost(Exception):
    """The job was taken back from this worker (its lease lapsed, it was re-queued): stop, write nothing."""


# --- kinds ----------------------------------------------------------------------------------------------


@dataclass
class JobContext:
    """What a kind's function gets: the session its service uses, the principal it acts as, the job's
    parameters and file, and ``progress(done, total, message)`` (which raises JobCancelled or LeaseLost
    when the job must stop)."""

    session: Session
    principal: Principal
    params: dict[str, Any]
    job_id: int
    progress: Callable[..., None]
    file: JobFile | None = None


@dataclass(frozen=True)
class JobKind:
    name: str  # stored in jobs.kind, e.g. "bias_check"
    title: str  # for people: "Bias check"
    action: Action  # who may start it (and, run as them, who it still runs for)
    run: Callable[[JobContext], dict[str, Any] | None]  # does the work (a service call): the result summary
    # The result's link, from the rows the work's commit created (e.g. {"bias_check_id": 3}): stored in the
    # same commit as the work.
    link: Callable[[list[object]], dict[str, Any]] = field(default=lambda created: {})
    # Where the result is, from the result: the API's URL and the page's (None: nothing to link to).
    api_url: str | None = None  # e.g. "/api/v1/bias-checks/{bias_check_id}"
    page_url: str | None = None  # e.g. "/bias-checks/{bias_check_id}"
    # Its work commits once (all or nothing), so success is recorded in that commit. False: the work commits
    # in chunks, each checked by the fence; running it again must resume it (documented by the kind).
    single_commit: bool = True

    def url_of(self, template: str | None, result: dict[str, Any] | None) -> str | None:
        if template is None or not result:
            return None
        try:
            return template.format(**result)
        except KeyError:
            return None


KINDS: dict[str, JobKind] = {}


def register(kind: JobKind) -> JobKind:
    """Add a kind of job (one call per kind, in ``job_kinds``)."""
    if kind.name in KINDS:
        raise ValueError(f"job kind {kind.name!r} is registered twice")
    KINDS[kind.name] = kind
    return kind


def kind_of(name: str) -> JobKind:
    from app.services.operations import job_kinds  # noqa: F401 - registers the kinds

    return KINDS[name]


def all_kinds() -> dict[str, JobKind]:
    from app.services.operations import job_kinds  # noqa: F401 - registers the kinds

    return KINDS


# --- asking for a job -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Upload:
    """A file a job works on (kept in ``job_files`` until the job ends)."""

    name: str
    content: bytes
    sha256: str


def submit(
    session: Session,
    principal: Principal,
    kind: str,
    params: dict[str, Any],
    *,
    idempotency_key: str | None = None,
    upload: Upload | None = None,
    delay: timedelta | None = None,
) -> tuple[Job, bool]:
    """Queue a job of ``kind`` (the caller must be allowed to start it); (the job, whether it is new).
    ``delay``: a worker takes it no sooner (equal requests meanwhile are this job: a debounce).

    The same ``idempotency_key`` (per school and kind) always gives the same job, and refuses other
    parameters (IdempotencyKeyReused); without one, an equal request while such a job is queued or running
    gives that job. Commits, then sends the job's id to the workers: a queue that cannot be reached then
    leaves the job queued, and the reaper sends it later."""
    job_kind = kind_of(kind)
    ensure_allowed(principal, job_kind.action)
    digest = params_digest(kind, {**params, "file_sha256": upload.sha256 if upload else None})
    existing = _same_request(session, principal.school_id, kind, digest, idempotency_key)
    if existing is not None:
        return existing, False
    job = Job(
        school_id=principal.school_id,
        kind=kind,
        params=params,
        params_digest=digest,
        state=JobState.QUEUED.value,
        created_by=principal.actor,
        idempotency_key=idempotency_key,
        progress_message="waiting for a worker",
    )
    session.add(job)
    try:
        session.flush()
        if upload is not None:
            session.add(
                JobFile(
                    job_id=job.id,
                    name=upload.name,
                    content=upload.content,
                    size=len(upload.content),
                    sha256=upload.sha256,
                )
            )
        session.commit()
    except IntegrityError:
        # The same request at the same moment, from another worker or a double click: that job.
        session.rollback()
        existing = _same_request(session, principal.school_id, kind, digest, idempotency_key)
        if existing is None:
            raise
        return existing, False
    log.info("job.queued", job_id=job.id, kind=kind, school_id=job.school_id, actor=job.created_by)
    _send(session, [job.id], delay)
    return job, True


def _same_request(
    session: Session, school_id: int, kind: str, digest: str, idempotency_key: str | None
) -> Job | None:
    if idempotency_key is not None:
        keyed: Job | None = session.scalar(
            select(Job).where(
                Job.school_id == school_id, Job.kind == kind, Job.idempotency_key == idempotency_key
            )
        )
        if keyed is not None and keyed.params_digest != digest:
            raise IdempotencyKeyReused(
                f"The Idempotency-Key {idempotency_key!r} was used for job {keyed.id} with other parameters: "
                "send a new key for a new request."
            )
        if keyed is not None:
            return keyed
    active: Job | None = session.scalar(
        select(Job).where(
            Job.school_id == school_id,
            Job.kind == kind,
            Job.params_digest == digest,
            Job.state.in_(ACTIVE_STATES),
        )
    )
    return active


def _send(session: Session, job_ids: list[int], delay: timedelta | None = None) -> None:
    """Send each job's id to the workers and note the message's id; a queue that is down is logged (the
    job stays queued without a message, and ``requeue_stale`` sends it again)."""
    queue = current_queue()
    for job_id in job_ids:
        try:
            task_id = queue.send(job_id, delay)
        except Exception as error:  # noqa: BLE001 - any failure of the storage: the reaper resends
            log.warning("job.not_sent", job_id=job_id, reason=f"{type(error).__name__}: {error}"[:200])
            continue
        session.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id, JOBS.c.state == JobState.QUEUED.value)
            .values(task_id=task_id)
        )
    session.commit()


# --- reading and cancelling -------------------------------------------------------------------------


def get_job(session: Session, principal: Principal, job_id: int) -> Job:
    ensure_allowed(principal, Action.MANAGE_JOBS)
    job: Job | None = session.scalar(
        select(Job).where(Job.id == job_id, Job.school_id == principal.school_id)
    )
    if job is None:
        raise UnknownJob(str(job_id))
    return job


@dataclass(frozen=True)
class JobPage:
    items: list[Job]
    page: int
    per_page: int
    total: int
    next_page: int | None


def list_jobs(
    session: Session,
    principal: Principal,
    *,
    state: str | None = None,
    kind: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> JobPage:
    """The school's jobs, newest first, a page at a time (optionally of one state or kind)."""
    ensure_allowed(principal, Action.MANAGE_JOBS)
    conditions = [Job.school_id == principal.school_id]
    if state is not None:
        conditions.append(Job.state == state)
    if kind is not None:
        conditions.append(Job.kind == kind)
    total = int(session.scalar(select(func.count()).select_from(Job).where(*conditions)) or 0)
    items = list(
        session.scalars(
            select(Job)
            .where(*conditions)
            .order_by(Job.id.desc())
            .offset((page - 1) * per_page)
            .limit(per_page)
        )
    )
    return JobPage(items, page, per_page, total, page + 1 if page * per_page < total else None)


def cancel(session: Session, principal: Principal, job_id: int) -> Job:
    """Cancel a queued job at once; ask a running one to stop (it stops at its next progress point, or is
    refused its commit); a finished job is left as it is. Returns the job as it now stands."""
    job = get_job(session, principal, job_id)
    session.commit()  # end the read: each step below is its own short transaction
    now = utcnow()
    for _ in range(3):  # a worker may take the job between our read and our write: then ask it to stop
        queued = session.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id, JOBS.c.state == JobState.QUEUED.value)
            .values(
                state=JobState.CANCELLED.value,
                cancel_requested=True,
                finished_at=now,
                progress_message="cancelled before it started",
            )
        )
        if queued.rowcount:  # type: ignore[attr-defined]
            session.execute(delete(JobFile).where(JobFile.job_id == job_id))
            session.commit()
            current_queue().revoke(job.task_id or "")
            log.info(
                "job.cancelled", job_id=job_id, kind=job.kind, while_state="queued", actor=principal.actor
            )
            break
        running = session.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id, JOBS.c.state == JobState.RUNNING.value)
            .values(cancel_requested=True)
        )
        session.commit()
        if running.rowcount:  # type: ignore[attr-defined]
            log.info("job.cancel_requested", job_id=job_id, kind=job.kind, actor=principal.actor)
            break
        state = session.scalar(select(Job.state).where(Job.id == job_id))
        session.commit()
        if state in FINAL:
            break
    session.refresh(job)
    session.commit()
    return job


def count_by_state(session: Session) -> dict[str, int]:
    """Jobs of every school by state (for metrics: every state, zeros included)."""
    counts = dict.fromkeys((s.value for s in JobState), 0)
    for state, n in session.execute(select(Job.state, func.count()).group_by(Job.state)):
        counts[str(state)] = int(n)
    return counts


# --- running a job (in a worker) ------------------------------------------------------------------


def execute(job_id: int, *, worker: str) -> str:
    """Run one job if this worker wins its lease; returns what happened ("skipped", or the final state).

    Inside an app context (the worker's task wraps it)."""
    settings = current_settings().jobs
    session = db.session()
    token = secrets.token_hex(16)
    job = _acquire(session, job_id, token, worker)
    if job is None:
        return "skipped"
    kind = all_kinds().get(job.kind)
    started = time.perf_counter()
    log.info("job.started", job_id=job.id, kind=job.kind, attempt=job.attempts, worker=worker)
    try:
        if kind is None:
            raise DomainError(f"This service does not know jobs of kind {job.kind!r}.")
        principal = _principal_of(session, job)
        upload = session.get(JobFile, job.id)
        session.commit()  # the reads above end here: the work starts outside a transaction
    except DomainError as error:
        session.rollback()
        return _settle(session, job, token, JobState.FAILED, error=str(error), started=started)
    heartbeat = Heartbeat(db.engine, job.id, token, settings)
    heartbeat.start()
    fence = Fence(job.id, token, kind)
    try:
        with fence.watching(session):
            summary = kind.run(
                JobContext(session, principal, dict(job.params), job.id, heartbeat.report, upload)
            )
    except Exception as error:  # noqa: BLE001 - every way a job can stop is recorded, and none escapes
        session.rollback()
        outcome = _stopped(session, job, token, kind, fence, error, started)
    else:
        result = {**kind.link(fence.created), **(summary or {})}
        outcome = _settle(
            session, job, token, JobState.SUCCEEDED, result=result, started=started, last=heartbeat.last
        )
    finally:
        heartbeat.stop()
    return str(outcome)


def _stopped(
    session: Session, job: Job, token: str, kind: JobKind, fence: Fence, error: Exception, started: float
) -> str:
    """Record a run that raised: cancelled, taken back, failed (the message is the user's to read when it is
    a domain error, a pointer to the log otherwise), or succeeded after all when its work had committed."""
    if fence.committed and kind.single_commit:
        log.exception("job.error_after_commit", job_id=job.id, kind=job.kind, exc_info=error)
        return _settle(
            session, job, token, JobState.SUCCEEDED, result=kind.link(fence.created), started=started
        )
    if isinstance(error, JobCancelled):
        return _settle(session, job, token, JobState.CANCELLED, started=started)
    if isinstance(error, LeaseLost):
        log.warning("job.lease_lost", job_id=job.id, kind=job.kind)
        return "lease lost"
    if isinstance(error, DomainError):
        return _settle(session, job, token, JobState.FAILED, error=str(error), started=started)
    log.error("job.crashed", job_id=job.id, kind=job.kind, exc_info=error)
    return _settle(session, job, token, JobState.FAILED, error=UNEXPECTED.format(id=job.id), started=started)


def _acquire(session: Session, job_id: int, token: str, worker: str) -> Job | None:
    """Take the job's lease (queued -> running) if it is still queued; None when another worker has it, it
    was cancelled or it is finished (a message delivered twice, or one for a job that is gone)."""
    now = utcnow()
    taken = session.execute(
        update(JOBS)
        .where(JOBS.c.id == job_id, JOBS.c.state == JobState.QUEUED.value, JOBS.c.cancel_requested.is_(False))
        .values(
            state=JobState.RUNNING.value,
            lease=token,
            worker=worker[:200],
            attempts=JOBS.c.attempts + 1,
            started_at=func.coalesce(JOBS.c.started_at, now),
            heartbeat_at=now,
            progress_done=0,  # each attempt starts over
            progress_total=None,
            progress_message="started",
        )
    )
    session.commit()
    if not taken.rowcount:  # type: ignore[attr-defined]
        return None
    job = session.get(Job, job_id, populate_existing=True)
    session.commit()
    return job


# Work the tutor queues by itself for a school's LMS (grade sends after answers, class lists after launches):
# recorded as "admin:lms", run for the school as its admin would.
LMS_ACTOR = "lms"


def lms_principal(school_id: int) -> Principal:
    """Whom the tutor's own LMS work (LTI grade sends, class-list syncs) runs as."""
    return Principal(Role.ADMIN, LMS_ACTOR, school_id, "LMS sync (automatic)")


def forget_finished(session: Session, kind: str, before: datetime) -> int:
    """Delete the succeeded jobs of ``kind`` that finished before ``before``: for kinds the tutor queues by
    itself that keep their own record (LMS grade sends: ``lti_scores``), whose jobs matter only while
    recent. Commits; how many went."""
    gone = session.execute(
        delete(Job).where(Job.kind == kind, Job.state == JobState.SUCCEEDED.value, Job.finished_at < before)
    )
    session.commit()
    return int(gone.rowcount or 0)  # type: ignore[attr-defined]


def _principal_of(session: Session, job: Job) -> Principal:
    """Whom the job acts as: the staff member who asked for it, as they are now (a demoted admin's queued
    jobs fail their permission check), or the operator at the shell."""
    role, _, key = job.created_by.partition(":")
    if key == "operator":
        return Principal(Role.ADMIN, "operator", job.school_id, "operator (CLI)")
    if key == LMS_ACTOR:
        return lms_principal(job.school_id)
    user = session.get(StaffUser, int(key)) if role in ("admin", "teacher") and key.isdigit() else None
    if user is None or user.school_id != job.school_id:
        raise DomainError("The person who asked for this job is no longer on the school's staff.")
    return staff_principal(user)


def _settle(
    session: Session,
    job: Job,
    token: str,
    state: JobState,
    *,
    result: dict[str, Any] | None = None,
    error: str | None = None,
    started: float,
    last: tuple[int, int | None, str] | None = None,
) -> str:
    """Record how the job ended, if this worker still holds it. A success already recorded by the fence
    gets the full result here; a success asked to stop in the meantime (a run that committed nothing, e.g. a
    dry run) is cancelled instead."""
    now = utcnow()
    values: dict[str, Any] = {"finished_at": func.coalesce(JOBS.c.finished_at, now), "heartbeat_at": now}
    conditions = [JOBS.c.id == job.id, JOBS.c.lease == token]
    if state is JobState.SUCCEEDED:
        values |= {"state": state.value, "progress_message": "finished", "result": result or {}}
        if last is not None:  # the last progress reported (no beat may have written it)
            values |= {"progress_done": last[0], "progress_total": last[1]}
        # Committed work stands whatever was asked since; a run that committed nothing (a dry run) and was
        # asked to stop is cancelled instead (below).
        conditions += [
            JOBS.c.state == JobState.RUNNING.value,
            JOBS.c.committed_at.is_not(None) | JOBS.c.cancel_requested.is_(False),
        ]
    else:
        message = {
            JobState.CANCELLED: "cancelled; nothing of it was committed",
            JobState.FAILED: "failed",
        }[state]
        values |= {"state": state.value, "error": error, "progress_message": message}
        conditions.append(JOBS.c.state == JobState.RUNNING.value)
    written = session.execute(update(JOBS).where(*conditions).values(**values))
    if not written.rowcount and state is JobState.SUCCEEDED:  # type: ignore[attr-defined]
        # Asked to stop while a run that commits nothing was under way: it stopped, in effect.
        session.rollback()
        return _settle(session, job, token, JobState.CANCELLED, started=started)
    if written.rowcount:  # type: ignore[attr-defined]
        session.execute(delete(JobFile).where(JobFile.job_id == job.id))
    session.commit()
    if not written.rowcount:  # type: ignore[attr-defined]
        log.warning("job.lease_lost", job_id=job.id, kind=job.kind)
        return "lease lost"
    duration_ms = round((time.perf_counter() - started) * 1000, 1)
    level = log.warning if state is JobState.FAILED else log.info
    level(f"job.{state.value}", job_id=job.id, kind=job.kind, duration_ms=duration_ms)
    return state.value


class Fence:
    """Listens to the work's session: before each commit, checks (in the same transaction) that the lease is
    still this worker's and no one asked the job to stop; the commit of a single-commit kind also records
    ``committed_at`` and the result's link, and drops the job's file. Raises JobCancelled or LeaseLost
    instead, which leaves the transaction uncommitted (the runner rolls it back)."""

    def __init__(self, job_id: int, token: str, kind: JobKind) -> None:
        self.job_id = job_id
        self.token = token
        self.kind = kind
        self.created: list[object] = []
        self.committed = False

    @contextmanager
    def watching(self, session: Session) -> Iterator[None]:
        from sqlalchemy import event

        event.listen(session, "after_flush", self._after_flush)
        event.listen(session, "before_commit", self._before_commit)
        try:
            yield
        finally:
            event.remove(session, "before_commit", self._before_commit)
            event.remove(session, "after_flush", self._after_flush)

    def _after_flush(self, session: Session, flush_context: Any) -> None:
        self.created.extend(session.new)

    def _before_commit(self, session: Session) -> None:
        session.flush()  # ids of what the work adds, for the result link
        now = utcnow()
        single = self.kind.single_commit
        conditions = [JOBS.c.id == self.job_id, JOBS.c.lease == self.token, JOBS.c.state == "running"]
        values: dict[str, Any] = {"heartbeat_at": now}
        if not (single and self.committed):  # committed work is not undone by a later cancel
            conditions.append(JOBS.c.cancel_requested.is_(False))
        if single and not self.committed:
            values |= {
                "committed_at": now,
                "result": self.kind.link(self.created),
                "progress_message": "finishing",
            }
        written = session.execute(update(JOBS).where(*conditions).values(**values))
        if not written.rowcount:  # type: ignore[attr-defined]
            lease, cancel = session.execute(
                select(JOBS.c.lease, JOBS.c.cancel_requested).where(JOBS.c.id == self.job_id)
            ).one()
            raise JobCancelled() if lease == self.token and cancel else LeaseLost()
        if single and not self.committed:
            session.execute(delete(JobFile).where(JobFile.job_id == self.job_id))
        self.committed = True


class Heartbeat:
    """A running job's pulse, in a thread of its own: every JOBS_HEARTBEAT_SECONDS it writes the progress
    reported so far and ``heartbeat_at`` (its own short transaction, never the work's), and reads whether the
    job was asked to stop or taken back. ``report`` (the kind's progress callback) only notes the numbers
    and raises JobCancelled or LeaseLost, so the work never waits for the database on its account."""

    def __init__(self, engine: Engine, job_id: int, token: str, settings: Jobs) -> None:
        self.engine = engine
        self.job_id = job_id
        self.token = token
        self.interval = settings.heartbeat.total_seconds()
        self.cancelled = threading.Event()
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._progress: tuple[int, int | None, str] | None = None
        self.last: tuple[int, int | None, str] | None = None  # the last progress reported
        self._thread = threading.Thread(target=self._run, name=f"job-{job_id}-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=self.interval + 1)

    def report(self, done: int, total: int | None = None, message: str = "") -> None:
        with self._lock:
            self._progress = (int(done), None if total is None else int(total), message[:200])
            self.last = self._progress
        if self.lost.is_set():
            raise LeaseLost()
        if self.cancelled.is_set():
            raise JobCancelled()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.beat()
            except SQLAlchemyError as error:  # busy (SQLite's write lock) or unreachable: next beat
                log.debug("job.heartbeat_missed", job_id=self.job_id, reason=str(error).splitlines()[0][:200])

    def beat(self) -> None:
        with self._lock:
            progress, self._progress = self._progress, None
        values: dict[str, Any] = {"heartbeat_at": utcnow()}
        if progress is not None:
            done, total, message = progress
            values |= {
                "progress_done": done,
                "progress_total": total,
                "progress_message": message or "running",
            }
        with self.engine.begin() as connection:
            connection.execute(
                update(JOBS)
                .where(
                    JOBS.c.id == self.job_id,
                    JOBS.c.lease == self.token,
                    JOBS.c.state == JobState.RUNNING.value,
                )
                .values(**values)
            )
            row = connection.execute(
                select(JOBS.c.lease, JOBS.c.state, JOBS.c.cancel_requested).where(JOBS.c.id == self.job_id)
            ).first()
        if row is None or row.lease != self.token:
            self.lost.set()
        elif row.cancel_requested and row.state == JobState.RUNNING.value:
            self.cancelled.set()


# --- workers stopping and starting ------------------------------------------------------------------


def requeue_stale(now: datetime | None = None) -> list[int]:
    """Running jobs whose lease lapsed (their worker stopped) go back to the queue, or fail after
    JOBS_MAX_ATTEMPTS starts, or are cancelled if that was asked; queued jobs that were never sent (the queue
    was down) are sent. Returns the ids sent. Safe to run on every worker at once (conditional updates)."""
    settings = current_settings().jobs
    session = db.session()
    now = now or utcnow()
    cutoff = now - settings.lease
    stale = session.execute(
        select(Job.id, Job.kind, Job.attempts, Job.cancel_requested, Job.committed_at).where(
            Job.state == JobState.RUNNING.value, Job.heartbeat_at < cutoff
        )
    ).all()
    requeued = []
    for job_id, kind, attempts, cancel_requested, committed_at in stale:
        fate = after_lapsed_lease(attempts, settings.max_attempts, cancel_requested, committed_at is not None)
        values: dict[str, Any] = {"state": fate.state.value, "lease": None, "worker": None, "task_id": None}
        if fate.state is JobState.QUEUED:
            values["progress_message"] = "waiting for a worker (its worker stopped)"
        elif fate.state is JobState.SUCCEEDED:  # its work committed; the worker stopped before saying so
            values |= {"finished_at": now, "progress_message": "finished"}
        else:
            values |= {"finished_at": now, "error": fate.error, "progress_message": fate.state.value}
        written = session.execute(
            update(JOBS)
            .where(JOBS.c.id == job_id, JOBS.c.state == JobState.RUNNING.value, JOBS.c.heartbeat_at < cutoff)
            .values(**values)
        )
        if not written.rowcount:  # type: ignore[attr-defined]
            continue  # its worker answered meanwhile, or another reaper got there first
        if fate.state is JobState.QUEUED:
            requeued.append(job_id)
        else:
            session.execute(delete(JobFile).where(JobFile.job_id == job_id))
        log.warning("job.lease_lapsed", job_id=job_id, kind=kind, attempts=attempts, now=fate.state.value)
    session.commit()
    # Queued, never sent (or the queue lost the message before it was sent): send now. A job submitted this
    # very moment is left to its submitter (a second message would be harmless, only wasted).
    unsent = session.scalars(
        select(Job.id).where(
            Job.state == JobState.QUEUED.value,
            Job.task_id.is_(None),
            Job.created_at < now - settings.heartbeat,
        )
    ).all()
    session.commit()
    to_send = sorted({*requeued, *unsent})
    if to_send:
        _send(session, to_send)
    return to_send


def release(worker: str) -> list[int]:
    """A worker stopping in order hands back the jobs it is running (their work is uncommitted: the fence
    refuses it from now on), so another worker takes them at once. The start is not counted."""
    session = db.session()
    rows = session.scalars(
        select(Job.id).where(
            Job.worker == worker, Job.state == JobState.RUNNING.value, Job.committed_at.is_(None)
        )
    ).all()
    handed_back = []
    for job_id in rows:
        written = session.execute(
            update(JOBS)
            .where(
                JOBS.c.id == job_id,
                JOBS.c.worker == worker,
                JOBS.c.state == JobState.RUNNING.value,
                JOBS.c.committed_at.is_(None),
            )
            .values(
                state=JobState.QUEUED.value,
                lease=None,
                worker=None,
                task_id=None,
                attempts=JOBS.c.attempts - 1,
                progress_message="waiting for a worker (its worker was stopped)",
            )
        )
        if written.rowcount:  # type: ignore[attr-defined]
            handed_back.append(job_id)
            log.info("job.handed_back", job_id=job_id, worker=worker)
    session.commit()
    if handed_back:
        _send(session, handed_back)
    return handed_back


def run_worker(workers: int | None = None, *, signals: bool = True) -> None:
    """Run a worker in this process until SIGINT (the running jobs finish first) or SIGTERM (they are handed
    back): at start, the jobs of stopped workers are re-queued."""
    settings = current_settings().jobs
    queue = current_queue()
    name = worker_name()
    sent = requeue_stale()
    log.info(
        "worker.started",
        worker=name,
        threads=workers or settings.workers,
        queue=settings.queue,
        storage=settings.url.split("://", 1)[0],
        requeued=sent,
    )
    consumer = queue.consumer(workers or settings.workers, signals=signals)
    try:
        consumer.run()
    finally:
        handed_back = release(name)
        log.info("worker.stopped", worker=name, handed_back=handed_back)
