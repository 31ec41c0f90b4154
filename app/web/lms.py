"""``lms``: the admin page where a school registers its LMS for LTI 1.3 launches (/admin/lms): the tool's
URLs to give the LMS (Moodle's fields, Canvas's developer-key JSON), the registered platforms, and the form
that registers one."""

from __future__ import annotations

import json

from flask import Blueprint, render_template, request, url_for
from flask.typing import ResponseReturnValue
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from app.domain.access import Action, Principal, ensure_allowed
from app.domain.errors import Conflict, InvalidInput
from app.domain.lti import canvas_developer_key, tool_urls
from app.extensions import db
from app.services.integration import lti
from app.web.pages import signed_in_page

bp = Blueprint("lms", __name__)


class PlatformForm(FlaskForm):
    name = StringField("Name (for you: 'Our Moodle')", validators=[DataRequired(), Length(max=200)])
    issuer = StringField("Issuer (platform ID)", validators=[DataRequired(), Length(max=500)])
    client_id = StringField("Client ID", validators=[DataRequired(), Length(max=255)])
    deployment_ids = StringField(
        "Deployment ID(s), separated by spaces", validators=[DataRequired(), Length(max=2000)]
    )
    auth_login_url = StringField(
        "Authentication request URL (OIDC)", validators=[DataRequired(), Length(max=1000)]
    )
    auth_token_url = StringField("Access token URL", validators=[DataRequired(), Length(max=1000)])
    key_set_url = StringField("Public keyset URL", validators=[Optional(), Length(max=1000)])
    key_set = TextAreaField("…or the public key set (JWKS JSON)", validators=[Optional(), Length(max=20000)])
    accept_names = BooleanField("Take teachers' names from launches (off: no name or email is stored)")


@bp.route("/admin/lms", methods=["GET", "POST"])
@signed_in_page()
def platforms(principal: Principal) -> ResponseReturnValue:
    ensure_allowed(principal, Action.MANAGE_LMS)
    form = PlatformForm()
    status = 200
    if form.validate_on_submit():
        try:
            lti.register_platform(
                db.session(),
                principal,
                principal.school_id,
                lti.PlatformForm(
                    name=form.name.data or "",
                    issuer=form.issuer.data or "",
                    client_id=form.client_id.data or "",
                    auth_login_url=form.auth_login_url.data or "",
                    auth_token_url=form.auth_token_url.data or "",
                    key_set_url=form.key_set_url.data,
                    key_set=form.key_set.data,
                    deployment_ids=(form.deployment_ids.data or "").split(),
                    accept_names=bool(form.accept_names.data),
                ),
            )
        except (InvalidInput, Conflict) as error:
            form.form_errors.append(str(error))
            status = 409 if isinstance(error, Conflict) else 400
        else:
            status = 201
            form = PlatformForm(formdata=None)
    elif request.method == "POST":
        status = 400
    urls = tool_urls(url_for("auth.home", _external=True))
    return render_template(
        "lms.html",
        form=form,
        platforms=lti.list_platforms(db.session(), principal),
        urls=urls,
        canvas_json=json.dumps(canvas_developer_key(urls), indent=2),
    ), status
