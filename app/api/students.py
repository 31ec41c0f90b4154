"""Students: create, next exercise, answers, progress."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.auth import api_blueprint, current_principal
from app.api.schemas import (
    DeletionSchema,
    ExportQuerySchema,
    NextExerciseQuerySchema,
    NextExerciseSchema,
    ProgressSchema,
    RecommendationSchema,
    ResponseCreateSchema,
    ResponseSchema,
    StudentCreateSchema,
    StudentReportSchema,
    StudentSchema,
    StudentUpdateSchema,
)
from app.extensions import db
from app.models import utcnow
from app.services.reporting import privacy, reports
from app.services.reporting.export_download import student_export_response
from app.services.tutoring.answers import record_response
from app.services.tutoring.next_exercise import next_exercise, recommendation_history
from app.services.tutoring.progress import progress
from app.services.tutoring.students import get_or_create_student, set_personalization, student_profile
from app.settings import current_settings

blp = api_blueprint("students", __name__, "A learning app's students and their practice.")


@blp.route("/students")
class Students(MethodView):
    @blp.arguments(StudentCreateSchema)
    @blp.response(201, StudentSchema)
    @blp.alt_response(200, schema=StudentSchema, description="The student already existed.")
    def post(self, data: dict[str, Any]) -> Any:
        """Create a student of the app's school, or return the one with this external_id (apps only)."""
        student, created = get_or_create_student(db.session(), current_principal(), data["external_id"])
        return student, 201 if created else 200


@blp.route("/students/<student_id>")
class StudentById(MethodView):
    @blp.response(200, StudentSchema)
    def get(self, student_id: str) -> Any:
        return student_profile(db.session(), current_principal(), student_id)

    @blp.response(200, DeletionSchema)
    def delete(self, student_id: str) -> Any:
        """Delete the student and everything derived from them, at once and for good (apps, admins)."""
        return {"deleted": privacy.delete_student(db.session(), student_id, by=current_principal())}

    @blp.arguments(StudentUpdateSchema)
    @blp.response(200, StudentSchema)
    def patch(self, data: dict[str, Any], student_id: str) -> Any:
        """Switch personalization off (fixed curriculum order) or on again; recorded with time and actor."""
        return set_personalization(
            db.session(), current_principal(), student_id, enabled=data["personalized"]
        )


@blp.route("/students/<student_id>/next-exercise")
class NextExercise(MethodView):
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
    @blp.response(200, RecommendationSchema(many=True))
    def get(self, student_id: str) -> Any:
        """The latest recommendations served to the student and why (newest first)."""
        return recommendation_history(db.session(), current_principal(), student_id)


@blp.route("/students/<student_id>/responses")
class Responses(MethodView):
    @blp.arguments(ResponseCreateSchema)
    @blp.response(201, ResponseSchema)
    @blp.alt_response(200, schema=ResponseSchema, description="A retry: the first result.")
    def post(self, data: dict[str, Any], student_id: str) -> Any:
        """Record an answer and update mastery of every skill of the exercise."""
        result, created = record_response(db.session(), current_principal(), student_id, **data)
        return result, 201 if created else 200


@blp.route("/students/<student_id>/progress")
class Progress(MethodView):
    @blp.response(200, ProgressSchema)
    def get(self, student_id: str) -> Any:
        """Mastery of every skill: P(L), attempts, mastered flag."""
        report = progress(db.session(), current_principal(), student_id)
        return {
            "student_id": student_id,
            "mastery_threshold": current_settings().mastery_threshold,
            "personalized": report.personalized,
            "speed": report.speed,
            "prior_knowledge": report.prior_knowledge,
            "min_correct": report.min_correct,
            "skills_mastered": sum(s.mastered for s in report.skills),
            "skills_total": len(report.skills),
            "skills": report.skills,
        }


@blp.route("/students/<student_id>/report")
class StudentReport(MethodView):
    @blp.response(200, StudentReportSchema)
    def get(self, student_id: str) -> Any:
        """Where the student stands: per skill status, paced P(L), accuracy, answers still needed at
        their pace, reviews due; skills mastered along the prerequisite graph.

        "Not enough data" (null estimates) below a few answers on a skill.
        """
        student, report = reports.student_report(db.session(), current_principal(), student_id)
        return {
            "student_id": student.id,
            "external_id": student.external_id,
            "generated_at": utcnow(),
            **vars(report),
        }


@blp.route("/students/<student_id>/export")
class StudentExport(MethodView):
    @blp.arguments(ExportQuerySchema, location="query")
    @blp.response(200, description="JSON, or with format=csv a ZIP of CSV files.")
    def get(self, query: dict[str, Any], student_id: str) -> Any:
        """Everything stored about the student (profile, answers, mastery and its history, recommendations
        and their reasons, consents, who read their data) and how the tutor uses it."""
        return student_export_response(current_principal(), student_id, query["format"])
