"""The content graph as apps see it: skills with their parameters, exercises without answers."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.auth import api_blueprint
from app.api.schemas import ExerciseSchema, SkillSchema
from app.extensions import db
from app.services.tutoring import catalog

blp = api_blueprint("content", __name__, "Skills, their BKT parameters, and exercises.")


@blp.route("/skills")
class Skills(MethodView):
    @blp.doc(operationId="list_skills")
    @blp.response(200, SkillSchema(many=True))
    def get(self) -> Any:
        """Every skill, prerequisites first, with the BKT parameters that compute its mastery."""
        return catalog.list_skills(db.session())


@blp.route("/skills/<skill_id>")
class SkillById(MethodView):
    @blp.doc(operationId="get_skill")
    @blp.response(200, SkillSchema)
    def get(self, skill_id: str) -> Any:
        """A skill, its prerequisites and its BKT parameters."""
        return catalog.get_skill(db.session(), skill_id)


@blp.route("/exercises/<exercise_id>")
class ExerciseById(MethodView):
    @blp.doc(operationId="get_exercise")
    @blp.response(200, ExerciseSchema)
    def get(self, exercise_id: str) -> Any:
        """An exercise as a student sees it (never the accepted answers)."""
        return catalog.get_exercise(db.session(), exercise_id)
