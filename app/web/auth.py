"""Signing in and out, and changing the password: staff by email and password, students by codes.

Sign-in posts are throttled in the database (per client address, and per address and account,
``services/people/throttle.py``), so the limits hold across every worker; password hashing takes one of
a few slots per host, so a flood of sign-ins is answered 429 at once instead of occupying every
worker.
"""

from __future__ import annotations

from collections.abc import Callable

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError

from app.domain.access import Action, Principal, ensure_allowed
from app.errors import is_api_request, render_error
from app.extensions import api, csrf, db
from app.services.people import accounts, throttle
from app.services.people.throttle import SignInPaused
from app.sessions import end_session, hash_slots, login_policy, signed_in, start_session
from app.web.forms import PasswordChangeForm, StaffLoginForm, StudentLoginForm
from app.web.pages import home_of, signed_in_page
from app.web.redirects import safe_next_path

bp = Blueprint("auth", __name__)
SIGN_IN_FAILED = (
    "Sign-in failed: check what you typed. After several failed attempts, "
    "sign-in is paused for a few minutes."
)


@bp.get("/")
def home() -> ResponseReturnValue:
    principal = signed_in()
    return redirect(home_of(principal) if principal else url_for("auth.login"))


def _client_address() -> str:
    return request.remote_addr or ""  # ProxyFix has put the client's here when PROXY_COUNT is set


def _sign_in_page(
    form: FlaskForm, sign_in: Callable[[], accounts.SignedIn | None], template: str, kind: str
) -> ResponseReturnValue:
    """GET shows the form; a POST signs in (302), or shows it again: 401 wrong credentials, 400 a form
    that is not valid (a CSRF token missing, say), 429 paused (with Retry-After)."""
    principal = signed_in()
    if principal is not None:
        return redirect(home_of(principal))
    if request.method != "POST":
        return render_template(template, form=form)
    try:
        if not form.validate_on_submit():
            throttle.admit(db.session(), login_policy(), _client_address(), None)  # counts as a failure
            accounts.sign_in_failed(kind, "invalid_form", None)
            return render_template(template, form=form), 400
        signed = sign_in()
    except SignInPaused as paused:
        form.form_errors.append(str(paused))
        return render_template(template, form=form), 429, {"Retry-After": str(paused.retry_after)}
    if signed is None:
        form.form_errors.append(SIGN_IN_FAILED)
        return render_template(template, form=form), 401
    start_session(signed)
    return redirect(safe_next_path(request.args.get("next")) or home_of(signed.principal))


# Sign-in forms check their CSRF token as a form field (FlaskForm), not in CSRFProtect's before-request
# hook, so that refused posts still count against the address's limit.
@bp.route("/login", methods=["GET", "POST"])
@csrf.exempt
def login() -> ResponseReturnValue:
    """Teachers and admins: email and password."""
    form = StaffLoginForm()
    return _sign_in_page(
        form,
        lambda: accounts.sign_in_staff(
            db.session(),
            form.email.data,
            form.password.data,
            address=_client_address(),
            policy=login_policy(),
            slots=hash_slots(),
        ),
        "login.html",
        "staff",
    )


@bp.route("/student-login", methods=["GET", "POST"])
@csrf.exempt
def student_login() -> ResponseReturnValue:
    """Students: their class code and the personal code their teacher gave them."""
    form = StudentLoginForm()
    return _sign_in_page(
        form,
        lambda: accounts.sign_in_student(
            db.session(),
            form.join_code.data,
            form.personal_code.data,
            address=_client_address(),
            policy=login_policy(),
            slots=hash_slots(),
        ),
        "student_login.html",
        "student",
    )


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """Ends the session server-side: a copy of the cookie is worthless afterwards."""
    end_session()
    return redirect(url_for("auth.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@signed_in_page()
def change_password(principal: Principal) -> ResponseReturnValue:
    ensure_allowed(principal, Action.CHANGE_PASSWORD)
    form = PasswordChangeForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = accounts.change_password(
                db.session(), principal, form.current.data, form.new.data, slots=hash_slots()
            )
        except SignInPaused as paused:
            form.form_errors.append(str(paused))
            return render_template("password.html", form=form), 429, {"Retry-After": str(paused.retry_after)}
        except accounts.AccountError as error:
            form.form_errors.append(str(error))
            status = 400
        else:
            # This session continues under the new version; every other one ends.
            start_session(accounts.SignedIn(principal, accounts.staff_session_id(user)))
            flash("Your password was changed. Other sessions were signed out.")
            return redirect(url_for("teacher.classes"))
    elif request.method == "POST":
        status = 400
    return render_template("password.html", form=form), status


def csrf_failed(error: CSRFError) -> ResponseReturnValue:
    """A form sent without a valid token: after the session ended, sign in again; else reload."""
    if is_api_request():
        answer: ResponseReturnValue = api.handle_http_exception(error)
        return answer
    if signed_in() is None:
        student_pages = request.path.startswith(("/practice", "/me"))
        return redirect(
            url_for(
                "auth.student_login" if student_pages else "auth.login",
                next=safe_next_path(request.referrer) or "/",
            ),
            code=303,
        )
    return render_error(
        400,
        "This page was open too long, or was sent twice. Reload it and try again.",
        title="Please reload the page",
    )
