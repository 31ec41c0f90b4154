"""A student's data export as a file to download (JSON, or a ZIP of CSV files): for the API
(``GET /api/v1/students/<id>/export``) and the pages (``/me/export``, ``/students/<id>/export``) alike."""

from __future__ import annotations

from flask import Response, current_app

from app.domain.access import Principal
from app.extensions import db
from app.services.reporting import privacy
from app.services.tutoring.config import policy_config


def student_export_response(principal: Principal, student_id: str, fmt: str) -> Response:
    """The export as a download: ``fmt`` "json" (one document) or "csv" (a ZIP of CSV files)."""
    policy = policy_config()
    export = privacy.export_student(
        db.session(),
        principal,
        student_id,
        threshold=policy.mastery_threshold,
        target_success=policy.target_success,
    )
    if fmt == "csv":
        return Response(
            privacy.export_zip(export),
            mimetype="application/zip",
            headers={"Content-Disposition": f'attachment; filename="student-{student_id}.zip"'},
        )
    body = current_app.json.dumps(export.as_json(), indent=2)
    return Response(
        body,
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="student-{student_id}.json"'},
    )
