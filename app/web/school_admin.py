"""``school_admin``: the school's administration pages for its admins (/admin): teachers, classes, rosters
(a CSV previewed, then enrolled), new class and personal codes with printable code slips, the change log;
links to API keys, the LMS registration, the OneRoster import and the jobs. Every change goes through
``services/people/school_admin.py``, which records it.

As on the OneRoster page, a roster travels back with the confirmation form (base64, with its SHA-256 as
previewed), so nothing is stored before the admin confirms; the confirmation reads it all again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import BooleanField, HiddenField, SelectField, StringField
from wtforms.validators import AnyOf, DataRequired, Length

from app.domain.access import Action, Principal, ensure_allowed
from app.domain.errors import Conflict
from app.extensions import db
from app.services.people import school_admin
from app.services.people.accounts import AccountError
from app.web.forms import ConfirmForm
from app.web.pages import signed_in_page

bp = Blueprint("school_admin", __name__)
MAX_ROSTER_BYTES = 1024 * 1024


class TeacherForm(FlaskForm):
    name = StringField(
        "Name (shown to colleagues and students)", validators=[DataRequired(), Length(max=200)]
    )
    email = StringField("Email (they sign in with it)", validators=[DataRequired(), Length(max=254)])
    admin = BooleanField("A school admin (manages teachers, classes, API keys)")


class RoleForm(FlaskForm):
    admin = HiddenField(validators=[AnyOf(["on", "off"])])


class ClassForm(FlaskForm):
    name = StringField("Class name", validators=[DataRequired(), Length(max=200)])
    teacher = SelectField("Teacher", coerce=int)


class AssignForm(FlaskForm):
    teacher = SelectField("Teacher", coerce=int)


class RosterUploadForm(FlaskForm):
    roster = FileField("Roster CSV (a column external_id)", validators=[FileRequired("Choose the CSV file.")])
    reissue = BooleanField("Issue new personal codes to students who already have one")


class RosterConfirmForm(FlaskForm):
    content = HiddenField(validators=[DataRequired(), Length(max=2 * MAX_ROSTER_BYTES)])
    sha256 = HiddenField(validators=[DataRequired(), Length(min=64, max=64)])
    reissue = HiddenField(validators=[AnyOf(["on", "off"])])


def _allowed(principal: Principal) -> None:
    # Before any form is read: a teacher gets 403, whatever they sent.
    ensure_allowed(principal, Action.MANAGE_SCHOOL)


def _confirmed() -> None:
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired: reload the page and try again.")


def _teacher_choices(principal: Principal) -> list[tuple[int, str]]:
    return [
        (s.id, f"{s.name} ({s.email})")
        for s in school_admin.school_staff(db.session(), principal)
        if s.active
    ]


@bp.get("/admin")
@signed_in_page()
def home(principal: Principal) -> ResponseReturnValue:
    _allowed(principal)
    return render_template("admin_home.html")


# --- teachers --------------------------------------------------------------------------------------


def _teachers_page(principal: Principal, form: TeacherForm, status: int, **shown: Any) -> ResponseReturnValue:
    staff = school_admin.school_staff(db.session(), principal)
    return render_template(
        "admin_teachers.html",
        form=form,
        staff=staff,
        me=principal.id,
        button=ConfirmForm(),
        role_form=RoleForm(),
        **shown,
    ), status


@bp.route("/admin/teachers", methods=["GET", "POST"])
@signed_in_page()
def teachers(principal: Principal) -> ResponseReturnValue:
    _allowed(principal)
    form = TeacherForm()
    if request.method == "GET":
        return _teachers_page(principal, form, 200)
    if not form.validate_on_submit():
        return _teachers_page(principal, form, 400)
    try:
        issued = school_admin.add_teacher(
            db.session(), principal, form.email.data or "", form.name.data or "", admin=bool(form.admin.data)
        )
    except (AccountError, Conflict) as error:
        form.form_errors.append(str(error))
        return _teachers_page(principal, form, 409 if isinstance(error, Conflict) else 400)
    return _teachers_page(principal, TeacherForm(formdata=None), 201, issued=issued, added=True)


@bp.post("/admin/teachers/<id:staff_id>/password")
@signed_in_page()
def reset_password(principal: Principal, staff_id: int) -> ResponseReturnValue:
    _allowed(principal)
    _confirmed()
    try:
        issued = school_admin.reset_password(db.session(), principal, staff_id)
    except AccountError as error:
        return _refused(principal, str(error))
    return _teachers_page(principal, TeacherForm(formdata=None), 200, issued=issued)


@bp.post("/admin/teachers/<id:staff_id>/deactivate")
@signed_in_page()
def deactivate(principal: Principal, staff_id: int) -> ResponseReturnValue:
    return _set_active(principal, staff_id, active=False)


@bp.post("/admin/teachers/<id:staff_id>/reactivate")
@signed_in_page()
def reactivate(principal: Principal, staff_id: int) -> ResponseReturnValue:
    return _set_active(principal, staff_id, active=True)


def _set_active(principal: Principal, staff_id: int, *, active: bool) -> ResponseReturnValue:
    _allowed(principal)
    _confirmed()
    try:
        user = school_admin.set_active(db.session(), principal, staff_id, active=active)
    except AccountError as error:
        return _refused(principal, str(error))
    if active:
        flash(f"{user.name} is active again and can sign in.")
    else:
        flash(f"{user.name} is deactivated: they can no longer sign in, and their sessions have ended.")
    return redirect(url_for("school_admin.teachers"), code=303)


@bp.post("/admin/teachers/<id:staff_id>/role")
@signed_in_page()
def set_role(principal: Principal, staff_id: int) -> ResponseReturnValue:
    _allowed(principal)
    form = RoleForm()
    if not form.validate_on_submit():
        abort(400, "The form expired: reload the page and try again.")
    try:
        user = school_admin.set_admin(db.session(), principal, staff_id, admin=form.admin.data == "on")
    except AccountError as error:
        return _refused(principal, str(error))
    flash(f"{user.name} is {'a school admin' if user.role == 'admin' else 'a teacher'} now.")
    return redirect(url_for("school_admin.teachers"), code=303)


def _refused(principal: Principal, message: str) -> ResponseReturnValue:
    form = TeacherForm(formdata=None)
    return _teachers_page(principal, form, 400, refused=message)


# --- classes ---------------------------------------------------------------------------------------


def _classes_page(
    principal: Principal, form: ClassForm, status: int, refused: str | None = None
) -> ResponseReturnValue:
    choices = _teacher_choices(principal)
    form.teacher.choices = choices
    assign = AssignForm(formdata=None)
    assign.teacher.choices = choices
    return render_template(
        "admin_classes.html",
        form=form,
        assign=assign,
        classes=school_admin.school_classes(db.session(), principal),
        button=ConfirmForm(),
        refused=refused,
    ), status


@bp.route("/admin/classes", methods=["GET", "POST"])
@signed_in_page()
def classes(principal: Principal) -> ResponseReturnValue:
    _allowed(principal)
    form = ClassForm()
    form.teacher.choices = _teacher_choices(principal)
    if request.method == "GET":
        return _classes_page(principal, form, 200)
    if not form.validate_on_submit():
        return _classes_page(principal, form, 400)
    try:
        klass = school_admin.create_class(db.session(), principal, form.name.data or "", form.teacher.data)
    except (AccountError, Conflict) as error:
        form.form_errors.append(str(error))
        return _classes_page(principal, form, 409 if isinstance(error, Conflict) else 400)
    flash(f"Class {klass.name} created; its join code is {klass.join_code}.")
    return redirect(url_for("school_admin.classes"), code=303)


@bp.post("/admin/classes/<id:class_id>/teacher")
@signed_in_page()
def assign_teacher(principal: Principal, class_id: int) -> ResponseReturnValue:
    _allowed(principal)
    form = AssignForm()
    form.teacher.choices = _teacher_choices(principal)
    if not form.validate_on_submit():
        return _classes_page(principal, ClassForm(formdata=None), 400, "Choose an active teacher.")
    try:
        klass = school_admin.assign_teacher(db.session(), principal, class_id, form.teacher.data)
    except (AccountError, Conflict) as error:
        return _classes_page(principal, ClassForm(formdata=None), 400, str(error))
    flash(f"Class {klass.name} has a new teacher.")
    return redirect(url_for("school_admin.classes"), code=303)


@bp.post("/admin/classes/<id:class_id>/archive")
@signed_in_page()
def archive_class(principal: Principal, class_id: int) -> ResponseReturnValue:
    _allowed(principal)
    _confirmed()
    klass = school_admin.archive_class(db.session(), principal, class_id)
    flash(
        f"Class {klass.name} is archived: it is gone from its teacher's classes and its code signs nobody in."
    )
    return redirect(url_for("school_admin.classes"), code=303)


@bp.post("/admin/classes/<id:class_id>/join-code")
@signed_in_page()
def new_join_code(principal: Principal, class_id: int) -> ResponseReturnValue:
    _allowed(principal)
    _confirmed()
    try:
        klass = school_admin.new_join_code(db.session(), principal, class_id)
    except AccountError as error:
        return _classes_page(principal, ClassForm(formdata=None), 400, str(error))
    flash(f"Class {klass.name} has a new join code, {klass.join_code}: the old one no longer works.")
    return redirect(url_for("school_admin.classes"), code=303)


@bp.post("/admin/classes/<id:class_id>/codes")
@signed_in_page()
def reissue_codes(principal: Principal, class_id: int) -> ResponseReturnValue:
    _allowed(principal)
    _confirmed()
    try:
        slips = school_admin.reissue_codes(db.session(), principal, class_id)
    except AccountError as error:
        return _classes_page(principal, ClassForm(formdata=None), 400, str(error))
    return render_template("admin_slips.html", slips=slips, reissued=True)


# --- rosters ---------------------------------------------------------------------------------------


@bp.url_value_preprocessor
def _upload_limit(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # Before CSRF protection reads the form: the roster pages take a CSV (and send it back).
    if endpoint in ("school_admin.roster", "school_admin.confirm_roster"):
        request.max_content_length = 2 * MAX_ROSTER_BYTES + 64 * 1024


@bp.route("/admin/classes/<id:class_id>/roster", methods=["GET", "POST"])
@signed_in_page()
def roster(principal: Principal, class_id: int) -> ResponseReturnValue:
    _allowed(principal)
    klass = school_admin.open_class(db.session(), principal, class_id)
    form = RosterUploadForm()
    if request.method == "GET":
        return render_template("admin_roster.html", form=form, klass=klass)
    if not form.validate_on_submit():
        return render_template("admin_roster.html", form=form, klass=klass), 400
    raw = form.roster.data.read(MAX_ROSTER_BYTES + 1)
    try:
        if len(raw) > MAX_ROSTER_BYTES:
            raise AccountError(f"the roster is larger than {MAX_ROSTER_BYTES // 1024} KB")
        text = raw.decode("utf-8-sig")
    except (UnicodeDecodeError, AccountError) as error:
        problem = str(error) if isinstance(error, AccountError) else "the roster is not a UTF-8 CSV file"
        return render_template("admin_roster.html", form=form, klass=klass, problem=problem), 400
    reissue = bool(form.reissue.data)
    try:
        plan = school_admin.preview_roster(db.session(), principal, class_id, text, reissue=reissue)
    except AccountError as error:
        return render_template("admin_roster.html", form=form, klass=klass, problem=str(error)), 400
    confirm = RosterConfirmForm(
        formdata=None,
        content=base64.b64encode(raw).decode("ascii"),  # as the OneRoster page does: the bytes, untouched
        sha256=hashlib.sha256(raw).hexdigest(),
        reissue="on" if reissue else "off",
    )
    return render_template("admin_roster.html", form=form, klass=klass, plan=plan, confirm=confirm)


@bp.post("/admin/classes/<id:class_id>/roster/confirm")
@signed_in_page()
def confirm_roster(principal: Principal, class_id: int) -> ResponseReturnValue:
    _allowed(principal)
    form = RosterConfirmForm()
    if not form.validate_on_submit():
        abort(400, "The form expired or is incomplete: upload the roster again.")
    try:
        raw = base64.b64decode(form.content.data or "", validate=True)
        text = raw.decode("utf-8-sig")
    except (binascii.Error, ValueError):
        abort(400, "The roster did not come back whole: upload it again.")
    if hashlib.sha256(raw).hexdigest() != form.sha256.data:
        abort(400, "The roster is not the one previewed: upload it again.")
    try:
        slips = school_admin.enroll_roster(
            db.session(), principal, class_id, text, reissue=form.reissue.data == "on"
        )
    except (AccountError, Conflict) as error:
        abort(409 if isinstance(error, Conflict) else 400, str(error))
    return render_template("admin_slips.html", slips=slips, reissued=False), 201


# --- the change log --------------------------------------------------------------------------------


@bp.get("/admin/changes")
@signed_in_page()
def changes(principal: Principal) -> ResponseReturnValue:
    _allowed(principal)
    return render_template(
        "admin_changes.html",
        changes=school_admin.recent_changes(db.session(), principal),
        shown=school_admin.CHANGES_SHOWN,
    )
