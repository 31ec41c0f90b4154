"""Deep Linking 2.0: an instructor adds the tutor to a course and picks what the link practises (the whole
curriculum, a unit, or one skill to master); the tool answers with a signed ``LtiDeepLinkingResponse``
holding one resource link, with the choice as its custom parameter, and a line item scored in skills.

The request comes through the launch (``lti.complete_launch`` validates it and calls ``open_request``); the
picker page reads it (``request_page``); the answer (``answer_request``) is built and signed by pylti1p3next's
``DeepLink`` with the tool's current key, and posted by the browser to the platform's return URL. A request
is answered once, within REQUEST_LIFETIME, by the instructor who made it. The one writer of
``lti_deep_links``.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog
from pylti1p3.deep_link import DeepLink
from pylti1p3.deep_link_resource import DeepLinkResource
from pylti1p3.lineitem import LineItem
from sqlalchemy import delete
from sqlalchemy.orm import Session

from app.domain.access import Principal, Role
from app.domain.errors import Conflict, Forbidden, InvalidInput, NotFound
from app.domain.lti import TARGET_PARAMETER, DeepLinkRequest, LinkTarget, check_platform_url, origin_of
from app.domain.lti_advantage import (
    Choice,
    UnitChoices,
    focus_skills,
    link_choices,
    linked_skills,
    target_title,
)
from app.models import LtiContext, LtiDeepLink, LtiPlatform, SchoolClass, StaffUser, utcnow
from app.services.integration.lti_services import registration_of
from app.services.tutoring.content import current_snapshot

log = structlog.stdlib.get_logger(__name__)

REQUEST_LIFETIME = timedelta(hours=1)  # an instructor picks within this time, or starts again from the LMS
REQUEST_KEPT = timedelta(days=1)  # requests are deleted by later requests after this
LINE_ITEM_TAG = "mastery"


class UnknownDeepLink(NotFound):
    kind = "deep linking request"


def open_request(
    session: Session, platform: LtiPlatform, context: LtiContext, teacher: StaffUser, request: DeepLinkRequest
) -> str:
    """Keep a validated deep linking request for the picker; its token. In the launch's transaction."""
    problem = check_platform_url(request.return_url)
    if problem:
        raise InvalidInput(f"the deep linking return URL {problem}")
    session.execute(delete(LtiDeepLink).where(LtiDeepLink.created_at < utcnow() - REQUEST_KEPT))
    token = secrets.token_urlsafe(32)
    session.add(
        LtiDeepLink(
            id=token,
            platform_id=platform.id,
            context_id=context.id,
            staff_user_id=teacher.id,
            deployment_id=request.deployment_id,
            return_url=request.return_url,
            data=request.data,
        )
    )
    return token


@dataclass(frozen=True)
class RequestPage:
    token: str
    course: str  # the class the course became
    whole: Choice
    units: tuple[UnitChoices, ...]


def _open(session: Session, principal: Principal, token: str) -> LtiDeepLink:
    row = session.get(LtiDeepLink, token)
    if row is None or principal.role is Role.STUDENT or str(row.staff_user_id) != principal.id:
        raise UnknownDeepLink(token[:8])
    if row.answered_at is not None:
        raise Conflict(
            "This link was chosen already: add the tutor again from the LMS to link something else."
        )
    if row.created_at < utcnow() - REQUEST_LIFETIME:
        raise Forbidden("This request from the LMS has expired: add the tutor again from the LMS.")
    return row


def request_page(session: Session, principal: Principal, token: str) -> RequestPage:
    """What the instructor can link (a lookup)."""
    row = _open(session, principal, token)
    context = session.get(LtiContext, row.context_id)
    klass = session.get(SchoolClass, context.class_id) if context else None
    whole, units = link_choices(current_snapshot(session).graph)
    session.commit()
    return RequestPage(token, klass.name if klass else "", whole, units)


@dataclass(frozen=True)
class DeepLinkAnswer:
    """The signed response for the browser to post to the platform (form field ``JWT``)."""

    return_url: str
    return_origin: str
    jwt: str
    title: str


def answer_request(
    session: Session, principal: Principal, token: str, choice: str, *, launch_url: str
) -> DeepLinkAnswer:
    """Answer the request with the chosen target: a resource link to ``launch_url`` (the tutor's) carrying
    it as the custom parameter ``tutor_target``, and a line item of as many points as skills it scores (so
    the gradebook shows "3 / 5"). Marks the request answered. Commits."""
    row = _open(session, principal, token)
    try:
        target = LinkTarget.parse(choice)
    except ValueError as error:
        raise InvalidInput(str(error)) from None
    graph = current_snapshot(session).graph
    skills = linked_skills(graph, target)
    if not skills:
        raise InvalidInput(f"{choice!r} names no unit or skill of the curriculum")
    platform = session.get(LtiPlatform, row.platform_id)
    assert platform is not None
    title = target_title(graph, target)
    resource = (
        DeepLinkResource()
        .set_url(launch_url)
        .set_title(title)
        .set_custom_params({TARGET_PARAMETER: str(target)})
        .set_lineitem(
            LineItem()
            .set_label(title)
            .set_score_maximum(len(skills))
            .set_resource_id(str(target))
            .set_tag(LINE_ITEM_TAG)
        )
    )
    settings: dict[str, Any] = {
        "deep_link_return_url": row.return_url,
        "accept_types": ["ltiResourceLink"],
        "accept_presentation_document_targets": ["iframe", "window"],
        "data": row.data,
    }
    deep_link = DeepLink(registration_of(session, platform), row.deployment_id, settings)  # type: ignore[arg-type]
    jwt = deep_link.get_response_jwt([resource])
    row.target = str(target)
    row.answered_at = utcnow()
    session.commit()
    log.info("lti.deep_linked", platform_id=platform.id, context_id=row.context_id, target=str(target))
    origin = origin_of(row.return_url)
    assert origin is not None  # checked when the request was kept
    return DeepLinkAnswer(row.return_url, origin, jwt, title)


@dataclass(frozen=True)
class Focus:
    """What practice keeps to in a session launched from a deep-linked link."""

    title: str
    skill_ids: frozenset[str]


def focus_of(session: Session, target_text: str | None) -> Focus | None:
    """The focus of a launched link's target (None: the whole curriculum, or a unit or skill the content no
    longer has, when practice is not restricted). A lookup."""
    if not target_text:
        return None
    try:
        target = LinkTarget.parse(target_text)
    except ValueError:
        return None
    graph = current_snapshot(session).graph
    skills = focus_skills(graph, target)
    if not skills:
        return None
    return Focus(target_title(graph, target), skills)
