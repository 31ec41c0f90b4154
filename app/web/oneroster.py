"""The OneRoster import page (admins): upload a bundle, see what it would change, confirm; the import itself
runs as a background job (``job_kinds.start_oneroster_import``), whose page follows it.

Between the preview and the confirmation the bundle travels back with the form (base64, with its SHA-256 as
shown in the preview), so nothing is stored before the admin confirms; the job checks it all again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from typing import Any

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from flask_wtf.file import FileField, FileRequired
from wtforms import HiddenField, StringField
from wtforms.validators import DataRequired, Length, Optional

from app.domain.access import Action, Principal, ensure_allowed
from app.domain.oneroster import BundleProblems
from app.extensions import db
from app.services.operations import job_kinds
from app.services.people import oneroster
from app.settings import current_settings
from app.web.pages import signed_in_page

bp = Blueprint("oneroster_pages", __name__)
FORM_OVERHEAD = 64 * 1024


class OneRosterUploadForm(FlaskForm):
    bundle = FileField("OneRoster bundle (.zip)", validators=[FileRequired("Choose the bundle's zip file.")])
    org = StringField(
        "Your school's org (its sourcedId; empty: the bundle's only school)", [Optional(), Length(max=255)]
    )


class OneRosterConfirmForm(FlaskForm):
    content = HiddenField(validators=[DataRequired()])
    sha256 = HiddenField(validators=[DataRequired(), Length(min=64, max=64)])
    file_name = HiddenField(validators=[Length(max=200)])
    org = HiddenField(validators=[Length(max=255)])


@bp.url_value_preprocessor
def _upload_limit(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # Before CSRF protection reads the form: these pages take a zip (and send it back in base64).
    request.max_content_length = 2 * current_settings().jobs.max_upload_bytes + FORM_OVERHEAD


@bp.route("/admin/oneroster", methods=["GET", "POST"])
@signed_in_page()
def upload(principal: Principal) -> ResponseReturnValue:
    ensure_allowed(principal, Action.RUN_MAINTENANCE)
    form = OneRosterUploadForm()
    if request.method == "GET":
        return render_template("oneroster.html", form=form)
    if not form.validate_on_submit():
        return render_template("oneroster.html", form=form), 400
    data = form.bundle.data.read()
    org = (form.org.data or "").strip() or None
    try:
        changes = oneroster.import_roster(db.session(), principal, data, org=org, dry_run=True)
    except BundleProblems as error:
        return render_template("oneroster.html", form=form, problems=error.problems), 400
    confirm = OneRosterConfirmForm(
        formdata=None,
        content=base64.b64encode(data).decode("ascii"),
        sha256=hashlib.sha256(data).hexdigest(),
        file_name=form.bundle.data.filename or "roster.zip",
        org=org or "",
    )
    return render_template("oneroster.html", form=form, changes=changes, confirm=confirm)


@bp.post("/admin/oneroster/confirm")
@signed_in_page()
def confirm(principal: Principal) -> ResponseReturnValue:
    ensure_allowed(principal, Action.RUN_MAINTENANCE)
    form = OneRosterConfirmForm()
    if not form.validate_on_submit():
        abort(400, "The form expired or is incomplete: upload the bundle again.")
    try:
        data = base64.b64decode(form.content.data, validate=True)
    except (binascii.Error, ValueError):
        abort(400, "The bundle did not come back whole: upload it again.")
    if hashlib.sha256(data).hexdigest() != form.sha256.data:
        abort(400, "The bundle is not the one previewed: upload it again.")
    job, _ = job_kinds.start_oneroster_import(
        db.session(),
        principal,
        data,
        file_name=form.file_name.data or "roster.zip",
        org=form.org.data or None,
    )
    return redirect(url_for("job_pages.job_page", job_id=job.id, follow=1), code=303)
