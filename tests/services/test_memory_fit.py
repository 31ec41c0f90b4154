"""`flask fit-memory`: the school's log as FSRS reviews, and clear errors when it cannot fit."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime, timedelta

import time_machine

from app.extensions import db
from app.services.modelling.memory_fit import review_logs
from tests.conftest import ApiClient


def test_answers_on_later_days_become_reviews_and_a_thin_log_is_refused(
    app, api: ApiClient, runner, shipped_graph
) -> None:
    student = api.new_student()
    exercise = shipped_graph.exercises_by_skill["place-value"][0]
    answer = shipped_graph.exercises[exercise].answers[0]
    start = datetime(2026, 3, 2, 9, tzinfo=UTC)
    # day 0: wrong, right, right; day 2: right; day 2 again: right (same day: no review); day 9: wrong
    plan = [
        (0, "nope"),
        (0, answer),
        (1, answer),
        (2 * 24 * 60, answer),
        (2 * 24 * 60 + 5, answer),
        (9 * 24 * 60, "nope"),
    ]
    for minute, text in plan:
        with time_machine.travel(start + timedelta(minutes=minute), tick=False):
            response = api.post(
                f"/api/v1/students/{student}/responses", json={"exercise_id": exercise, "answer": text}
            )
            assert response.status_code == 201
            assert response.get_json()["created_at"].startswith(
                (start + timedelta(minutes=minute)).date().isoformat()
            )
    with app.app_context():
        logs = review_logs(db.session())
    assert [(log.review_datetime, int(log.rating)) for log in logs] == [  # type: ignore[attr-defined]
        (start, 3),
        (start + timedelta(days=2), 3),
        (start + timedelta(days=9), 1),
    ]
    result = runner.invoke(args=["fit-memory"])
    assert result.exit_code == 1
    assert "The log has 3 reviews" in result.output and "needs at least 400" in result.output


def test_without_pytorch_the_command_says_what_to_install(app, runner, monkeypatch) -> None:
    if importlib.util.find_spec("torch") is not None:  # the optimizer is there: nothing to refuse
        return
    import app.services.modelling.memory_fit as memory_fit

    monkeypatch.setattr(memory_fit, "MIN_REVIEWS", 0)
    result = runner.invoke(args=["fit-memory"])
    assert result.exit_code == 1 and "pip install 'fsrs[optimizer]'" in result.output
