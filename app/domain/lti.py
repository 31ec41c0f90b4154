"""LTI 1.3 launches in the tutor's terms: who launched (learner or instructor), from which course and
placement, and the service endpoints to keep. Pure: the id_token has already been validated (signature,
issuer, audience, expiry, nonce, deployment, message type and version) by the LTI library in the service
layer; this reads its claims.

Also the pure parts of registering the tool with an LMS: the URLs to give it, Canvas's developer-key JSON, and
the ``frame-ancestors`` directive that lets registered platforms frame the tutor's pages.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from app.domain.errors import DomainError

CLAIM = "https://purl.imsglobal.org/spec/lti/claim/"
ROLES = CLAIM + "roles"
CONTEXT = CLAIM + "context"
RESOURCE_LINK = CLAIM + "resource_link"
DEPLOYMENT_ID = CLAIM + "deployment_id"
CUSTOM = CLAIM + "custom"
AGS_ENDPOINT = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
NRPS_SERVICE = "https://purl.imsglobal.org/spec/lti-nrps/claim/namesroleservice"
# The custom parameter a deep-linked resource link carries back on each launch: what it practises.
TARGET_PARAMETER = "tutor_target"

MEMBERSHIP = "http://purl.imsglobal.org/vocab/lis/v2/membership#"
# Context roles that make a teacher of the course's class (a teaching assistant is a sub-role of Instructor).
INSTRUCTOR_ROLES = frozenset(
    {
        MEMBERSHIP + "Instructor",
        MEMBERSHIP + "Administrator",
        "http://purl.imsglobal.org/vocab/lis/v2/membership/Instructor#TeachingAssistant",
    }
)
LEARNER_ROLES = frozenset(
    {MEMBERSHIP + "Learner", "http://purl.imsglobal.org/vocab/lis/v2/membership/Learner#Learner"}
)

MAX_ID = 255  # the columns' size for sub, context id, resource link id, deployment id
MAX_URL = 1000


class LaunchRefused(DomainError):
    """A validated launch the tutor cannot act on (no course, a role it has no place for); the message says
    what is missing."""


class LaunchRole(StrEnum):
    LEARNER = "learner"
    INSTRUCTOR = "instructor"


class TargetKind(StrEnum):
    CURRICULUM = "curriculum"
    UNIT = "unit"
    SKILL = "skill"


MAX_TARGET = 300  # lti_resource_links.target


@dataclass(frozen=True)
class LinkTarget:
    """What a course's link practises and scores: the whole curriculum, one unit (by its name), or one skill
    (by its id). Written ``curriculum``, ``unit:<name>`` or ``skill:<id>`` (the custom parameter and the
    stored column)."""

    kind: TargetKind
    value: str = ""

    def __str__(self) -> str:
        return self.kind.value if self.kind is TargetKind.CURRICULUM else f"{self.kind.value}:{self.value}"

    @classmethod
    def parse(cls, text: str) -> LinkTarget:
        """The target ``text`` names; ValueError when it names none."""
        if not isinstance(text, str) or len(text) > MAX_TARGET or any(ord(c) < 32 for c in text):
            raise ValueError(f"a link target is a string of at most {MAX_TARGET} printable characters")
        kind, separator, value = text.strip().partition(":")
        if kind == TargetKind.CURRICULUM and not separator:
            return CURRICULUM
        if kind in (TargetKind.UNIT, TargetKind.SKILL) and value.strip():
            return cls(TargetKind(kind), value.strip())
        raise ValueError(f"{text!r} is not 'curriculum', 'unit:<unit>' or 'skill:<skill id>'")


CURRICULUM = LinkTarget(TargetKind.CURRICULUM)


@dataclass(frozen=True)
class Launch:
    """What the tutor takes from one launch: no name or email unless ``name`` was asked for."""

    sub: str
    role: LaunchRole
    context_id: str
    context_title: str
    resource_link_id: str
    lineitems_url: str | None
    lineitem_url: str | None
    context_memberships_url: str | None
    name: str | None  # the person's name, read only when the platform's school turned names on
    ags_scopes: tuple[str, ...] = ()  # what the platform lets the tool do with the line items
    target: LinkTarget | None = None  # what a deep-linked link practises (its custom parameter)


def launch_role(roles: list[str]) -> LaunchRole:
    """Instructor when any context role is an instructor's (they teach the class), else learner when one is a
    learner's; otherwise the launch is refused (an observer or a guest has no place in a class yet)."""
    if any(role in INSTRUCTOR_ROLES for role in roles):
        return LaunchRole.INSTRUCTOR
    if any(role in LEARNER_ROLES for role in roles):
        return LaunchRole.LEARNER
    raise LaunchRefused("the launch's roles are neither a learner's nor an instructor's")


def _text(value: Any, what: str, *, limit: int = MAX_ID, required: bool = True) -> str | None:
    if value is None or value == "":
        if required:
            raise LaunchRefused(f"the launch has no {what}")
        return None
    if not isinstance(value, str) or len(value) > limit or any(ord(c) < 32 for c in value):
        raise LaunchRefused(f"the launch's {what} is not a string of at most {limit} printable characters")
    return value


def _url(value: Any, what: str) -> str | None:
    text = _text(value, what, limit=MAX_URL, required=False)
    if text is not None and urlsplit(text).scheme not in ("https", "http"):
        raise LaunchRefused(f"the launch's {what} is not an http(s) URL")
    return text


def check_audience(body: dict[str, Any], client_id: str) -> None:
    """OpenID Connect's rule the LTI library leaves to the tool: with several audiences, ``azp`` must be
    present; when present, it must be this tool's client id."""
    aud = body.get("aud")
    azp = body.get("azp")
    if isinstance(aud, list) and len(aud) > 1 and azp is None:
        raise LaunchRefused("the id_token has several audiences and no azp")
    if azp is not None and azp != client_id:
        raise LaunchRefused("the id_token's azp is not this tool's client id")


def _launcher(body: dict[str, Any]) -> tuple[str, LaunchRole, str, str]:
    """Who launched (``sub`` and role) from which course (its id and title): every message needs them."""
    sub = _text(body.get("sub"), "user (sub)")
    roles = body.get(ROLES)
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise LaunchRefused("the launch's roles claim is not a list of roles")
    context = body.get(CONTEXT)
    if not isinstance(context, dict):
        raise LaunchRefused("the launch has no course (context claim): launch the tutor from inside a course")
    context_id = _text(context.get("id"), "course id")
    title = context.get("title") or context.get("label") or ""
    context_title = (title if isinstance(title, str) else "").strip()[:150] or f"Course {context_id}"[:150]
    assert sub is not None and context_id is not None
    return sub, launch_role(roles), context_id, context_title


def read_launch(body: dict[str, Any], *, accept_names: bool) -> Launch:
    """The tutor's view of a validated LtiResourceLinkRequest's claims."""
    sub, role, context_id, context_title = _launcher(body)
    link = body.get(RESOURCE_LINK)
    resource_link_id = _text(link.get("id") if isinstance(link, dict) else None, "resource link id")
    ags_claim, nrps_claim = body.get(AGS_ENDPOINT), body.get(NRPS_SERVICE)
    ags: dict[str, Any] = ags_claim if isinstance(ags_claim, dict) else {}
    nrps: dict[str, Any] = nrps_claim if isinstance(nrps_claim, dict) else {}
    name = _name(body) if accept_names else None
    assert resource_link_id is not None
    return Launch(
        sub=sub,
        role=role,
        context_id=context_id,
        context_title=context_title,
        resource_link_id=resource_link_id,
        lineitems_url=_url(ags.get("lineitems"), "AGS lineitems URL"),
        lineitem_url=_url(ags.get("lineitem"), "AGS lineitem URL"),
        context_memberships_url=_url(nrps.get("context_memberships_url"), "NRPS memberships URL"),
        name=name,
        ags_scopes=_scopes(ags.get("scope")),
        target=_target(body.get(CUSTOM)),
    )


DEEP_LINKING_SETTINGS = "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings"
MAX_DATA = 4000  # characters of the platform's opaque deep linking ``data`` (as JSON) kept to echo back


@dataclass(frozen=True)
class DeepLinkRequest:
    """An instructor asking, from a course, what to link (LtiDeepLinkingRequest): where the answer goes."""

    sub: str
    context_id: str
    context_title: str
    deployment_id: str
    return_url: str
    data: Any  # the platform's opaque data, echoed back
    name: str | None
    context_memberships_url: str | None = None


def read_deep_link_request(body: dict[str, Any], *, accept_names: bool) -> DeepLinkRequest:
    """The tutor's view of a validated LtiDeepLinkingRequest (the library checked that it takes resource
    links). Only an instructor chooses what a course links."""
    sub, role, context_id, context_title = _launcher(body)
    if role is not LaunchRole.INSTRUCTOR:
        raise LaunchRefused("only an instructor of the course can choose what to link")
    settings = body.get(DEEP_LINKING_SETTINGS)
    if not isinstance(settings, dict):
        raise LaunchRefused("the deep linking request has no deep_linking_settings")
    return_url = _url(settings.get("deep_link_return_url"), "deep linking return URL")
    if return_url is None:
        raise LaunchRefused("the deep linking request has no return URL")
    deployment_id = _text(body.get(DEPLOYMENT_ID), "deployment id")
    data = settings.get("data")
    nrps_claim = body.get(NRPS_SERVICE)
    nrps: dict[str, Any] = nrps_claim if isinstance(nrps_claim, dict) else {}
    if len(json.dumps(data)) > MAX_DATA:
        raise LaunchRefused(f"the deep linking request's data is longer than {MAX_DATA} characters")
    assert deployment_id is not None
    return DeepLinkRequest(
        sub=sub,
        context_id=context_id,
        context_title=context_title,
        deployment_id=deployment_id,
        return_url=return_url,
        data=data,
        name=_name(body) if accept_names else None,
        context_memberships_url=_url(nrps.get("context_memberships_url"), "NRPS memberships URL"),
    )


def _name(body: dict[str, Any]) -> str | None:
    raw = body.get("name")
    return raw.strip()[:200] if isinstance(raw, str) and raw.strip() else None


def _scopes(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list):
        return ()
    return tuple(sorted({s for s in value if isinstance(s, str) and 0 < len(s) <= MAX_URL}))


def _target(custom: Any) -> LinkTarget | None:
    raw = custom.get(TARGET_PARAMETER) if isinstance(custom, dict) else None
    if raw is None or raw == "":
        return None
    try:
        return LinkTarget.parse(raw)
    except ValueError as error:
        raise LaunchRefused(f"the link's custom parameter {TARGET_PARAMETER}: {error}") from None


# --- registering the tool with an LMS ---------------------------------------------------------------

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})


def check_platform_url(url: str) -> str | None:
    """Why a platform's URL cannot be registered, or None: https only (plain http for this machine's own
    loopback addresses, where a test or a local LMS runs)."""
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and (host in LOOPBACK_HOSTS or f"[{host}]" in LOOPBACK_HOSTS):
        return None
    return "must be an https:// URL"


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of an http(s) URL, or None."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or "@" in parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc.lower()}"


def with_frame_ancestors(policy: str, origins: list[str]) -> str:
    """The content security policy with ``frame-ancestors`` allowing only the tutor itself and ``origins``
    (the registered platforms'); the rest of the policy is kept as it is."""
    allowed = " ".join(["'self'", *sorted(set(origins))])
    directives = [d.strip() for d in policy.split(";") if d.strip()]
    kept = [d for d in directives if not d.startswith("frame-ancestors")]
    return "; ".join([*kept, f"frame-ancestors {allowed}"])


def with_form_action(policy: str, origins: list[str]) -> str:
    """The content security policy with ``form-action`` allowing the tutor itself and ``origins`` (a deep
    linking answer is a form the browser posts to the platform)."""
    allowed = " ".join(["'self'", *sorted(set(origins))])
    directives = [d.strip() for d in policy.split(";") if d.strip()]
    kept = [d for d in directives if not d.startswith("form-action")]
    return "; ".join([*kept, f"form-action {allowed}"])


# The services the tool calls: send scores (AGS) and read the class list (NRPS). It reads no line items or
# results, and creates line items only through deep linking (the platform makes them).
AGS_SCORE_SCOPE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
NRPS_SCOPE = "https://purl.imsglobal.org/spec/lti-nrps/scope/contextmembership.readonly"
TOOL_SCOPES = (AGS_SCORE_SCOPE, NRPS_SCOPE)


@dataclass(frozen=True)
class ToolUrls:
    """What an LMS administrator types in: where the LMS starts a login, sends launches, reads our keys."""

    login: str
    launch: str
    jwks: str
    domain: str


def tool_urls(base_url: str) -> ToolUrls:
    base = base_url.rstrip("/")
    return ToolUrls(
        login=f"{base}/lti/login",
        launch=f"{base}/lti/launch",
        jwks=f"{base}/.well-known/jwks.json",
        domain=urlsplit(base).netloc,
    )


def canvas_developer_key(urls: ToolUrls, title: str = "Adaptive tutor") -> dict[str, Any]:
    """Canvas's "LTI Key" JSON (Admin > Developer Keys > + LTI Key > Paste JSON). Privacy level anonymous:
    Canvas then sends no name or email, in launches and class lists alike. Placements: the course's
    navigation (the whole curriculum, ungraded), and deep linking from an assignment or a module ("External
    Tool": the instructor picks the curriculum, a unit or a skill, and Canvas makes the graded assignment).
    Scopes: send scores (AGS) and read the class list (NRPS). It opens inside Canvas (an iframe:
    docs/ARCHITECTURE.md "LTI 1.3" says how the session works there)."""
    deep_linking = [
        {"placement": placement, "message_type": "LtiDeepLinkingRequest", "target_link_uri": urls.launch}
        for placement in ("assignment_selection", "link_selection")
    ]
    return {
        "title": title,
        "description": "Adaptive practice with Bayesian knowledge tracing.",
        "oidc_initiation_url": urls.login,
        "target_link_uri": urls.launch,
        "public_jwk_url": urls.jwks,
        "scopes": list(TOOL_SCOPES),
        "extensions": [
            {
                "platform": "canvas.instructure.com",
                "domain": urls.domain,
                "privacy_level": "anonymous",
                "settings": {
                    "placements": [
                        {
                            "placement": "course_navigation",
                            "message_type": "LtiResourceLinkRequest",
                            "target_link_uri": urls.launch,
                        },
                        *deep_linking,
                    ]
                },
            }
        ],
        "custom_fields": {},
    }
