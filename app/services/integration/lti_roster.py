"""Names and Role Provisioning Services 2.0: a course's class list pulled into its class, pseudonymously.

Active learners of the list are enrolled (new ones become students exactly as their first launch would make
them: an external id from a hash of the platform's ``sub``, no name or email, whatever the list holds); the
class's LMS learners who are no longer active learners there have their enrolment ended (the student and
their data stay; a launch enrols them again). Members who joined the class another way (a join code) and
instructors are left alone. The list is read by pylti1p3next's ``NamesRolesProvisioningService``.

When: after a launch, when the last sync is older than SYNC_EVERY (``sync_after_launch``), and when the
class's teacher asks (``queue_sync``, the class page's button); both queue the job ``lti_roster_sync``,
one at a time per course. The job (``sync_roster``) reads the list with no transaction open, then writes
every change in one transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from pylti1p3.names_roles import NamesRolesProvisioningService
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, ensure_allowed
from app.domain.errors import InvalidInput, NotFound
from app.domain.lti_advantage import plan_roster, read_members
from app.models import ClassMembership, Job, LtiAccount, LtiContext, LtiPlatform, utcnow
from app.services.integration import lti
from app.services.integration.lti_grades import ClassScores, class_scores
from app.services.integration.lti_services import client_of
from app.services.operations.jobs import lms_principal, submit
from app.services.people import accounts
from app.services.people.access import find_class

log = structlog.stdlib.get_logger(__name__)

ROSTER_SYNC = "lti_roster_sync"  # the job kind (services/operations/job_kinds.py)
SYNC_EVERY = timedelta(minutes=10)  # a launch pulls the class list when the last pull is older than this
CHUNK = 500


def _context_of_class(session: Session, class_id: int) -> LtiContext | None:
    found: LtiContext | None = session.scalar(
        select(LtiContext).where(LtiContext.class_id == class_id).order_by(LtiContext.id).limit(1)
    )
    return found


def sync_after_launch(session: Session, context_id: int, now: datetime | None = None) -> int | None:
    """After a launch: queue the course's class-list sync if it has a list and was not synced lately (as the
    tutor itself, for the school). The job's id, or None."""
    context = session.get(LtiContext, context_id)
    if context is None or not context.context_memberships_url:
        session.commit()
        return None
    now = now or utcnow()
    if context.roster_synced_at is not None and context.roster_synced_at > now - SYNC_EVERY:
        session.commit()
        return None
    platform = session.get(LtiPlatform, context.platform_id)
    assert platform is not None
    job, _ = submit(session, lms_principal(platform.school_id), ROSTER_SYNC, {"context_id": context.id})
    return job.id


def queue_sync(session: Session, principal: Principal, class_id: int) -> Job:
    """The class's teacher (or an admin) asks for the class list now: the sync job (the one already queued
    or running, if any)."""
    ensure_allowed(principal, Action.SYNC_LMS)
    find_class(session, principal, class_id)
    context = _context_of_class(session, class_id)
    if context is None or not context.context_memberships_url:
        raise InvalidInput("this class has no class list from an LMS (its course sent no NRPS service)")
    job, _ = submit(session, principal, ROSTER_SYNC, {"context_id": context.id})
    return job


def sync_roster(
    session: Session, principal: Principal, context_id: int, *, progress: Callable[[str], None] | None = None
) -> dict[str, Any]:
    """Pull the course's class list into its class (the job's work): one commit. Counts."""
    ensure_allowed(principal, Action.SYNC_LMS)
    context = session.get(LtiContext, context_id)
    if context is None:
        raise NotFound(str(context_id))
    klass = find_class(session, principal, context.class_id)  # the teacher's own; an admin's school
    url = context.context_memberships_url
    if not url:
        raise InvalidInput("the course sent no NRPS service: there is no class list to read")
    platform = session.get(LtiPlatform, context.platform_id)
    assert platform is not None
    client = client_of(session, platform)
    class_id, platform_id = klass.id, platform.id
    session.rollback()  # the reads end here: no transaction stays open while the platform answers
    if progress is not None:
        progress(f"reading the class list from {client.name}")
    service = NamesRolesProvisioningService(client.connector, {"context_memberships_url": url})
    members = read_members(client.call("send the class list", service.get_members))

    platform = session.get(LtiPlatform, platform_id)
    context = session.get(LtiContext, context_id)
    assert platform is not None and context is not None
    subs = [m.sub for m in members]
    known: dict[str, LtiAccount] = {}
    for start in range(0, len(subs), CHUNK):
        for account in session.scalars(
            select(LtiAccount).where(
                LtiAccount.platform_id == platform_id, LtiAccount.sub.in_(subs[start : start + CHUNK])
            )
        ):
            known[account.sub] = account
    enrolled = dict(
        session.execute(
            select(LtiAccount.sub, LtiAccount.student_id)
            .join(ClassMembership, ClassMembership.student_id == LtiAccount.student_id)
            .where(LtiAccount.platform_id == platform_id, ClassMembership.class_id == class_id)
        ).all()
    )
    teachers = [sub for sub, account in known.items() if account.staff_user_id is not None]
    plan = plan_roster(members, enrolled, teachers)
    made = 0
    to_enrol = []
    for sub in plan.add:
        is_new = sub not in known
        student, _ = lti.learner(session, platform, sub)
        made += is_new
        to_enrol.append(student.id)
    accounts.add_members(session, class_id, to_enrol)
    for sub in plan.end:
        accounts.remove_member(session, class_id, str(enrolled[sub]))
    context.roster_synced_at = utcnow()
    session.commit()
    result = {
        "class_id": class_id,
        "members_listed": len(members),
        "enrolled": len(plan.add),
        "new_students": made,
        "ended": len(plan.end),
        "kept": plan.kept,
        "skipped_teachers": plan.skipped,
    }
    log.info(
        "lti.roster_synced", context_id=context_id, **{k: v for k, v in result.items() if k != "class_id"}
    )
    return result


@dataclass(frozen=True)
class CourseLink:
    """A class made from an LMS course, as its page shows it."""

    platform: str
    has_class_list: bool
    roster_synced_at: datetime | None
    scores: ClassScores


def course_of_class(session: Session, principal: Principal, class_id: int) -> CourseLink | None:
    """The class's LMS course (None: the class is not from an LMS). A lookup (the caller read the class)."""
    context = _context_of_class(session, class_id)
    if context is None:
        return None
    find_class(session, principal, class_id)
    platform = session.get(LtiPlatform, context.platform_id)
    found = CourseLink(
        platform=platform.name if platform else "",
        has_class_list=bool(context.context_memberships_url),
        roster_synced_at=context.roster_synced_at,
        scores=class_scores(session, class_id),
    )
    session.commit()
    return found
