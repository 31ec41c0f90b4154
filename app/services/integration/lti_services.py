"""Calling a platform's LTI Advantage services (AGS scores, NRPS class lists) with pylti1p3next: the
registration the library signs with, its service connector (an OAuth 2 client-credentials token got with a
JWT the tool signs, then bearer requests), and what a failure means for the caller (try again later, or not).

No protocol is written here: the token request, its signed assertion, the score and membership requests are
the library's (``ServiceConnector``, ``AssignmentsGradesService``, ``NamesRolesProvisioningService``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

import requests
from cryptography.hazmat.primitives import serialization
from pylti1p3.exception import LtiException, LtiServiceException
from pylti1p3.registration import Registration
from pylti1p3.service_connector import ServiceConnector
from sqlalchemy.orm import Session

from app.domain.errors import DomainError
from app.domain.lti_advantage import is_transient
from app.models import LtiPlatform
from app.services.integration.lti import signing_key

SERVICE_TIMEOUT = 10.0  # seconds for each call to a platform: a worker never waits longer on the LMS
USER_AGENT = "adaptive-tutor-lti"
T = TypeVar("T")


class PlatformUnavailable(DomainError):
    """A call to the platform failed; ``transient``: it may work later (no answer, a server error, too many
    requests), else the platform refused the request itself."""

    def __init__(self, message: str, *, transient: bool, status: int | None) -> None:
        super().__init__(message)
        self.transient = transient
        self.status = status


class _TimedSession(requests.Session):
    """The library's HTTP session, with a timeout on every request."""

    def __init__(self) -> None:
        super().__init__()
        self.headers["User-Agent"] = USER_AGENT

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", SERVICE_TIMEOUT)
        return super().request(*args, **kwargs)


class Connector(ServiceConnector):
    """The library's connector with an access-token cache per process, keyed by platform (issuer, client id,
    token URL) and scopes; tokens are dropped 30 s before they expire, or at once when the platform says it
    no longer takes one (``forget``)."""

    _tokens: ClassVar[dict[str, tuple[str, float]]] = {}
    _lock: ClassVar[threading.Lock] = threading.Lock()

    def _scope_key(self, scopes: Any) -> str:
        registration = self._registration
        who = (
            f"{registration.get_issuer()}|{registration.get_client_id()}|{registration.get_auth_token_url()}"
        )
        return who + "|" + " ".join(sorted(scopes))

    def _get_cached_access_token(self, scope_key: str) -> str | None:
        with self._lock:
            found = self._tokens.get(scope_key)
        if found is not None and found[1] > time.monotonic():
            return found[0]
        return None

    def _cache_access_token(self, scope_key: str, access_token: str, expires_in: float) -> None:
        lifetime = float(expires_in or 0) - 30.0
        if lifetime > 0:
            with self._lock:
                self._tokens[scope_key] = (access_token, time.monotonic() + lifetime)

    def forget(self) -> None:
        prefix = self._scope_key([])  # "issuer|client|token URL|"
        with self._lock:
            for key in [k for k in self._tokens if k.startswith(prefix)]:
                del self._tokens[key]


@dataclass(frozen=True)
class PlatformClient:
    """What a service call needs of one platform, read before the call (no transaction stays open while the
    platform answers)."""

    platform_id: int
    name: str
    connector: Connector

    def call(self, what: str, request: Callable[[], T]) -> T:
        """``request`` (a library call), with one retry on 401 after a fresh token (a cached one the platform
        dropped); a failure raises PlatformUnavailable naming ``what``."""
        for attempt in (1, 2):
            try:
                return request()
            except LtiServiceException as error:
                status = error.response.status_code
                if status == 401 and attempt == 1:
                    self.connector.forget()
                    continue
                raise PlatformUnavailable(
                    f"{self.name} refused to {what}: HTTP {status}",
                    transient=is_transient(status),
                    status=status,
                ) from None
            except requests.RequestException as error:
                raise PlatformUnavailable(
                    f"{self.name} did not answer when asked to {what} ({type(error).__name__})",
                    transient=True,
                    status=None,
                ) from None
            except (LtiException, KeyError, TypeError, ValueError) as error:
                raise PlatformUnavailable(
                    f"{self.name}'s answer to {what} is not what LTI expects: {error}"[:280],
                    transient=False,
                    status=None,
                ) from None
        raise AssertionError("unreachable")  # pragma: no cover


def public_pem(private_pem: str) -> str:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def registration_of(session: Session, platform: LtiPlatform) -> Registration:
    """The library's registration for messages and calls the tool signs: the platform's issuer, client id
    and token URL, the tool's current signing key (its public half gives the ``kid`` the platform finds it
    by in /.well-known/jwks.json). A lookup."""
    key = signing_key(session)
    if key is None:
        raise DomainError("the tool has no signing key yet: run 'flask lti rotate-key'")
    return (
        Registration()
        .set_issuer(platform.issuer)
        .set_client_id(platform.client_id)
        .set_auth_login_url(platform.auth_login_url)
        .set_auth_token_url(platform.auth_token_url)
        .set_tool_private_key(key.private_key_pem)
        .set_tool_public_key(public_pem(key.private_key_pem))
    )


def client_of(session: Session, platform: LtiPlatform) -> PlatformClient:
    """A client for the platform's services (a lookup: reads the signing key)."""
    connector = Connector(registration_of(session, platform), _TimedSession())
    return PlatformClient(platform.id, platform.name, connector)


def only(granted: Sequence[str] | None, wanted: str) -> list[str]:
    """The one scope a call needs, if the platform granted it (the token asks for no more)."""
    return [wanted] if granted and wanted in granted else []
