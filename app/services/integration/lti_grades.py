"""Assignment and Grade Services 2.0: a learner's mastery of a graded link's skills goes to the LMS gradebook
as a score (``domain.lti_advantage.score_of``: the linked skills mastered, of those linked), sent by a
background job, retried with back-off while the platform is down, never twice for the same state, never for
a student who opted out.

One row of ``lti_scores`` per student and graded link (made at their first launch of it) is the record:
the last score the platform accepted, ``changes`` (bumped by each of the student's answers) against
``handled`` (the value the last finished check saw), and the back-off of failed sends. What happens:

1. An answer is committed (``tutoring/answers.py`` calls ``answer_recorded``): an LMS learner's rows are
   bumped and the platform's send job queued, SEND_DELAY later, so a run of answers is one job.
2. The job (``send_scores``, kind ``lti_grade_send``, one active per platform) takes each due row (changes
   to check, no back-off running), computes the score from the student's model as their report shows it,
   and sends it through pylti1p3next's ``AssignmentsGradesService.put_grade``, unless the platform already
   has that very score, the student opted out, or nothing has been practised yet. Each row commits on its
   own, and no transaction is open while the platform answers.
3. A send that gets no answer or a server error waits ``retry_delay(attempts)`` (1 min, doubling, at most 6
   h): the job stops for that platform, and the minute's sweep (``queue_due_sends``) queues it again once a
   back-off has passed. Any other refusal is kept in ``last_error`` and not retried until the state changes.

The one writer of ``lti_scores``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from pylti1p3.assignments_grades import AssignmentsGradesService
from pylti1p3.grade import Grade
from sqlalchemy import case, func, or_, select, update
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, Role, ensure_allowed
from app.domain.errors import NotFound
from app.domain.lti import AGS_SCORE_SCOPE, LinkTarget
from app.domain.lti_advantage import Score, linked_skills, retry_delay, score_of
from app.domain.reports import build_student_report
from app.extensions import db
from app.models import (
    ClassMembership,
    ConsentEvent,
    LtiAccount,
    LtiContext,
    LtiPlatform,
    LtiResourceLink,
    LtiScore,
    Student,
    utcnow,
)
from app.services.integration.lti import LEARNER_PREFIX
from app.services.integration.lti_services import PlatformClient, PlatformUnavailable, client_of, only
from app.services.operations.jobs import JobCancelled, LeaseLost, forget_finished, lms_principal, submit
from app.services.people.access import find_class, find_student
from app.services.tutoring.content import current_snapshot
from app.services.tutoring.student_models import load_model
from app.settings import current_settings

log = structlog.stdlib.get_logger(__name__)

GRADE_SEND = "lti_grade_send"  # the job kind (services/operations/job_kinds.py)
SHARING = "lms_grades"  # consent_events.kind of opting out of (or back into) scores sent to the LMS
SEND_DELAY = timedelta(seconds=5)  # after an answer: the answers of these seconds go in one job
MAX_CHECKS = 500  # rows one job checks; the rest wait for the next run (the sweep queues it)
JOBS_KEPT = timedelta(days=7)  # succeeded send jobs are forgotten after this (lti_scores is the record)


# --- scores that may have changed ----------------------------------------------------------------------


def open_score(session: Session, link_id: int, student_id: str) -> bool:
    """The student's row of a graded link, made at their first launch of it with a change to check (their
    mastery may score already); True when it was made. In the launch's transaction."""
    if session.scalar(
        select(LtiScore.id).where(LtiScore.resource_link_id == link_id, LtiScore.student_id == student_id)
    ):
        return False
    session.add(LtiScore(resource_link_id=link_id, student_id=student_id, changes=1, changed_at=utcnow()))
    return True


def _platforms_of(session: Session, student_id: str) -> list[int]:
    return list(
        session.scalars(
            select(LtiContext.platform_id)
            .distinct()
            .join(LtiResourceLink, LtiResourceLink.context_id == LtiContext.id)
            .join(LtiScore, LtiScore.resource_link_id == LtiResourceLink.id)
            .where(LtiScore.student_id == student_id)
        )
    )


def answer_recorded(session: Session, student: Student) -> None:
    """After an answer is committed: an LMS learner's graded links get a change to check, and their
    platform's send job is queued. Reads no row for any other student (an LMS learner's external id says
    so: ``lti.learner_external_id``); never raises (the answer stands whatever happens here)."""
    if not student.external_id.startswith(LEARNER_PREFIX):
        return
    student_id = student.id
    try:
        bumped = session.execute(
            update(LtiScore)
            .where(LtiScore.student_id == student_id)
            .values(changes=LtiScore.changes + 1, changed_at=utcnow())
        )
        if not bumped.rowcount:  # type: ignore[attr-defined]
            session.rollback()
            return
        platforms = _platforms_of(session, student_id)
        session.commit()
        for platform_id in platforms:
            queue_sends(session, platform_id, delay=SEND_DELAY)
    except Exception as error:  # noqa: BLE001 - the answer is recorded; the sweep or the next answer sends
        session.rollback()
        log.warning("lti.score_not_queued", student_id=student_id, reason=f"{type(error).__name__}"[:100])


def queue_sends(session: Session, platform_id: int, *, delay: timedelta | None = None) -> int | None:
    """Queue the platform's send job (the one queued or running already, if any); its id."""
    school_id = session.scalar(select(LtiPlatform.school_id).where(LtiPlatform.id == platform_id))
    if school_id is None:
        return None
    job, _ = submit(session, lms_principal(school_id), GRADE_SEND, {"platform_id": platform_id}, delay=delay)
    return job.id


def _due(now: datetime) -> Any:
    return (LtiScore.changes > LtiScore.handled) & or_(
        LtiScore.next_attempt_at.is_(None), LtiScore.next_attempt_at <= now
    )


def queue_due_sends(now: datetime | None = None) -> list[int]:
    """The minute's sweep (every worker, ``operations/queue.py``): each platform with scores to check and
    no back-off running gets its send job (scores whose send failed, a job lost with its worker, answers
    recorded while the queue was down); old succeeded send jobs are forgotten. Job ids."""
    session = db.session()
    now = now or utcnow()
    platforms = list(
        session.scalars(
            select(LtiContext.platform_id)
            .distinct()
            .join(LtiResourceLink, LtiResourceLink.context_id == LtiContext.id)
            .join(LtiScore, LtiScore.resource_link_id == LtiResourceLink.id)
            .where(_due(now))
        )
    )
    session.commit()
    queued = [job for p in platforms if (job := queue_sends(session, p)) is not None]
    forget_finished(session, GRADE_SEND, now - JOBS_KEPT)
    return queued


# --- sending ------------------------------------------------------------------------------------------


def shares_scores(session: Session, student_id: str) -> bool:
    """Whether the student's mastery may go to their LMS gradebook: yes unless their latest choice was no."""
    latest = session.scalar(
        select(ConsentEvent.granted)
        .where(ConsentEvent.student_id == student_id, ConsentEvent.kind == SHARING)
        .order_by(ConsentEvent.id.desc())
        .limit(1)
    )
    return latest is None or bool(latest)


@dataclass(frozen=True)
class _Due:
    """One row to check, with what its send needs."""

    id: int
    seen: int  # its ``changes`` when read: handled up to here once checked
    student_id: str
    sub: str | None
    lineitem_url: str | None
    scopes: list[str] | None
    target: str | None
    class_id: int
    sent: tuple[float | None, float | None, str | None, str | None]


def _next_due(session: Session, platform_id: int, now: datetime) -> _Due | None:
    row = session.execute(
        select(
            LtiScore.id,
            LtiScore.changes,
            LtiScore.student_id,
            LtiAccount.sub,
            LtiResourceLink.lineitem_url,
            LtiContext.ags_scopes,
            LtiResourceLink.target,
            LtiContext.class_id,
            LtiScore.score_given,
            LtiScore.score_maximum,
            LtiScore.activity_progress,
            LtiScore.grading_progress,
        )
        .join(LtiResourceLink, LtiResourceLink.id == LtiScore.resource_link_id)
        .join(LtiContext, LtiContext.id == LtiResourceLink.context_id)
        .outerjoin(
            LtiAccount,
            (LtiAccount.student_id == LtiScore.student_id)
            & (LtiAccount.platform_id == LtiContext.platform_id),
        )
        .where(LtiContext.platform_id == platform_id, _due(now))
        .order_by(LtiScore.id)
        .limit(1)
    ).first()
    if row is None:
        return None
    return _Due(*row[:8], sent=(row[8], row[9], row[10], row[11]))


def _score(session: Session, due: _Due, now: datetime) -> Score | None:
    """The student's score on the link now: their model as their report shows it (reports' own rule for
    "mastered": ``tracking.status_of``)."""
    student = session.get(Student, due.student_id)
    if student is None:
        return None
    snapshot = current_snapshot(session)
    linked = linked_skills(snapshot.graph, LinkTarget.parse(due.target) if due.target else None)
    settings = current_settings()
    model, _ = load_model(session, student, snapshot, settings.mastery)  # a student behind: as replayed
    report = build_student_report(snapshot.graph, snapshot.params, model, now, settings.reports)
    mastered = [r.skill_id for r in report.skills if r.mastered]
    practised = [r.skill_id for r in report.skills if r.attempts > 0]
    return score_of(linked, mastered, practised)


def _settle(session: Session, due: _Due, **values: Any) -> None:
    """Record how the check of ``due`` ended; handled up to what it read (a newer change stays due)."""
    session.execute(
        update(LtiScore)
        .where(LtiScore.id == due.id)
        .values(handled=case((LtiScore.handled < due.seen, due.seen), else_=LtiScore.handled), **values)
    )
    session.commit()


def send_scores(
    session: Session,
    principal: Principal,
    platform_id: int,
    *,
    progress: Callable[[int], None] | None = None,
    now: Callable[[], datetime] = utcnow,
) -> dict[str, int]:
    """Check the platform's due scores and send those it does not have yet (the job's work: every row
    commits on its own, so a run stopped halfway resumes where it stopped). Counts per outcome."""
    ensure_allowed(principal, Action.SYNC_LMS)
    platform = session.get(LtiPlatform, platform_id)
    if platform is None or platform.school_id != principal.school_id:
        raise NotFound(str(platform_id))
    client = client_of(session, platform)
    session.commit()
    counts = dict.fromkeys(
        ("sent", "unchanged", "not_started", "opted_out", "not_graded", "refused", "retry_later"), 0
    )
    for checked in range(1, MAX_CHECKS + 1):
        at = now()
        due = _next_due(session, platform_id, at)
        if due is None:
            session.commit()
            break
        outcome = _check(session, client, due, at)
        counts[outcome] += 1
        if progress is not None:
            progress(checked)
        if outcome == "retry_later":  # the platform is down: the sweep tries again after the back-off
            break
    log.info("lti.scores_checked", platform_id=platform_id, **counts)
    return counts


def _check(session: Session, client: PlatformClient, due: _Due, at: datetime) -> str:
    """Check one due row: send its score if the platform needs it. The outcome's name."""
    try:
        in_class = session.scalar(
            select(func.count())
            .select_from(ClassMembership)
            .where(ClassMembership.class_id == due.class_id, ClassMembership.student_id == due.student_id)
        )
        if due.sub is None or not due.lineitem_url or not in_class:
            _settle(session, due)
            return "not_graded"
        if not shares_scores(session, due.student_id):
            _settle(session, due)
            return "opted_out"
        scopes = only(due.scopes, AGS_SCORE_SCOPE)
        if not scopes:
            _settle(session, due, last_error=f"{client.name} did not grant the tool the AGS score scope")
            return "refused"
        score = _score(session, due, at)
        if score is None:
            _settle(session, due)
            return "not_started"
        if score.same_as(*due.sent):
            _settle(session, due)
            return "unchanged"
        session.rollback()  # the reads end here: no transaction stays open while the platform answers
        grade = (
            Grade()
            .set_score_given(score.given)
            .set_score_maximum(score.maximum)
            .set_activity_progress(score.activity)
            .set_grading_progress(score.grading)
            .set_timestamp(at.isoformat(timespec="milliseconds"))
            .set_user_id(due.sub)
            .set_comment(score.comment)
        )
        service = AssignmentsGradesService(client.connector, {"scope": scopes, "lineitem": due.lineitem_url})  # type: ignore[typeddict-item]
        try:
            client.call("accept a score", lambda: service.put_grade(grade))
        except PlatformUnavailable as error:
            if not error.transient:
                _settle(session, due, last_error=str(error)[:300], attempts=0, next_attempt_at=None)
                log.warning("lti.score_refused", score_id=due.id, status=error.status)
                return "refused"
            attempts = _back_off(session, due.id, at, str(error)[:300])
            log.warning("lti.score_retry_later", score_id=due.id, attempts=attempts, status=error.status)
            return "retry_later"
        _settle(
            session,
            due,
            score_given=score.given,
            score_maximum=score.maximum,
            activity_progress=score.activity,
            grading_progress=score.grading,
            sent_at=at,
            attempts=0,
            next_attempt_at=None,
            last_error=None,
        )
        log.info("lti.score_sent", score_id=due.id, activity=score.activity, grading=score.grading)
        return "sent"
    except (JobCancelled, LeaseLost):
        session.rollback()
        raise
    except Exception as error:  # noqa: BLE001 - one bad row must not stop the platform's others for good
        session.rollback()
        log.exception("lti.score_check_failed", score_id=due.id, exc_info=error)
        _back_off(session, due.id, at, "an unexpected error (the service's log has it)")
        return "retry_later"


def _back_off(session: Session, score_id: int, at: datetime, error: str) -> int:
    """One more failed send of the row: wait ``retry_delay(attempts)`` before the next. Commits; the count."""
    attempts = (session.scalar(select(LtiScore.attempts).where(LtiScore.id == score_id)) or 0) + 1
    session.execute(
        update(LtiScore)
        .where(LtiScore.id == score_id)
        .values(attempts=attempts, next_attempt_at=at + retry_delay(attempts), last_error=error)
    )
    session.commit()
    return attempts


# --- the student's choice, the teacher's view -----------------------------------------------------------


def is_lms_learner(session: Session, principal: Principal, student_id: str) -> bool:
    """Whether the student launches from an LMS (the page offers the choice then). A lookup."""
    student = find_student(session, principal, student_id, Action.READ_STUDENT)
    return bool(session.scalar(select(LtiAccount.id).where(LtiAccount.student_id == student.id).limit(1)))


def set_score_sharing(session: Session, principal: Principal, student_id: str, *, share: bool) -> bool:
    """The student (or an admin for them) opts out of scores sent to the LMS, or back in; recorded in
    ``consent_events`` (kind ``lms_grades``). Opting back in sends the current score. Commits."""
    student = find_student(session, principal, student_id, Action.SET_LMS_SHARING, lock=True)
    changed = shares_scores(session, student.id) != share
    platforms: list[int] = []
    if changed:
        session.add(
            ConsentEvent(
                student_id=student.id,
                kind=SHARING,
                granted=share,
                actor=principal.actor,
                given_by="student" if principal.role is Role.STUDENT else None,
            )
        )
        if share:
            session.execute(
                update(LtiScore)
                .where(LtiScore.student_id == student.id)
                .values(changes=LtiScore.changes + 1, changed_at=utcnow())
            )
            platforms = _platforms_of(session, student.id)
    session.commit()
    for platform_id in platforms:
        queue_sends(session, platform_id)
    return share


@dataclass(frozen=True)
class ClassScores:
    """How a class's scores stand with its LMS (the class page)."""

    graded_links: int
    rows: int  # a learner's graded link they launched: one row each
    up_to_date: int  # rows with nothing to send (the platform has their score, or there is none yet)
    waiting: int  # rows with a change to check
    retrying: int  # ... of which waiting for a back-off
    refused: int  # rows whose last send the platform refused
    last_error: str | None


def _class_rows(class_id: int) -> Any:
    return (
        select(LtiScore)
        .join(LtiResourceLink, LtiResourceLink.id == LtiScore.resource_link_id)
        .join(LtiContext, LtiContext.id == LtiResourceLink.context_id)
        .where(LtiContext.class_id == class_id)
    )


def class_scores(session: Session, class_id: int) -> ClassScores:
    """The class's scores (the caller checked access). A lookup."""
    rows = list(session.scalars(_class_rows(class_id)))
    links = session.scalar(
        select(func.count())
        .select_from(LtiResourceLink)
        .join(LtiContext, LtiContext.id == LtiResourceLink.context_id)
        .where(LtiContext.class_id == class_id, LtiResourceLink.lineitem_url.is_not(None))
    )
    errors = [r for r in rows if r.last_error]
    latest = max(errors, key=lambda r: r.id).last_error if errors else None
    return ClassScores(
        graded_links=int(links or 0),
        rows=len(rows),
        up_to_date=sum(1 for r in rows if r.changes <= r.handled and not r.last_error),
        waiting=sum(1 for r in rows if r.changes > r.handled),
        retrying=sum(1 for r in rows if r.changes > r.handled and r.next_attempt_at is not None),
        refused=sum(1 for r in rows if r.last_error and r.changes <= r.handled),
        last_error=latest,
    )


def resend_class(session: Session, principal: Principal, class_id: int) -> int:
    """The teacher's "send scores now": every score of the class is checked again (a change the platform
    already has is not sent twice; a back-off running is cut short). Commits; rows to check."""
    ensure_allowed(principal, Action.SYNC_LMS)
    find_class(session, principal, class_id)
    ids = [r.id for r in session.scalars(_class_rows(class_id))]
    if ids:
        session.execute(
            update(LtiScore)
            .where(LtiScore.id.in_(ids))
            .values(changes=LtiScore.changes + 1, changed_at=utcnow(), next_attempt_at=None)
        )
    platforms = list(
        session.scalars(select(LtiContext.platform_id).distinct().where(LtiContext.class_id == class_id))
    )
    session.commit()
    for platform_id in platforms:
        queue_sends(session, platform_id)
    return len(ids)
