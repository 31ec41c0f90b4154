"""``lti``: the LTI 1.3 tool's endpoints an LMS calls: the key set (/.well-known/jwks.json), the OIDC login
(/lti/login) and the launch (/lti/launch). A launch signs the person in (a learner lands on /practice, an
instructor on the course's class); a refused one is a 4xx page naming the reason, and writes nothing.

A session started by a launch works inside the LMS's iframe: its pages may be framed by that platform only
(``frame-ancestors`` names its origin; the rest of the content security policy is the app's own), and its
session cookie is ``SameSite=None; Secure; Partitioned`` so the browser sends it inside the frame (every other
session's stays ``SameSite=Lax``). Forms and API writes still need their CSRF tokens.
"""

from __future__ import annotations

from typing import Any, cast

from flask import Blueprint, Flask, Request, Response, jsonify, redirect, url_for
from flask import session as cookie_session
from flask.blueprints import BlueprintSetupState
from flask.sessions import SecureCookieSessionInterface, SessionInterface, SessionMixin
from flask.typing import ResponseReturnValue

from app.domain.lti import LaunchRole, with_frame_ancestors
from app.extensions import csrf, db
from app.services.integration import lti
from app.sessions import start_session

bp = Blueprint("lti", __name__)
# In the signed session cookie: the launching platform's origin, with the session it was launched into (a
# later sign-in in the same browser, by password or from another LMS, is not framed by it).
FRAME_ORIGIN = "lti_frame_origin"
USER_KEY = "_user_id"  # Flask-Login's key of the signed-in session id


def _launched_into(session: SessionMixin) -> str | None:
    """The platform origin that may frame this session, when it was started by a launch (and not replaced by
    another sign-in since; after sign-out it stays, so the frame's cookie is replaced, not left behind)."""
    framed = session.get(FRAME_ORIGIN)
    if not (isinstance(framed, list) and len(framed) == 2 and isinstance(framed[0], str)):
        return None
    user = session.get(USER_KEY)
    return framed[0] if user is None or user == framed[1] else None


class _FramedSessionCookie(SecureCookieSessionInterface):
    """The same signed cookie, sent inside a cross-site frame: SameSite=None; Secure; Partitioned (CHIPS,
    keyed by the LMS's site, so browsers that block third-party cookies keep it)."""

    def get_cookie_samesite(self, app: Flask) -> str:
        return "None"

    def get_cookie_secure(self, app: Flask) -> bool:
        return True

    def get_cookie_partitioned(self, app: Flask) -> bool:
        return True


class _LaunchedSessions(SessionInterface):
    """The app's session interface; a launched session's cookie is saved as a framed one."""

    def __init__(self, inner: SessionInterface) -> None:
        self.inner = inner
        self.framed = _FramedSessionCookie()

    def open_session(self, app: Flask, request: Request) -> SessionMixin | None:
        return self.inner.open_session(app, request)

    def save_session(self, app: Flask, session: SessionMixin, response: Any) -> None:
        chosen = self.framed if _launched_into(session) else self.inner
        chosen.save_session(app, session, response)


@bp.record_once
def _install_sessions(state: BlueprintSetupState) -> None:
    app = cast(Flask, state.app)
    app.session_interface = _LaunchedSessions(app.session_interface)


@bp.get("/.well-known/jwks.json")
def jwks() -> ResponseReturnValue:
    """The tool's public keys (every unretired one), for platforms verifying what the tool signs."""
    response = jsonify(lti.key_set(db.session()))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


# The platform's pages post here (cross-site): the login is checked by its issuer and client id, the launch by
# the id_token and the state cookie; a CSRF token cannot exist on either.
@bp.route("/lti/login", methods=["GET", "POST"])
@csrf.exempt
def login() -> ResponseReturnValue:
    """Third-party initiated login: redirect to the platform's authentication URL."""
    response: Response = lti.start_login(db.session(), url_for("lti.launch", _external=True))
    return response


@bp.post("/lti/launch")
@csrf.exempt
def launch() -> ResponseReturnValue:
    launched = lti.complete_launch(db.session())
    start_session(launched.signed)
    cookie_session.pop(FRAME_ORIGIN, None)
    if launched.frame_origin:
        cookie_session[FRAME_ORIGIN] = [launched.frame_origin, launched.signed.session_id]
    if launched.role is LaunchRole.INSTRUCTOR:
        return redirect(url_for("teacher.class_page", class_id=launched.class_id), code=303)
    return redirect(url_for("student.practice"), code=303)


@bp.after_app_request
def _framed_by_the_platform(response: Response) -> Response:
    # Runs after the app's security headers (registered before them): only a launched session changes them.
    policy = response.headers.get("Content-Security-Policy")
    framed = cookie_session.get(FRAME_ORIGIN)
    if not (policy and isinstance(framed, list) and len(framed) == 2):
        return response
    origin, launched_session = framed
    if launched_session == cookie_session.get(USER_KEY):  # signed in, into the launched session
        response.headers["Content-Security-Policy"] = with_frame_ancestors(policy, [origin])
        response.headers.pop("X-Frame-Options", None)  # it cannot name an origin; frame-ancestors does
    return response
