"""The school's administration pages: API keys (admins), bias checks (admins run, staff read)."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from app.domain.access import Principal, Role
from app.domain.errors import Conflict
from app.domain.wording import GROUP_STATUS, attribute_label, group_label, labelled_summary
from app.extensions import db
from app.services.operations import job_kinds
from app.services.people import accounts, apps, groups
from app.services.people.groups import ORGANISATIONAL
from app.services.reporting import bias
from app.web.charts import interval_chart
from app.web.forms import ApiKeyForm, BiasCheckForm, ConfirmForm
from app.web.pages import signed_in_page

bp = Blueprint("admin", __name__)


@bp.route("/bias-checks", methods=["GET", "POST"])
@signed_in_page()
def bias_checks(principal: Principal) -> ResponseReturnValue:
    """The school's bias checks; admins run a new one here."""
    reports_list = bias.list_reports(db.session(), principal)
    form = BiasCheckForm()
    form.attribute.choices = [
        (a, attribute_label(a)) for a in (*ORGANISATIONAL, *sorted(groups.allowed_attributes()))
    ]
    if request.method == "POST":
        if not form.validate_on_submit():
            abort(400, "Choose an attribute.")
        # A job (a worker runs it): the job's page follows it and then shows the check.
        job, _ = job_kinds.start_bias_check(db.session(), principal, form.attribute.data)
        return redirect(url_for("job_pages.job_page", job_id=job.id, follow=1), code=303)
    return render_template(
        "bias_checks.html",
        reports=reports_list,
        form=form,
        can_run=principal.role is Role.ADMIN,
        attribute_label=attribute_label,
    )


@bp.get("/bias-checks/<id:report_id>")
@signed_in_page()
def bias_check(principal: Principal, report_id: int) -> ResponseReturnValue:
    """A bias check in plain words, with each metric's per-group estimates and intervals."""
    stored = bias.get_report(db.session(), principal, report_id)
    report = stored.report
    attribute = report["attribute"]
    names = {g["group"]: group_label(attribute, g["group"]) for g in report["groups"]}
    charts = []
    for metric, text in report["metrics"].items():
        rows = [
            (
                names[g["group"]],
                g["metrics"][metric]["value"],
                g["metrics"][metric]["low"],
                g["metrics"][metric]["high"],
            )
            for g in report["groups"]
            if g["status"] != "suppressed"
            and metric in g["metrics"]
            and g["metrics"][metric]["value"] is not None
        ]
        if rows:
            reference = next((r[1] for r in rows if r[0] == names.get(report["reference"])), None)
            charts.append((text, interval_chart(text, rows, reference=reference)))
    return render_template(
        "bias_check.html",
        stored=stored,
        report=report,
        charts=charts,
        names=names,
        attribute=attribute_label(attribute),
        status_words=GROUP_STATUS,
        reference=names.get(report["reference"]) if report["reference"] else None,
        summary=labelled_summary(attribute, report["summary"], list(names)),
    )


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
    return render_template(
        "api_keys.html", form=form, keys=keys, issued=issued, revoke_form=ConfirmForm()
    ), status


@bp.post("/admin/api-keys/<prefix>/revoke")
@signed_in_page()
def revoke_api_key(principal: Principal, prefix: str) -> ResponseReturnValue:
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired: reload the page and try again.")
    key = apps.revoke_api_key(db.session(), prefix, by=principal)
    flash(f"Key {key.prefix} is revoked: apps using it are refused from now on.")
    return redirect(url_for("admin.api_keys"))
