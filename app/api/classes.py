"""Classes of the caller's school (teachers: their own), with their students."""

from __future__ import annotations

from typing import Any

from flask.views import MethodView

from app.api.auth import api_blueprint, current_principal
from app.api.schemas import ClassDetailSchema, ClassSchema
from app.extensions import db
from app.services import rosters

blp = api_blueprint("classes", __name__, "Classes and their students.")


@blp.route("/classes")
class Classes(MethodView):
    @blp.response(200, ClassSchema(many=True))
    def get(self) -> Any:
        """The classes the caller can see: a teacher's own, or every class of the school."""
        return rosters.class_summaries(db.session(), current_principal())


@blp.route("/classes/<int:class_id>")
class ClassById(MethodView):
    @blp.response(200, ClassDetailSchema)
    def get(self, class_id: int) -> Any:
        """A class and its students, with how far each has got."""
        return rosters.class_detail(db.session(), current_principal(), class_id)
