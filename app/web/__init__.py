"""Server-rendered pages: sign-in for staff and students, classes, API keys, a student's home.

Views are thin: a form or the URL in, one service call, a template out. Who may
see what is decided by the same services the API uses.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from functools import wraps
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Flask,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask import session as cookie_session
from flask.typing import ResponseReturnValue
from flask_login import login_user, logout_user
from flask_wtf import FlaskForm
from flask_wtf.csrf import CSRFError

from app.domain.access import Action, Principal, Role, ensure_allowed
from app.domain.errors import Conflict
from app.domain.grading import InvalidAnswer
from app.extensions import api, csrf, db, is_api_request, limiter
from app.services import accounts, apps, bias, groups, reports, rosters, tutoring
from app.services import practice as practice_service
from app.services.groups import ORGANISATIONAL
from app.sessions import SessionUser, login_policy, signed_in
from app.web.charts import interval_chart, mastery_over_time
from app.web.exports import class_report_csv, student_export_response
from app.web.forms import (
    AnswerForm,
    ApiKeyForm,
    BiasCheckForm,
    ConfirmForm,
    PasswordChangeForm,
    PersonalizationForm,
    StaffLoginForm,
    StudentLoginForm,
)

bp = Blueprint("web", __name__)
View = TypeVar("View", bound=Callable[..., ResponseReturnValue])
SIGN_IN_FAILED = ("Sign-in failed: check what you typed. After several failed attempts, "
                  "sign-in is paused for a few minutes.")


def signed_in_page(sign_in: str = "web.login") -> Callable[[View], View]:
    """Signed-out visitors go to the sign-in page; the view gets the principal.

    What the principal may do there is decided by the services it calls (403/404).
    """

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            principal = signed_in()
            if principal is None:
                target = request.full_path.rstrip("?") if request.method == "GET" else request.referrer
                return redirect(url_for(sign_in, next=_same_site_path(target)),
                                code=302 if request.method == "GET" else 303)
            return view(principal, *args, **kwargs)

        return cast(View, guarded)

    return decorate


def _same_site_path(target: str | None) -> str | None:
    """A path on this site to come back to after signing in, or None."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.netloc and parts.netloc != request.host:
        return None
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _login_limit() -> str:
    return str(current_app.config["RATELIMIT_LOGIN"])


def _safe_next(default: str) -> str:
    target = request.args.get("next", "")
    # Only paths on this site: no scheme, no host, no protocol-relative //host.
    if target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def _home_of(principal: Principal) -> str:
    return url_for("web.practice") if principal.role is Role.STUDENT else url_for("web.classes")


@bp.get("/")
def home() -> ResponseReturnValue:
    principal = signed_in()
    return redirect(_home_of(principal) if principal else url_for("web.login"))


SignIn = tuple[Principal, str]  # the principal and its session id


def _sign_in_page(form: FlaskForm, verify: Callable[[], SignIn | None], template: str) -> ResponseReturnValue:
    """GET shows the form; a POST signs in (302), or re-shows it: 401 wrong credentials, 400 bad form."""
    principal = signed_in()
    if principal is not None:
        return redirect(_home_of(principal))
    status = 200
    if form.validate_on_submit():
        found = verify()
        if found is not None:
            _start_session(SessionUser(*found))
            return redirect(_safe_next(_home_of(found[0])))
        form.form_errors.append(SIGN_IN_FAILED)
        status = 401
    elif request.method == "POST":
        status = 400
    return render_template(template, form=form), status


# Sign-in forms check their CSRF token as a form field (FlaskForm), not in CSRFProtect's before-request
# hook: that hook runs before the rate limit, so refused posts would never count against it.
@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@csrf.exempt
def login() -> ResponseReturnValue:
    """Teachers and admins: email and password."""
    form = StaffLoginForm()

    def verify() -> SignIn | None:
        user = accounts.verify_staff_login(db.session(), form.email.data, form.password.data, login_policy())
        return (accounts.staff_principal(user), accounts.staff_session_id(user)) if user else None

    return _sign_in_page(form, verify, "login.html")


@bp.route("/student-login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@csrf.exempt
def student_login() -> ResponseReturnValue:
    """Students: their class code and the personal code their teacher gave them."""
    form = StudentLoginForm()

    def verify() -> SignIn | None:
        found = accounts.verify_student_login(
            db.session(), form.join_code.data, form.personal_code.data, login_policy())
        if found is None:
            return None
        student, version = found
        return accounts.student_principal(student), accounts.student_session_id(student.id, version)

    return _sign_in_page(form, verify, "student_login.html")


def _start_session(user: SessionUser) -> None:
    logout_user()
    login_user(user)
    cookie_session.permanent = True


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    logout_user()
    return redirect(url_for("web.login"))


@bp.route("/account/password", methods=["GET", "POST"])
@signed_in_page()
def change_password(principal: Principal) -> ResponseReturnValue:
    ensure_allowed(principal, Action.CHANGE_PASSWORD)
    form = PasswordChangeForm()
    status = 200
    if form.validate_on_submit():
        try:
            user = accounts.change_password(db.session(), principal, form.current.data, form.new.data)
        except accounts.AccountError as error:
            form.form_errors.append(str(error))
            status = 400
        else:
            # This session continues under the new version; every other one ends.
            _start_session(SessionUser(principal, accounts.staff_session_id(user)))
            flash("Your password was changed. Other sessions were signed out.")
            return redirect(url_for("web.classes"))
    elif request.method == "POST":
        status = 400
    return render_template("password.html", form=form), status


@bp.get("/classes")
@signed_in_page()
def classes(principal: Principal) -> ResponseReturnValue:
    summaries = rosters.class_summaries(db.session(), principal)
    return render_template("classes.html", classes=summaries, principal=principal)


@bp.get("/classes/<id:class_id>")
@signed_in_page()
def class_page(principal: Principal, class_id: int) -> ResponseReturnValue:
    """The class dashboard: heatmap of students × skills, who needs help, where the class is stuck."""
    since, until = _window()
    result = reports.class_report(db.session(), principal, class_id, since=since, until=until)
    return render_template("class.html", klass=result.klass, report=result.report,
                           since=request.args.get("since", ""), until=request.args.get("until", ""))


@bp.get("/classes/<id:class_id>/report.csv")
@signed_in_page()
def class_csv(principal: Principal, class_id: int) -> ResponseReturnValue:
    since, until = _window()
    result = reports.class_report(db.session(), principal, class_id, since=since, until=until)
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", result.klass.name).strip("-") or "class"
    return Response(class_report_csv(result.report), mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="{name}-report.csv"'})


@bp.get("/students/<student_id>")
@signed_in_page()
def student_page(principal: Principal, student_id: str) -> ResponseReturnValue:
    """One student, as their teacher sees them: the report, mastery over time, and why each exercise."""
    student, report = reports.student_report(db.session(), principal, student_id)
    history = reports.mastery_history(db.session(), principal, student_id)
    names = {s.skill_id: s.name for s in report.skills}
    chart = mastery_over_time([(p.at, p.skill_id, p.p_mastery) for p in history], names,
                              threshold=reports.report_config().mastery_threshold)
    why = tutoring.recommendation_history(db.session(), principal, student_id, limit=20)
    return render_template("student.html", student=student, report=report, chart=chart, why=why,
                           names=names)


def _window() -> tuple[datetime | None, datetime | None]:
    """``since`` / ``until`` from the query string as dates (whole days, UTC); 400 when malformed."""
    bounds: list[datetime | None] = []
    for name, end_of_day in (("since", False), ("until", True)):
        raw = request.args.get(name, "").strip()
        if not raw:
            bounds.append(None)
            continue
        try:
            day = date.fromisoformat(raw)
        except ValueError:
            abort(400, f"'{name}' must be a date like 2026-09-01, not {raw!r}.")
        start = datetime.combine(day, time.min, tzinfo=UTC)
        bounds.append(start + timedelta(days=1) - timedelta(microseconds=1) if end_of_day else start)
    since, until = bounds
    if since and until and since > until:
        abort(400, "'since' must not be after 'until'.")
    return since, until


@bp.get("/me")
@signed_in_page(sign_in="web.student_login")
def me(principal: Principal) -> ResponseReturnValue:
    if principal.role is not Role.STUDENT:
        abort(403, "This page is for students.")
    student, report = reports.student_report(db.session(), principal, principal.id)
    upcoming = tutoring.next_exercise(db.session(), principal, principal.id)
    names = {s.skill_id: s.name for s in report.skills}
    return render_template("me.html", principal=principal, report=report, student=student,
                           upcoming=upcoming, names=names)


def _student_only(principal: Principal) -> None:
    if principal.role is not Role.STUDENT:
        abort(403, "This page is for students.")


@bp.get("/practice")
@signed_in_page(sign_in="web.student_login")
def practice(principal: Principal) -> ResponseReturnValue:
    """The next exercise, why it was chosen, hints on request."""
    _student_only(principal)
    item = practice_service.current_item(db.session(), principal)
    return render_template("practice.html", item=item, form=AnswerForm(), hint_form=ConfirmForm())


@bp.post("/practice/<id:recommendation_id>/hint")
@signed_in_page(sign_in="web.student_login")
def practice_hint(principal: Principal, recommendation_id: int) -> ResponseReturnValue:
    _student_only(principal)
    if not ConfirmForm().validate_on_submit():
        abort(400, "This page was open too long: reload it and try again.")
    practice_service.reveal_hint(db.session(), principal, recommendation_id)
    return redirect(url_for("web.practice"), code=303)


@bp.post("/practice/<id:recommendation_id>/answer")
@signed_in_page(sign_in="web.student_login")
def practice_answer(principal: Principal, recommendation_id: int) -> ResponseReturnValue:
    """Record the answer (once, however often it is sent) and show its result on its own page."""
    _student_only(principal)
    form = AnswerForm()
    if not form.validate_on_submit():
        flash("Type or choose an answer first.")
        return redirect(url_for("web.practice"), code=303)
    try:
        recorded, _ = practice_service.answer(db.session(), principal, recommendation_id,
                                              form.answer.data.strip())
    except InvalidAnswer as error:
        flash(str(error))
        return redirect(url_for("web.practice"), code=303)
    return redirect(url_for("web.practice_result", response_id=recorded.id), code=303)


@bp.get("/practice/answers/<id:response_id>")
@signed_in_page(sign_in="web.student_login")
def practice_result(principal: Principal, response_id: int) -> ResponseReturnValue:
    _student_only(principal)
    shown = practice_service.answer_result(db.session(), principal, response_id)
    return render_template("practice_result.html", shown=shown)


@bp.get("/me/data")
@signed_in_page(sign_in="web.student_login")
def my_data(principal: Principal) -> ResponseReturnValue:
    """Download everything stored; switch personalization off or on."""
    _student_only(principal)
    student = tutoring.get_student(db.session(), principal, principal.id)
    form = PersonalizationForm(personalized="off" if student.personalized else "on")
    return render_template("my_data.html", student=student, personalization_form=form)


@bp.get("/me/export")
@signed_in_page(sign_in="web.student_login")
def my_export(principal: Principal) -> ResponseReturnValue:
    """A student downloads everything stored about them (JSON, or ?format=csv for a ZIP of CSV files)."""
    _student_only(principal)
    return student_export_response(principal, principal.id, _export_format())


@bp.post("/me/personalization")
@signed_in_page(sign_in="web.student_login")
def my_personalization(principal: Principal) -> ResponseReturnValue:
    """A student switches personalization off (fixed order) or on again."""
    _student_only(principal)
    form = PersonalizationForm()
    if not form.validate_on_submit():
        abort(400, "Choose on or off.")
    enabled = form.personalized.data == "on"
    tutoring.set_personalization(db.session(), principal, principal.id, enabled=enabled)
    flash("Personalization is on: exercises are chosen for you." if enabled else
          "Personalization is off: exercises come in the fixed order, and nothing about you is used to "
          "choose them.")
    return redirect(url_for("web.my_data"))


@bp.get("/students/<student_id>/export")
@signed_in_page()
def student_export(principal: Principal, student_id: str) -> ResponseReturnValue:
    """A teacher or admin downloads a student's data (for a parent's request, say); it is logged."""
    return student_export_response(principal, student_id, _export_format())


def _export_format() -> str:
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        abort(400, "format must be json or csv.")
    return fmt


@bp.route("/bias-checks", methods=["GET", "POST"])
@signed_in_page()
def bias_checks(principal: Principal) -> ResponseReturnValue:
    """The school's bias checks; admins run a new one here."""
    reports_list = bias.list_reports(db.session(), principal)
    form = BiasCheckForm()
    form.attribute.choices = [(a, a) for a in (*ORGANISATIONAL, *sorted(groups.allowed_attributes()))]
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400, "Choose an attribute.")
        stored = bias.run_bias_check(db.session(), principal, form.attribute.data)
        return redirect(url_for("web.bias_check", report_id=stored.id), code=303)
    return render_template("bias_checks.html", reports=reports_list, form=form,
                           can_run=principal.role is Role.ADMIN)


@bp.get("/bias-checks/<id:report_id>")
@signed_in_page()
def bias_check(principal: Principal, report_id: int) -> ResponseReturnValue:
    """A bias check in plain words, with each metric's per-group estimates and intervals."""
    stored = bias.get_report(db.session(), principal, report_id)
    report = stored.report
    charts = []
    for metric, text in report["metrics"].items():
        rows = [(g["group"], g["metrics"][metric]["value"], g["metrics"][metric]["low"],
                 g["metrics"][metric]["high"]) for g in report["groups"]
                if g["status"] != "suppressed" and metric in g["metrics"]
                and g["metrics"][metric]["value"] is not None]
        if rows:
            reference = next((r[1] for r in rows if r[0] == report["reference"]), None)
            charts.append((text, interval_chart(text, rows, reference=reference)))
    return render_template("bias_check.html", stored=stored, report=report, charts=charts)


@bp.route("/admin/api-keys", methods=["GET", "POST"])
@signed_in_page()
def api_keys(principal: Principal) -> ResponseReturnValue:
    keys = apps.list_api_keys(db.session(), principal)
    form = ApiKeyForm()
    issued = None
    status = 200
    if form.validate_on_submit():
        try:
            issued = apps.issue_api_key(db.session(), principal, form.app_name.data)
        except (accounts.AccountError, Conflict) as error:
            form.app_name.errors.append(str(error))
            status = 400
        else:
            status = 201
            form = ApiKeyForm(formdata=None)
            keys = apps.list_api_keys(db.session(), principal)
    elif request.method == "POST":
        status = 400
    return render_template("api_keys.html", form=form, keys=keys, issued=issued,
                           revoke_form=ConfirmForm()), status


@bp.post("/admin/api-keys/<prefix>/revoke")
@signed_in_page()
def revoke_api_key(principal: Principal, prefix: str) -> ResponseReturnValue:
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired: reload the page and try again.")
    key = apps.revoke_api_key(db.session(), prefix, by=principal)
    flash(f"Key {key.prefix} is revoked: apps using it are refused from now on.")
    return redirect(url_for("web.api_keys"))


@bp.app_context_processor
def _template_globals() -> dict[str, Any]:
    return {"signed_in": signed_in(), "logout_form": ConfirmForm, "Role": Role}


def _csrf_failed(error: CSRFError) -> ResponseReturnValue:
    """A form sent without a valid token: after the session ended, sign in again; else reload."""
    if is_api_request():
        answer: ResponseReturnValue = api.handle_http_exception(error)
        return answer
    if signed_in() is None:
        student_pages = request.path.startswith(("/practice", "/me"))
        return redirect(url_for("web.student_login" if student_pages else "web.login",
                                next=_same_site_path(request.referrer) or "/"), code=303)
    return render_template("error.html", code=400, title="Please reload the page",
                           message="This page was open too long, or was sent twice. Reload it and try "
                                   "again."), 400


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.register_error_handler(CSRFError, _csrf_failed)
