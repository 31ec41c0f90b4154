"""Teachers' and admins' pages: classes, a class's dashboard and CSV, a student's page and export."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta

from flask import Blueprint, Response, abort, render_template, request
from flask.typing import ResponseReturnValue

from app.domain.access import Principal
from app.domain.wording import TEACHER_STATUS, by_unit
from app.extensions import db
from app.services.integration import lti_roster
from app.services.people import rosters
from app.services.reporting import reports
from app.services.reporting.export_download import student_export_response
from app.web import exports
from app.web.charts import mastery_over_time
from app.web.forms import ConfirmForm
from app.web.pages import export_format, signed_in_page

bp = Blueprint("teacher", __name__)


@bp.get("/classes")
@signed_in_page()
def classes(principal: Principal) -> ResponseReturnValue:
    summaries = rosters.class_summaries(db.session(), principal)
    return render_template("classes.html", classes=summaries, principal=principal)


@bp.get("/classes/<id:class_id>")
@signed_in_page()
def class_page(principal: Principal, class_id: int) -> ResponseReturnValue:
    """The class dashboard: what to do next (groupings, students to check), where the class is stuck, and
    the heatmap of students × skills, grouped by unit."""
    since, until = _window()
    result = reports.class_report(db.session(), principal, class_id, since=since, until=until, dashboard=True)
    report = result.report
    column = {s.skill_id: i for i, s in enumerate(report.skills)}
    return render_template(
        "class.html",
        lms=lti_roster.course_of_class(db.session(), principal, class_id),
        lms_form=ConfirmForm(),
        klass=result.klass,
        report=report,
        dashboard=result.dashboard,
        units=by_unit(report.skills),
        column=column,
        status_words=TEACHER_STATUS,
        min_answers=reports.report_config().min_attempts,
        since=request.args.get("since", ""),
        until=request.args.get("until", ""),
    )


@bp.get("/classes/<id:class_id>/report.csv")
@signed_in_page()
def class_csv(principal: Principal, class_id: int) -> ResponseReturnValue:
    """One row per student (the per-skill summary is ``skills.csv``)."""
    since, until = _window()
    result = reports.class_report(db.session(), principal, class_id, since=since, until=until)
    return _csv(exports.class_report_csv(result.report), result.klass.name, "students")


@bp.get("/classes/<id:class_id>/skills.csv")
@signed_in_page()
def class_skills_csv(principal: Principal, class_id: int) -> ResponseReturnValue:
    """One row per skill: how the class stands on it."""
    since, until = _window()
    result = reports.class_report(db.session(), principal, class_id, since=since, until=until)
    return _csv(exports.class_skills_csv(result.report), result.klass.name, "skills")


def _csv(body: str, class_name: str, what: str) -> Response:
    name = re.sub(r"[^A-Za-z0-9_-]+", "-", class_name).strip("-") or "class"
    return Response(
        body,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}-{what}.csv"'},
    )


@bp.get("/students/<student_id>")
@signed_in_page()
def student_page(principal: Principal, student_id: str) -> ResponseReturnValue:
    """One student, as their teacher sees them: the report, mastery over time, and why each exercise."""
    page = reports.student_page(db.session(), principal, student_id, recommendations=20)  # one logged read
    report = page.report
    names = {s.skill_id: s.name for s in report.skills}
    chart = mastery_over_time(
        [(p.at, p.skill_id, p.p_mastery) for p in page.history],
        names,
        threshold=reports.report_config().rules.threshold,
    )
    why = list(zip(page.recommendations, page.reasons, page.prompts, strict=True))
    return render_template(
        "student.html",
        student=page.student,
        report=report,
        chart=chart,
        why=why,
        names=names,
        units=by_unit(report.skills),
        status_words=TEACHER_STATUS,
    )


@bp.get("/students/<student_id>/export")
@signed_in_page()
def student_export(principal: Principal, student_id: str) -> ResponseReturnValue:
    """A teacher or admin downloads a student's data (for a parent's request, say); it is logged."""
    return student_export_response(principal, student_id, export_format())


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
