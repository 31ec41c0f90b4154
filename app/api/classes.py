"""Classes of the caller's school (teachers: their own), with their students."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.auth import api_blueprint, current_principal
from app.api.schemas import ClassDetailSchema, ClassReportSchema, ClassSchema, ReportWindowSchema
from app.extensions import db
from app.services.people import rosters
from app.services.reporting import reports

blp = api_blueprint("classes", __name__, "Classes and their students.")


@blp.route("/classes")
class Classes(MethodView):
    @blp.response(200, ClassSchema(many=True))
    def get(self) -> Any:
        """The classes the caller can see: a teacher's own, or every class of the school."""
        return rosters.class_summaries(db.session(), current_principal())


@blp.route("/classes/<id:class_id>")
class ClassById(MethodView):
    @blp.response(200, ClassDetailSchema)
    def get(self, class_id: int) -> Any:
        """A class and its students, with how far each has got."""
        return rosters.class_detail(db.session(), current_principal(), class_id)


@blp.route("/classes/<id:class_id>/report")
class ClassReport(MethodView):
    @blp.arguments(ReportWindowSchema, location="query")
    @blp.response(200, ClassReportSchema)
    def get(self, window: dict[str, Any], class_id: int) -> Any:
        """Students × skills (prerequisite order), per-skill share mastered and median answers to
        mastery, students needing help and why, skills where the class is stuck.

        As of ``until`` (default now), counting activity since ``since``.
        """
        result = reports.class_report(
            db.session(), current_principal(), class_id, since=window.get("since"), until=window.get("until")
        )
        return {"class_id": result.klass.id, "name": result.klass.name, **vars(result.report)}
