"""The tutor app plus one benchmark-only route, for bench/api.py (never part of the product).

``POST /bench/baseline/<student_id>`` does the minimum a request of the answer→next kind must do, through
the same app, extensions and database: authenticate the Bearer key, read one row (the student, scoped to the
key's school), insert one row, return JSON.
"""

from __future__ import annotations

from typing import Any

from flask import abort, jsonify, request
from sqlalchemy import select

from app import create_app
from app.extensions import csrf, db
from app.models import AccessLogEntry, Student, utcnow
from app.services.people.apps import authenticate

app = create_app()


@app.post("/bench/baseline/<student_id>")
@csrf.exempt  # a Bearer-key call, like the API's
def baseline(student_id: str) -> Any:
    principal = authenticate(db.session(), request.headers.get("Authorization", "").partition(" ")[2])
    if principal is None:
        abort(401)
    student = db.session.scalar(
        select(Student).where(Student.id == student_id, Student.school_id == principal.school_id)
    )
    if student is None:
        abort(404)
    db.session.add(
        AccessLogEntry(
            student_id=student.id,
            actor=principal.actor,
            actor_name=principal.name,
            what="baseline",
            created_at=utcnow(),
        )
    )
    db.session.commit()
    return jsonify({"id": student.id, "answers": student.answer_count})
