"""LTI 1.3, the tool's side: registered platforms, the tool's signing keys, the OIDC login and the launch.

The protocol is pylti1p3next's (docs/ARCHITECTURE.md "LTI 1.3"): it checks the login request, builds the
redirect to the platform, and validates the id_token against the platform's key set (signature, issuer,
audience through the registration it finds, expiry, deployment, message type and version). This module gives
it what it reads and keeps: the registrations from ``lti_platforms`` and ``lti_deployments``; the state and
nonce of each login in ``lti_logins`` (the launch's own transaction marks the nonce used: good once); a state
cookie for the browser that started the login. Then a launch becomes the platform's school's class (its
course), a pseudonymous student (a learner, by the platform's ``sub``) or a teacher without a password (an
instructor): all in one transaction, so a refused launch writes nothing.

Writes the ``lti_*`` tables but two: a deep linking request is kept by ``lti_deep_linking`` and a
learner's score row made by ``lti_grades``, both in the launch's transaction; students, staff users,
classes, memberships and credentials are made through ``people/accounts.py`` and ``tutoring/students.py``,
in it too.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import requests
import structlog
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Response
from flask import request as flask_request
from jwcrypto.jwk import JWK  # type: ignore[import-untyped]
from pylti1p3.contrib.flask.cookie import FlaskCookieService
from pylti1p3.contrib.flask.message_launch import FlaskMessageLaunch
from pylti1p3.contrib.flask.oidc_login import FlaskOIDCLogin
from pylti1p3.contrib.flask.request import FlaskRequest
from pylti1p3.contrib.flask.session import FlaskSessionService
from pylti1p3.deployment import Deployment
from pylti1p3.exception import LtiException, LtiInvalidNonceException, OIDCException
from pylti1p3.registration import Registration
from pylti1p3.tool_config.abstract import ToolConfAbstract
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, ensure_allowed
from app.domain.errors import Conflict, Forbidden, InvalidInput
from app.domain.lti import (
    DeepLinkRequest,
    Launch,
    LaunchRefused,
    LaunchRole,
    check_audience,
    check_platform_url,
    origin_of,
    read_deep_link_request,
    read_launch,
)
from app.models import (
    LtiAccount,
    LtiContext,
    LtiDeployment,
    LtiLogin,
    LtiPlatform,
    LtiResourceLink,
    LtiToolKey,
    SchoolClass,
    StaffUser,
    Student,
    StudentCredential,
    utcnow,
)
from app.services.people import accounts
from app.services.people.school_admin import record_change
from app.services.tutoring.students import add_students

log = structlog.stdlib.get_logger(__name__)

KEY_SET_TIMEOUT = 5.0  # seconds to fetch a platform's key set: a launch never waits longer on the LMS
LOGIN_LIFETIME = timedelta(minutes=10)  # a login's nonce is good for one launch within this time
LOGIN_KEPT = timedelta(days=1)  # used or expired logins are deleted by later logins after this
STATE_COOKIE_PATH = "/lti/"
RESOURCE_LINK_REQUEST = "LtiResourceLinkRequest"
DEEP_LINKING_REQUEST = "LtiDeepLinkingRequest"


class LaunchRejected(Forbidden):
    """The LMS's login or launch did not pass validation (a 403 page naming the reason); nothing is
    written."""


class RegistrationError(InvalidInput):
    """A platform registration that cannot be accepted; the message names the field."""


# --- the tool's signing keys ------------------------------------------------------------------------------


def _new_key() -> LtiToolKey:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    jwk = JWK.from_pem(pem.encode())
    kid = jwk.thumbprint()
    public = json.loads(jwk.export_public())
    public.update({"kid": kid, "alg": "RS256", "use": "sig"})
    return LtiToolKey(kid=kid, private_key_pem=pem, public_jwk=public)


def signing_key(session: Session) -> LtiToolKey | None:
    key: LtiToolKey | None = session.scalar(
        select(LtiToolKey).where(LtiToolKey.retired_at.is_(None)).order_by(LtiToolKey.id.desc()).limit(1)
    )
    return key


def rotate_key(session: Session) -> LtiToolKey:
    """A new signing key (the newest signs); the older ones stay published until retired. Commits."""
    key = _new_key()
    session.add(key)
    session.commit()
    log.info("lti.key_rotated", kid=key.kid)
    return key


def retire_key(session: Session, kid: str) -> LtiToolKey:
    """Stop publishing a key (never the one that signs now). Commits."""
    key: LtiToolKey | None = session.scalar(select(LtiToolKey).where(LtiToolKey.kid == kid))
    if key is None or key.retired_at is not None:
        raise InvalidInput(f"no published key has the kid {kid!r}")
    newest = signing_key(session)
    if newest is not None and newest.id == key.id:
        raise InvalidInput("that key signs now: rotate first ('flask lti rotate-key'), then retire it")
    key.retired_at = utcnow()
    session.commit()
    log.info("lti.key_retired", kid=kid)
    return key


def key_set(session: Session) -> dict[str, Any]:
    """The JWKS of every unretired key, newest first (a lookup)."""
    keys = session.scalars(
        select(LtiToolKey).where(LtiToolKey.retired_at.is_(None)).order_by(LtiToolKey.id.desc())
    )
    return {"keys": [dict(k.public_jwk) for k in keys]}


def list_keys(session: Session) -> list[LtiToolKey]:
    return list(session.scalars(select(LtiToolKey).order_by(LtiToolKey.id.desc())))


# --- registration -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlatformForm:
    name: str
    issuer: str
    client_id: str
    auth_login_url: str
    auth_token_url: str
    key_set_url: str | None
    key_set: str | None  # JWKS JSON pasted in, when the platform publishes no URL
    deployment_ids: list[str]
    accept_names: bool = False


def _required(value: str | None, what: str, limit: int) -> str:
    text = (value or "").strip()
    if not text:
        raise RegistrationError(f"{what} is required")
    if len(text) > limit:
        raise RegistrationError(f"{what} is longer than {limit} characters")
    return text


def _checked_url(value: str | None, what: str) -> str:
    url = _required(value, what, 1000)
    problem = check_platform_url(url)
    if problem:
        raise RegistrationError(f"{what}: {problem}")
    return url


def _checked_key_set(text: str) -> dict[str, Any]:
    try:
        parsed = json.loads(text)
    except ValueError:
        raise RegistrationError("the key set is not JSON") from None
    keys = parsed.get("keys") if isinstance(parsed, dict) else None
    if not isinstance(keys, list) or not keys or not all(isinstance(k, dict) and k.get("kid") for k in keys):
        raise RegistrationError('the key set must be a JWKS: {"keys": [...]}, each key with a "kid"')
    for k in keys:
        try:
            JWK(**k)
        except Exception:  # noqa: BLE001 - jwcrypto raises several kinds for a bad key
            raise RegistrationError(f"the key {k.get('kid')!r} is not a valid JWK") from None
    return {"keys": keys}


def register_platform(
    session: Session, principal: Principal | None, school_id: int, form: PlatformForm
) -> LtiPlatform:
    """Register an LMS for the school (``principal``: the admin; None for the operator's CLI), with its
    deployment ids; the tool's first signing key is made if there is none. Commits once."""
    if principal is not None:
        ensure_allowed(principal, Action.MANAGE_LMS)
        school_id = principal.school_id
    name = _required(form.name, "the name", 200)
    issuer = _required(form.issuer, "the issuer", 500)
    client_id = _required(form.client_id, "the client id", 255)
    login_url = _checked_url(form.auth_login_url, "the authentication (OIDC) URL")
    token_url = _checked_url(form.auth_token_url, "the access token URL")
    key_set_url = (
        _checked_url(form.key_set_url, "the key set URL") if (form.key_set_url or "").strip() else None
    )
    pasted = _checked_key_set(form.key_set or "") if (form.key_set or "").strip() else None
    if (key_set_url is None) == (pasted is None):
        raise RegistrationError("give either the platform's key set URL or its key set (JWKS JSON), not both")
    deployments = sorted({_required(d, "a deployment id", 255) for d in form.deployment_ids if d.strip()})
    if not deployments:
        raise RegistrationError("at least one deployment id is required")
    if session.scalar(
        select(LtiPlatform.id).where(LtiPlatform.issuer == issuer, LtiPlatform.client_id == client_id)
    ):
        raise Conflict(f"a platform with issuer {issuer!r} and client id {client_id!r} is already registered")
    platform = LtiPlatform(
        school_id=school_id,
        name=name,
        issuer=issuer,
        client_id=client_id,
        auth_login_url=login_url,
        auth_token_url=token_url,
        key_set_url=key_set_url,
        key_set=pasted,
        accept_names=form.accept_names,
    )
    session.add(platform)
    session.flush()
    session.add_all(LtiDeployment(platform_id=platform.id, deployment_id=d) for d in deployments)
    if signing_key(session) is None:
        session.add(_new_key())
    if principal is not None:
        record_change(session, principal, "LMS registered", name, f"{issuer} (client id {client_id})")
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict("that platform was registered at the same time by another request") from None
    log.info("lti.platform_registered", platform_id=platform.id, school_id=school_id)
    return platform


def add_deployment(session: Session, platform_id: int, deployment_id: str) -> LtiDeployment:
    """Another deployment id of a registered platform (the CLI). Commits."""
    if session.get(LtiPlatform, platform_id) is None:
        raise InvalidInput(f"no platform has the id {platform_id}")
    text = _required(deployment_id, "the deployment id", 255)
    row = LtiDeployment(platform_id=platform_id, deployment_id=text)
    session.add(row)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"deployment {text!r} is already registered for that platform") from None
    return row


@dataclass(frozen=True)
class PlatformView:
    platform: LtiPlatform
    deployment_ids: list[str]


def list_platforms(session: Session, principal: Principal) -> list[PlatformView]:
    """The school's registered platforms (admins)."""
    ensure_allowed(principal, Action.MANAGE_LMS)
    platforms = list(
        session.scalars(
            select(LtiPlatform).where(LtiPlatform.school_id == principal.school_id).order_by(LtiPlatform.id)
        )
    )
    deployments: dict[int, list[str]] = {}
    for platform_id, deployment_id in session.execute(
        select(LtiDeployment.platform_id, LtiDeployment.deployment_id)
        .where(LtiDeployment.platform_id.in_([p.id for p in platforms]))
        .order_by(LtiDeployment.deployment_id)
    ):
        deployments.setdefault(platform_id, []).append(deployment_id)
    return [PlatformView(p, deployments.get(p.id, [])) for p in platforms]


# --- what the library reads and keeps -------------------------------------------------------------------


class _ToolConf(ToolConfAbstract[FlaskRequest]):
    """Registrations from the database; remembers the platform it found for the rest of the request."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.platform: LtiPlatform | None = None

    def check_iss_has_one_client(self, iss: str) -> bool:
        return False  # every lookup goes by issuer and client id

    def check_iss_has_many_clients(self, iss: str) -> bool:
        return True

    def find_registration_by_issuer(self, iss: str, *args: Any, **kwargs: Any) -> Registration:
        return self.find_registration_by_params(iss, None, *args, **kwargs)

    def find_registration_by_params(
        self, iss: str, client_id: str | None, *args: Any, **kwargs: Any
    ) -> Registration:
        query = select(LtiPlatform).where(LtiPlatform.issuer == iss)
        if client_id:
            query = query.where(LtiPlatform.client_id == client_id)
        found = list(self.session.scalars(query.limit(2)))
        if len(found) != 1:  # unknown, or (without a client id) ambiguous
            return None  # type: ignore[return-value]  # the library checks for a falsy registration
        platform = self.platform = found[0]
        registration = (
            Registration()
            .set_issuer(platform.issuer)
            .set_client_id(platform.client_id)
            .set_auth_login_url(platform.auth_login_url)
            .set_auth_token_url(platform.auth_token_url)
            .set_key_set_url(platform.key_set_url)
            .set_key_set(platform.key_set)  # type: ignore[arg-type]
        )
        key = signing_key(self.session)
        if key is not None:
            registration.set_tool_private_key(key.private_key_pem)
        return registration

    def find_deployment(self, iss: str, deployment_id: str) -> Deployment | None:
        return None  # never called: check_iss_has_one_client is False

    def find_deployment_by_params(
        self, iss: str, deployment_id: str, client_id: str, *args: Any, **kwargs: Any
    ) -> Deployment | None:
        platform = self.platform
        if platform is None or platform.issuer != iss or platform.client_id != client_id or not deployment_id:
            return None
        known = self.session.scalar(
            select(LtiDeployment.id).where(
                LtiDeployment.platform_id == platform.id, LtiDeployment.deployment_id == deployment_id
            )
        )
        return Deployment().set_deployment_id(deployment_id) if known else None


class _Logins(FlaskSessionService):
    """The library's session storage, in ``lti_logins`` instead of the web session: the state and nonce of
    each login, the nonce used once. Launch data is not kept (the launch stores what it needs itself)."""

    def __init__(self, session: Session, conf: _ToolConf, request: FlaskRequest) -> None:
        super().__init__(request)
        self.session = session
        self.conf = conf
        self._nonce: str | None = None

    def save_nonce(self, nonce: str) -> None:
        self._nonce = nonce  # written with its state by save_state_params, which the login calls next

    def save_state_params(self, state: str, params: Any) -> None:
        assert self.conf.platform is not None and self._nonce is not None
        self.session.add(LtiLogin(state=state, nonce=self._nonce, platform_id=self.conf.platform.id))

    def get_state_params(self, state: str) -> Any:
        return {}

    def check_nonce(self, nonce: str) -> bool:
        now = utcnow()
        used = self.session.execute(
            update(LtiLogin)
            .where(
                LtiLogin.nonce == nonce,
                LtiLogin.state == (flask_request.form.get("state") or ""),
                LtiLogin.used_at.is_(None),
                LtiLogin.created_at >= now - LOGIN_LIFETIME,
            )
            .values(used_at=now)
        )
        if used.rowcount != 1:  # type: ignore[attr-defined]
            raise LtiInvalidNonceException(
                "the launch's nonce was already used, or belongs to another or an expired login: "
                "start the launch again from the LMS"
            )
        return True

    def set_state_valid(self, state: str, id_token_hash: str) -> None:
        return None  # a launch is never restored from the state: each id_token is validated once

    def check_state_is_valid(self, state: str, id_token_hash: str) -> bool:
        return False

    def save_launch_data(self, key: str, jwt_body: Any) -> None:
        return None

    def get_launch_data(self, key: str) -> Any:
        raise LtiException("launches are not kept")


class _StateCookie(FlaskCookieService):
    """The login's state, bound to the browser that started it: a cookie that a cross-site launch POST still
    carries (SameSite=None; Secure), partitioned by the top-level site (CHIPS), only on /lti/, for 5
    minutes."""

    def update_response(self, response: Response) -> None:
        for key, data in self._cookie_data_to_set.items():
            response.set_cookie(
                key,
                str(data["value"]),
                max_age=data["exp"],
                path=STATE_COOKIE_PATH,
                secure=True,
                httponly=True,
                samesite="None",
                partitioned=True,
            )


# --- login and launch -------------------------------------------------------------------------------------


class _KeySetFetcher(requests.Session):
    """The library fetches the platform's key set with a plain session: this one gives up after
    KEY_SET_TIMEOUT seconds (a refused launch, not a worker stuck on a slow LMS)."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", KEY_SET_TIMEOUT)
        return super().request(*args, **kwargs)


def _request() -> FlaskRequest:
    return FlaskRequest()  # type: ignore[no-untyped-call]  # the current Flask request


def _cookies(request: FlaskRequest) -> _StateCookie:
    return _StateCookie(request)  # type: ignore[no-untyped-call]


def start_login(session: Session, launch_url: str) -> Response:
    """The platform's third-party initiated login: a redirect to its authentication URL with a new state (in
    the browser's cookie and ``lti_logins``) and nonce. Commits the login; refused: LaunchRejected."""
    conf = _ToolConf(session)
    request = _request()
    logins = _Logins(session, conf, request)
    login = FlaskOIDCLogin(request, conf, session_service=logins, cookie_service=_cookies(request))
    login.pass_params_to_launch({"login": 1})  # so the library calls save_state_params
    try:
        response: Response = login.redirect(launch_url)
    except (OIDCException, LtiException) as error:
        session.rollback()
        raise LaunchRejected(f"The LMS login was refused: {_reason(error)}.") from None
    session.execute(delete(LtiLogin).where(LtiLogin.created_at < utcnow() - LOGIN_KEPT))
    session.commit()
    return response


@dataclass(frozen=True)
class Launched:
    signed: accounts.SignedIn
    role: LaunchRole
    class_id: int
    frame_origin: str | None  # the platform's origin, allowed to frame the session's pages
    target: str | None = None  # what the launched link practises (a learner's practice keeps to it)
    deep_link: str | None = None  # an instructor's deep linking request: the picker's token
    # After the commit: the course whose class list may be due a sync, and whether a score is due.
    context_id: int | None = None
    platform_id: int | None = None
    scores_due: bool = False


def complete_launch(session: Session) -> Launched:
    """Validate the launch POST (the library), then map it to the platform's school: the course's class
    (made on its first launch), and a student or a teacher for the platform's ``sub``. One transaction:
    refused (LaunchRejected, LaunchRefused, Forbidden, Conflict), nothing is written.

    A resource link launch lands the person in the tutor; a deep linking request (an instructor adding the
    tutor to the course) opens the picker of what to link. After the commit, the course's class list is
    pulled (NRPS) when it was not lately, and a learner's score on a graded link is queued (AGS)."""
    conf = _ToolConf(session)
    request = _request()
    message = FlaskMessageLaunch(
        request,
        conf,
        session_service=_Logins(session, conf, request),
        cookie_service=_cookies(request),
        requests_session=_KeySetFetcher(),
    )
    try:
        try:
            body = dict(message.get_launch_data())
        except (LtiException, OIDCException) as error:
            raise LaunchRejected(f"The LMS launch was refused: {_reason(error)}.") from None
        except (KeyError, TypeError, ValueError):  # a key set or token of the wrong shape, in the library
            raise LaunchRejected(
                "The LMS launch was refused: the platform's key set or the id_token is not in the form LTI "
                "expects."
            ) from None
        platform = conf.platform
        login = session.get(LtiLogin, flask_request.form.get("state") or "")
        if platform is None or login is None or login.platform_id != platform.id:
            raise LaunchRejected("The LMS launch was refused: its login was started by another platform.")
        try:
            check_audience(body, platform.client_id)
        except LaunchRefused as error:
            raise LaunchRejected(f"The LMS launch was refused: {error}.") from None
        message_type = body.get("https://purl.imsglobal.org/spec/lti/claim/message_type")
        if message_type == RESOURCE_LINK_REQUEST:
            launched = _admit(session, platform, read_launch(body, accept_names=platform.accept_names))
        elif message_type == DEEP_LINKING_REQUEST:
            launched = _admit_deep_link(
                session, platform, read_deep_link_request(body, accept_names=platform.accept_names)
            )
        else:
            raise LaunchRefused(
                f"the tutor takes resource link launches and deep linking requests, not {message_type!r}"
            )
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(
            "another launch for the same course or person ran at the same time: launch again"
        ) from None
    except BaseException:
        session.rollback()
        raise
    log.info(
        "lti.launched",
        platform_id=platform.id,
        role=launched.role.value,
        class_id=launched.class_id,
        deep_link=launched.deep_link is not None,
    )
    _after_launch(session, launched)
    return launched


def _after_launch(session: Session, launched: Launched) -> None:
    """The services a launch starts, once it is committed; a failure here is logged, never the launch's."""
    # Imported here: these modules build on this one (signing keys, external ids).
    from app.services.integration import lti_grades, lti_roster

    try:
        if launched.context_id is not None:
            lti_roster.sync_after_launch(session, launched.context_id)
        if launched.scores_due and launched.platform_id is not None:
            lti_grades.queue_sends(session, launched.platform_id)
    except Exception as error:  # noqa: BLE001 - the person is launched; the sync and the send come later
        session.rollback()
        log.warning("lti.after_launch_failed", reason=f"{type(error).__name__}: {error}"[:200])


def _reason(error: Exception) -> str:
    text = str(error).strip().rstrip(".") or type(error).__name__
    return text[0].lower() + text[1:]


def _hashed(platform: LtiPlatform, sub: str, length: int) -> str:
    return hashlib.sha256(f"{platform.id}:{sub}".encode()).hexdigest()[:length]


LEARNER_PREFIX = "lms-"  # every student made for an LMS learner has an external id starting with it


def learner_external_id(platform: LtiPlatform, sub: str) -> str:
    """The pseudonymous external id of a platform's learner: ``lms-<platform>-<hash of sub>``."""
    return f"{LEARNER_PREFIX}{platform.id}-{_hashed(platform, sub, 20)}"


def _course_owner(session: Session, platform: LtiPlatform) -> StaffUser:
    """Who owns a course's class until one of its instructors launches: a teacher row no one signs in as."""
    email = f"lms-{platform.id}-courses@lms.invalid"
    owner: StaffUser | None = session.scalar(select(StaffUser).where(StaffUser.email == email))
    return owner or accounts.add_launched_teacher(
        session, platform.school_id, email, f"{platform.name} (courses not yet opened by a teacher)"
    )


def _account(session: Session, platform: LtiPlatform, sub: str) -> LtiAccount | None:
    found: LtiAccount | None = session.scalar(
        select(LtiAccount).where(LtiAccount.platform_id == platform.id, LtiAccount.sub == sub)
    )
    return found


def _teacher(session: Session, platform: LtiPlatform, sub: str, name: str | None) -> StaffUser:
    """The teacher an instructor's ``sub`` is (made on their first launch)."""
    account = _account(session, platform, sub)
    if account is not None and account.staff_user_id is None:
        raise LaunchRefused("this LMS user launched as a learner before; a person is a student or a teacher")
    if account is None:
        teacher = accounts.add_launched_teacher(
            session,
            platform.school_id,
            f"lms-{platform.id}-{_hashed(platform, sub, 24)}@lms.invalid",
            name or f"Teacher from {platform.name}",
        )
        account = LtiAccount(platform_id=platform.id, sub=sub, staff_user_id=teacher.id)
        session.add(account)
    else:
        found = session.get(StaffUser, account.staff_user_id)
        assert found is not None
        teacher = found
        if name and teacher.name != name:
            teacher.name = name
    account.last_launch_at = utcnow()
    return teacher


def learner(session: Session, platform: LtiPlatform, sub: str) -> tuple[Student, LtiAccount]:
    """The student a learner's ``sub`` is, made when new (pseudonymous: no name or email), with the
    credential row their sessions name. In the caller's transaction (launches, class lists)."""
    account = _account(session, platform, sub)
    if account is not None and account.student_id is None:
        raise LaunchRefused(
            "this LMS user launched as an instructor before; a person is a student or a teacher"
        )
    if account is None:
        student = add_students(session, platform.school_id, [learner_external_id(platform, sub)])[0]
        accounts.add_launch_credential(session, student.id)
        account = LtiAccount(platform_id=platform.id, sub=sub, student_id=student.id)
        session.add(account)
        return student, account
    found = session.get(Student, account.student_id)
    assert found is not None
    return found, account


def _course(
    session: Session, platform: LtiPlatform, context_id: str, title: str, teacher: StaffUser | None
) -> tuple[LtiContext, SchoolClass]:
    """The course's context and class (made on its first launch); an instructor takes over a class still
    held by the placeholder owner."""
    context: LtiContext | None = session.scalar(
        select(LtiContext).where(LtiContext.platform_id == platform.id, LtiContext.context_id == context_id)
    )
    if context is None:
        klass = accounts.add_launched_class(session, teacher or _course_owner(session, platform), title)
        context = LtiContext(platform_id=platform.id, context_id=context_id, class_id=klass.id)
        session.add(context)
        session.flush()
        return context, klass
    found_class = session.get(SchoolClass, context.class_id)
    assert found_class is not None
    if found_class.archived_at is not None:
        # The school's decision stands over the LMS's: no new members, no class page to land on.
        raise Forbidden(
            f"This course's class {found_class.name!r} is archived in the tutor (a school admin closed it), "
            "so it takes no more launches."
        )
    if teacher is not None and found_class.teacher_id != teacher.id:
        owner = session.get(StaffUser, found_class.teacher_id)
        if owner is None or owner.email != f"lms-{platform.id}-courses@lms.invalid":
            raise Forbidden(
                "This course's class belongs to another teacher in the tutor: ask them or an admin "
                "(one teacher per LMS course for now)."
            )
        found_class.teacher_id = teacher.id  # the first instructor to launch takes the class over
    return context, found_class


def _admit(session: Session, platform: LtiPlatform, launch: Launch) -> Launched:
    now = utcnow()
    teacher: StaffUser | None = None
    student: Student | None = None
    if launch.role is LaunchRole.INSTRUCTOR:
        teacher = _teacher(session, platform, launch.sub, launch.name)
    else:
        student, account = learner(session, platform, launch.sub)
        account.last_launch_at = now
    context, klass = _course(session, platform, launch.context_id, launch.context_title, teacher)
    context.lineitems_url = launch.lineitems_url or context.lineitems_url
    context.context_memberships_url = launch.context_memberships_url or context.context_memberships_url
    if launch.ags_scopes:
        context.ags_scopes = list(launch.ags_scopes)
    link: LtiResourceLink | None = session.scalar(
        select(LtiResourceLink).where(
            LtiResourceLink.context_id == context.id,
            LtiResourceLink.resource_link_id == launch.resource_link_id,
        )
    )
    if link is None:
        link = LtiResourceLink(context_id=context.id, resource_link_id=launch.resource_link_id)
        session.add(link)
    link.lineitem_url = launch.lineitem_url or link.lineitem_url
    # Sent with every launch of a deep-linked link; none: an ordinary placement (the whole curriculum).
    link.target = str(launch.target) if launch.target is not None else None

    scores_due = False
    if student is not None:
        accounts.add_members(session, klass.id, [student.id])
        credential = session.get(StudentCredential, student.id) or accounts.add_launch_credential(
            session, student.id
        )
        signed = accounts.launched_session(accounts.student_principal(student), None, credential)
        if link.lineitem_url:
            from app.services.integration import lti_grades  # builds on this module

            session.flush()
            scores_due = lti_grades.open_score(session, link.id, student.id)
    else:
        assert teacher is not None
        signed = accounts.launched_session(accounts.staff_principal(teacher), teacher, None)
    session.flush()
    return Launched(
        signed,
        launch.role,
        klass.id,
        origin_of(platform.auth_login_url),
        target=link.target,
        context_id=context.id,
        platform_id=platform.id,
        scores_due=scores_due,
    )


def _admit_deep_link(session: Session, platform: LtiPlatform, request: DeepLinkRequest) -> Launched:
    """An instructor's deep linking request: their teacher account and the course's class as for a launch,
    and the request kept for the picker (services/integration/lti_deep_linking.py)."""
    from app.services.integration import lti_deep_linking  # builds on this module

    teacher = _teacher(session, platform, request.sub, request.name)
    context, klass = _course(session, platform, request.context_id, request.context_title, teacher)
    context.context_memberships_url = request.context_memberships_url or context.context_memberships_url
    token = lti_deep_linking.open_request(session, platform, context, teacher, request)
    signed = accounts.launched_session(accounts.staff_principal(teacher), teacher, None)
    session.flush()
    return Launched(
        signed,
        LaunchRole.INSTRUCTOR,
        klass.id,
        origin_of(platform.auth_login_url),
        deep_link=token,
        context_id=context.id,
        platform_id=platform.id,
    )
