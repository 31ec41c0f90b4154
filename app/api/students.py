"""Students: create, next exercise, answers, progress."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.auth import api_blueprint, current_principal
from app.api.contract import DEPRECATION_DOC, DEPRECATION_HEADERS
from app.api.roster_schemas import StudentListQuerySchema, StudentPageSchema
from app.api.schemas import (
    AnswerCreateSchema,
    AnswerResultSchema,
    DeletionSchema,
    ExportQuerySchema,
    NextExerciseQuerySchema,
    NextExerciseSchema,
    ProgressSchema,
    RecommendationSchema,
    StudentCreateSchema,
    StudentReportSchema,
    StudentSchema,
    StudentUpdateSchema,
)
from app.extensions import db
from app.models import utcnow
from app.services.people import rosters
from app.services.reporting import privacy, reports
from app.services.reporting.export_download import student_export_response
from app.services.tutoring.answers import record_response
from app.services.tutoring.next_exercise import next_exercise, recommendation_history
from app.services.tutoring.progress import progress
from app.services.tutoring.students import get_or_create_student, set_personalization, student_profile
from app.settings import current_settings

blp = api_blueprint("students", __name__, "A learning app's students and their practice.")

EXPORT_RESPONSE = {
    "description": "Everything stored about the student: one JSON document, or with format=csv a ZIP of CSV "
    "files (Content-Disposition names the file).",
    "content": {
        "application/json": {"schema": {"type": "object", "additionalProperties": True}},
        "application/zip": {"schema": {"type": "string", "format": "binary"}},
    },
}


@blp.route("/students")
class Students(MethodView):
    @blp.doc(operationId="create_student")
    @blp.arguments(StudentCreateSchema)
    @blp.response(201, StudentSchema)
    @blp.alt_response(200, schema=StudentSchema, description="The student already existed.")
    def post(self, data: dict[str, Any]) -> Any:
        """Create a student of the app's school, or return the one with this external_id (apps only)."""
        student, created = get_or_create_student(db.session(), current_principal(), data["external_id"])
        return student, 201 if created else 200

    @blp.doc(operationId="list_students")
    @blp.arguments(StudentListQuerySchema, location="query")
    @blp.response(200, StudentPageSchema)
    @blp.alt_response(404, response="NOT_FOUND", description="class_id names a class the caller cannot see.")
    def get(self, query: dict[str, Any]) -> Any:
        """The caller's students, a page at a time: an app's or an admin's, the school's; a teacher's, those
        of their classes. Filters combine; the read is logged for each student listed."""
        return rosters.list_students(db.session(), current_principal(), **query)


@blp.route("/students/<student_id>")
class StudentById(MethodView):
    @blp.doc(operationId="get_student")
    @blp.response(200, StudentSchema)
    def get(self, student_id: str) -> Any:
        """The student's profile."""
        return student_profile(db.session(), current_principal(), student_id)

    @blp.doc(operationId="delete_student")
    @blp.response(200, DeletionSchema)
    def delete(self, student_id: str) -> Any:
        """Delete the student and everything derived from them, at once and for good (apps, admins)."""
        return {"deleted": privacy.delete_student(db.session(), student_id, by=current_principal())}

    @blp.doc(operationId="update_student")
    @blp.arguments(StudentUpdateSchema)
    @blp.response(200, StudentSchema)
    def patch(self, data: dict[str, Any], student_id: str) -> Any:
        """Switch personalization off (fixed curriculum order) or on again; recorded with time and actor."""
        return set_personalization(
            db.session(), current_principal(), student_id, enabled=data["personalized"]
        )


@blp.route("/students/<student_id>/next-exercise")
class NextExercise(MethodView):
    @blp.doc(operationId="get_next_exercise")
    @blp.arguments(NextExerciseQuerySchema, location="query")
    @blp.response(200, NextExerciseSchema)
    def get(self, query: dict[str, Any], student_id: str) -> Any:
        """The exercise to practise next, and why it was chosen."""
        chosen = next_exercise(db.session(), current_principal(), student_id, seed=query.get("seed"))
        rec = chosen.recommendation
        return {
            "exercise": chosen.exercise,
            "skill_id": rec.skill_id,
            "reason": rec.reason,
            "explanation": rec.explanation,
            "policy": rec.policy,
            "details": rec.details,
            "recommendation_id": chosen.recommendation_id,
            "p_mastery": chosen.p_mastery,
            "p_mastery_paced": chosen.p_mastery_paced,
            "mastery_estimate": rec.p_mastery,
        }


@blp.route("/students/<student_id>/recommendations")
class Recommendations(MethodView):
    @blp.doc(operationId="list_recommendations")
    @blp.response(200, RecommendationSchema(many=True))
    def get(self, student_id: str) -> Any:
        """The latest recommendations served to the student and why (newest first)."""
        return recommendation_history(db.session(), current_principal(), student_id)


@blp.route("/students/<student_id>/responses")
class Responses(MethodView):
    @blp.doc(operationId="record_answer")
    @blp.arguments(AnswerCreateSchema)
    @blp.response(201, AnswerResultSchema, headers=DEPRECATION_DOC)
    @blp.alt_response(
        200, schema=AnswerResultSchema, headers=DEPRECATION_DOC, description="A retry: the first result."
    )
    @blp.alt_response(404, response="NOT_FOUND")  # an unknown exercise_id
    @blp.alt_response(409, response="CONFLICT")
    def post(self, data: dict[str, Any], student_id: str) -> Any:
        """Record an answer and update mastery of every skill of the exercise."""
        result, created = record_response(db.session(), current_principal(), student_id, **data)
        return result, 201 if created else 200, DEPRECATION_HEADERS


@blp.route("/students/<student_id>/progress")
class Progress(MethodView):
    @blp.doc(operationId="get_progress")
    @blp.response(200, ProgressSchema)
    def get(self, student_id: str) -> Any:
        """Mastery of every skill: the mastery estimate and status, standard and paced P(L), answers,
        recall; the student's pace."""
        report = progress(db.session(), current_principal(), student_id)
        return {
            "student_id": student_id,
            "mastery_threshold": current_settings().mastery_threshold,
            "personalized": report.personalized,
            "speed": report.speed,
            "speed_reason": report.speed_reason,
            "prior_knowledge": report.prior_knowledge,
            "min_correct": report.min_correct,
            "answers": report.answers,
            "skills_mastered": sum(s.mastered for s in report.skills),
            "skills_total": len(report.skills),
            "skills": report.skills,
        }


@blp.route("/students/<student_id>/report")
class StudentReport(MethodView):
    @blp.doc(operationId="get_student_report")
    @blp.response(200, StudentReportSchema, headers=DEPRECATION_DOC)
    def get(self, student_id: str) -> Any:
        """Where the student stands: per skill status, paced P(L), accuracy, answers still needed at
        their pace, reviews due; skills mastered along the prerequisite graph.

        "Not enough data" (null estimates) below a few answers on a skill.
        """
        student, report = reports.student_report(db.session(), current_principal(), student_id)
        body = {
            "student_id": student.id,
            "external_id": student.external_id,
            "generated_at": utcnow(),
            "speed_reason": report.speed_reason,
            **vars(report),
        }
        return body, DEPRECATION_HEADERS


@blp.route("/students/<student_id>/export")
class StudentExport(MethodView):
    @blp.doc(operationId="export_student", responses={"200": EXPORT_RESPONSE})
    @blp.arguments(ExportQuerySchema, location="query")
    @blp.response(200, description="JSON, or with format=csv a ZIP of CSV files.")
    def get(self, query: dict[str, Any], student_id: str) -> Any:
        """Everything stored about the student (profile, answers, mastery and its history, recommendations
        and their reasons, consents, who read their data) and how the tutor uses it."""
        return student_export_response(current_principal(), student_id, query["format"])
