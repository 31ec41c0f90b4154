"""``lti``: the LTI 1.3 tool's endpoints an LMS calls: the key set (/.well-known/jwks.json), the OIDC login
(/lti/login) and the launch (/lti/launch). A launch signs the person in (a learner lands on /practice, kept to
what the link practises; an instructor on the course's class, or, adding the tutor to the course, on the
deep linking picker /lti/deep-links/<token>); a refused one is a 4xx page naming the reason, and writes
nothing. The class page's LMS buttons (pull the class list, send the scores) post here too.

A session started by a launch works inside the LMS's iframe: its pages may be framed by that platform only
(``frame-ancestors`` names its origin; the rest of the content security policy is the app's own), and its
session cookie is ``SameSite=None; Secure; Partitioned`` so the browser sends it inside the frame (every other
session's stays ``SameSite=Lax``). Forms and API writes still need their CSRF tokens.
"""

from __future__ import annotations

from typing import Any, cast

from flask import (
    Blueprint,
    Flask,
    Request,
    Response,
    abort,
    flash,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as cookie_session
from flask.blueprints import BlueprintSetupState
from flask.sessions import SecureCookieSessionInterface, SessionInterface, SessionMixin
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import RadioField
from wtforms.validators import DataRequired

from app.domain.access import Principal
from app.domain.errors import InvalidInput
from app.domain.lti import LaunchRole, with_form_action, with_frame_ancestors
from app.extensions import csrf, db
from app.services.integration import lti, lti_deep_linking, lti_grades, lti_roster
from app.sessions import start_session
from app.web.forms import ConfirmForm
from app.web.pages import signed_in_page

bp = Blueprint("lti", __name__)
# In the signed session cookie: the launching platform's origin, with the session it was launched into (a
# later sign-in in the same browser, by password or from another LMS, is not framed by it).
FRAME_ORIGIN = "lti_frame_origin"
# ... and what the launched link practises (its target), bound the same way.
FOCUS = "lti_focus"
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
    cookie_session.pop(FOCUS, None)
    if launched.frame_origin:
        cookie_session[FRAME_ORIGIN] = [launched.frame_origin, launched.signed.session_id]
    if launched.deep_link is not None:
        return redirect(url_for("lti.deep_link", token=launched.deep_link), code=303)
    if launched.role is LaunchRole.INSTRUCTOR:
        return redirect(url_for("teacher.class_page", class_id=launched.class_id), code=303)
    if launched.target:
        cookie_session[FOCUS] = [launched.target, launched.signed.session_id]
    return redirect(url_for("student.practice"), code=303)


def launched_focus() -> lti_deep_linking.Focus | None:
    """What practice keeps to in this session: the target of the link it was launched from (a later
    sign-in in the same browser has none)."""
    bound = cookie_session.get(FOCUS)
    if not (isinstance(bound, list) and len(bound) == 2 and bound[1] == cookie_session.get(USER_KEY)):
        return None
    return lti_deep_linking.focus_of(db.session(), str(bound[0]))


class DeepLinkForm(FlaskForm):
    target = RadioField("What the link practises and scores", validators=[DataRequired()], choices=[])


@bp.route("/lti/deep-links/<token>", methods=["GET", "POST"])
@signed_in_page()
def deep_link(principal: Principal, token: str) -> ResponseReturnValue:
    """The instructor picks what the course's link practises; the answer goes back to the LMS, signed."""
    page = lti_deep_linking.request_page(db.session(), principal, token)
    form = DeepLinkForm()
    form.target.choices = [(page.whole.target, page.whole.title)] + [
        (choice.target, choice.title)
        for unit in page.units
        for choice in ((unit.unit,) if unit.unit.target else ()) + unit.skills
    ]
    status = 200
    if form.validate_on_submit():
        try:
            answer = lti_deep_linking.answer_request(
                db.session(),
                principal,
                token,
                form.target.data or "",
                launch_url=url_for("lti.launch", _external=True),
            )
        except InvalidInput as error:
            form.form_errors.append(str(error))
            status = 400
        else:
            from app import CONTENT_SECURITY_POLICY  # the app's policy (app/__init__.py imports this module)

            response = make_response(render_template("lti_deep_link_return.html", answer=answer))
            # The answer is a form the browser posts to the platform: this page's policy allows that one
            # origin as a form's target (every other page keeps form-action 'self').
            response.headers["Content-Security-Policy"] = with_form_action(
                CONTENT_SECURITY_POLICY, [answer.return_origin]
            )
            return response
    elif request.method == "POST":
        status = 400
    return render_template("lti_deep_link.html", page=page, form=form), status


@bp.post("/classes/<id:class_id>/lms/class-list")
@signed_in_page()
def sync_class_list(principal: Principal, class_id: int) -> ResponseReturnValue:
    """The class's teacher pulls the class list from the LMS now (a job; the page shows the last sync)."""
    if not ConfirmForm().validate_on_submit():
        abort(400, "This page was open too long: reload it and try again.")
    lti_roster.queue_sync(db.session(), principal, class_id)
    flash("The class list is being read from the LMS: reload this page in a moment to see it.")
    return redirect(url_for("teacher.class_page", class_id=class_id), code=303)


@bp.post("/classes/<id:class_id>/lms/scores")
@signed_in_page()
def send_scores(principal: Principal, class_id: int) -> ResponseReturnValue:
    """The class's teacher sends its scores to the LMS gradebook now (those it has already are not sent)."""
    if not ConfirmForm().validate_on_submit():
        abort(400, "This page was open too long: reload it and try again.")
    checked = lti_grades.resend_class(db.session(), principal, class_id)
    flash(
        f"{checked} score{'s' if checked != 1 else ''} will be checked and sent to the LMS where it changed."
        if checked
        else "No learner has opened a graded link of this course yet: there is no score to send."
    )
    return redirect(url_for("teacher.class_page", class_id=class_id), code=303)


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
