"""Only a learning app's key may grade an answer itself ("correct"): a signed-in person's answer is graded
by the service, so a student cannot mark their own answers right."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.extensions import db
from app.models import Mastery, Response
from tests.conftest import World


def stored_answers(app: Flask) -> tuple[int, int]:
    with app.app_context():
        return (
            db.session.scalar(sa.select(sa.func.count()).select_from(Response)) or 0,
            db.session.scalar(sa.select(sa.func.count()).select_from(Mastery)) or 0,
        )


@pytest.mark.parametrize(
    ("actor", "role"), [("student_a", "student"), ("teacher_a", "teacher"), ("admin", "admin")]
)
def test_a_session_may_not_send_its_own_grade(
    app: Flask, world: World, shipped_graph: Any, actor: str, role: str
) -> None:
    exercise = next(iter(shipped_graph.exercises))
    for correct in (True, False):
        response = world.actors[actor].request(
            "POST",
            f"/api/v1/students/{world.student_a}/responses",
            json={"exercise_id": exercise, "correct": correct},
        )
        assert response.status_code == 403
        assert response.get_json()["message"] == (
            f"{'An' if role == 'admin' else 'A'} {role} may not send 'correct' "
            "(only a learning app's key may grade answers itself); "
            "send 'answer' and the service grades it."
        )
    assert stored_answers(app) == (0, 0)  # nothing recorded, no mastery moved


def test_a_students_answer_is_graded_by_the_service(app: Flask, world: World, shipped_graph: Any) -> None:
    exercise = next(e for e in shipped_graph.exercises.values() if e.answer_kind == "numeric")
    student = world.actors["student_a"]
    url = f"/api/v1/students/{world.student_a}/responses"
    right = student.request("POST", url, json={"exercise_id": exercise.id, "answer": exercise.answers[0]})
    assert right.status_code == 201
    assert right.get_json()["graded_by"] == "server" and right.get_json()["correct"] is True
    wrong_answer = exercise.answers[0] + "1"
    wrong = student.request("POST", url, json={"exercise_id": exercise.id, "answer": wrong_answer})
    assert wrong.status_code == 201 and wrong.get_json()["correct"] is False


def test_a_learning_app_still_grades_answers_itself(app: Flask, world: World, shipped_graph: Any) -> None:
    exercise = next(iter(shipped_graph.exercises))
    graded = world.actors["app1"].request(
        "POST",
        f"/api/v1/students/{world.student_a}/responses",
        json={"exercise_id": exercise, "correct": True},
    )
    assert graded.status_code == 201 and graded.get_json()["graded_by"] == "app"
    assert stored_answers(app)[0] == 1
