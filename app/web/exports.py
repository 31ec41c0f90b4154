"""Downloads: the class report as CSV, and a student's data export (JSON or a ZIP of CSV files)."""

from __future__ import annotations

import csv
import io

from flask import Response, current_app

from app.domain.access import Principal
from app.domain.reports import ClassReport
from app.extensions import db
from app.services import privacy
from app.services.tutoring import policy_config


def student_export_response(principal: Principal, student_id: str, fmt: str) -> Response:
    """The export as a download: ``fmt`` "json" (one document) or "csv" (a ZIP of CSV files)."""
    policy = policy_config()
    export = privacy.export_student(db.session(), principal, student_id, threshold=policy.mastery_threshold,
                                    target_success=policy.target_success)
    if fmt == "csv":
        return Response(privacy.export_zip(export), mimetype="application/zip", headers={
            "Content-Disposition": f'attachment; filename="student-{student_id}.zip"'})
    body = current_app.json.dumps(export.as_json(), indent=2)
    return Response(body, mimetype="application/json", headers={
        "Content-Disposition": f'attachment; filename="student-{student_id}.json"'})


def class_report_csv(report: ClassReport) -> str:
    """One row per student, one column per skill (paced P(L) in %, blank when there is not enough data),
    then the per-skill summary rows."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    skills = [s.skill_id for s in report.skills]
    writer.writerow(["student", "skills_mastered", "answers", "answers_in_window", "last_active_at",
                     "needs_help", *skills])
    for student in report.students:
        writer.writerow([
            _safe(student.external_id), student.skills_mastered, student.answers, student.answers_in_window,
            student.last_active_at.isoformat() if student.last_active_at else "",
            _safe("; ".join(r.detail for r in student.needs_help)),
            *("" if c.p_mastery is None else f"{100 * c.p_mastery:.0f}" for c in student.cells),
        ])
    blank = [""] * 5
    writer.writerow(["(share mastered)", *blank, *(f"{s.share_mastered:.2f}" for s in report.skills)])
    writer.writerow(["(median answers to mastery)", *blank,
                     *("" if s.median_attempts_to_mastery is None else f"{s.median_attempts_to_mastery:g}"
                       for s in report.skills)])
    writer.writerow(["(stuck)", *blank, *("yes" if s.stuck else "" for s in report.skills)])
    return out.getvalue()


def _safe(text: str) -> str:
    # A cell starting with = + - @ runs as a formula in spreadsheets: quote it.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text
