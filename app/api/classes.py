"""Classes of the caller's school (teachers: their own), with their students."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.auth import api_blueprint, current_principal
from app.api.contract import DEPRECATION_DOC, DEPRECATION_HEADERS
from app.api.roster_schemas import ClassEnrolRequestSchema, ClassEnrolResultSchema, ClassRemovalSchema
from app.api.schemas import ClassDetailSchema, ClassReportSchema, ClassSchema, ReportWindowSchema
from app.extensions import db
from app.services.people import rosters
from app.services.reporting import reports

blp = api_blueprint("classes", __name__, "Classes and their students.")


@blp.route("/classes")
class Classes(MethodView):
    @blp.doc(operationId="list_classes")
    @blp.response(200, ClassSchema(many=True))
    def get(self) -> Any:
        """The classes the caller can see: a teacher's own, or every class of the school."""
        return rosters.class_summaries(db.session(), current_principal())


@blp.route("/classes/<id:class_id>")
class ClassById(MethodView):
    @blp.doc(operationId="get_class")
    @blp.response(200, ClassDetailSchema, headers=DEPRECATION_DOC)
    def get(self, class_id: int) -> Any:
        """A class and its students, with how far each has got."""
        return rosters.class_detail(db.session(), current_principal(), class_id), DEPRECATION_HEADERS


@blp.route("/classes/<id:class_id>/report")
class ClassReport(MethodView):
    @blp.doc(operationId="get_class_report")
    @blp.arguments(ReportWindowSchema, location="query")
    @blp.response(200, ClassReportSchema, headers=DEPRECATION_DOC)
    def get(self, window: dict[str, Any], class_id: int) -> Any:
        """Students × skills (prerequisite order), per-skill share mastered and median answers to
        mastery, students needing help and why, skills where the class is stuck.

        As of ``until`` (default now), counting activity since ``since``.
        """
        result = reports.class_report(
            db.session(), current_principal(), class_id, since=window.get("since"), until=window.get("until")
        )
        body = {"class_id": result.klass.id, "name": result.klass.name, **vars(result.report)}
        return body, DEPRECATION_HEADERS


@blp.route("/classes/<id:class_id>/students")
class ClassStudents(MethodView):
    @blp.doc(operationId="enrol_class_students")
    @blp.arguments(ClassEnrolRequestSchema)
    @blp.response(200, ClassEnrolResultSchema)
    @blp.alt_response(409, response="CONFLICT")
    def post(self, data: dict[str, Any], class_id: int) -> Any:
        """Put existing students of the school into the class (apps and admins: any class of the school;
        a teacher: their own). All or nothing: a student the school does not have refuses the request
        (422, naming them). Students already in the class are reported as such. Issues no sign-in code."""
        return rosters.enrol_students(db.session(), current_principal(), class_id, **data)


@blp.route("/classes/<id:class_id>/students/<student_id>")
class ClassStudentById(MethodView):
    @blp.doc(operationId="remove_class_student")
    @blp.response(200, ClassRemovalSchema)
    def delete(self, class_id: int, student_id: str) -> Any:
        """Take the student out of the class (the student and their data stay); 404 when not in it."""
        return rosters.remove_from_class(db.session(), current_principal(), class_id, student_id)
