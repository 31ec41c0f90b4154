"""A long run of right answers, then wrong ones, through the API: the stored state keeps P(not L) (mastery
.p_not_mastered), so the wrong answers still lower the tracker's P(L) and predictions, as pyBKT's forward pass
does; with P(L) alone it would have stayed at exactly 1.0."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from flask import Flask

from app.domain.bkt import Belief, belief_after, predict_from
from app.domain.content import ContentGraph
from app.extensions import db
from app.models import Mastery, Response, ResponseSkill
from app.services.tutoring.content import current_snapshot
from tests.conftest import ApiClient


def test_wrong_answers_after_a_long_right_run_still_count(
    app: Flask, api: ApiClient, runner: Any, shipped_graph: ContentGraph
) -> None:
    exercise = next(
        e for e in sorted(shipped_graph.exercises) if len(shipped_graph.exercises[e].skill_ids) == 1
    )
    (skill,) = shipped_graph.exercises[exercise].skill_ids
    student = api.new_student("long-run")
    outcomes = [True] * 18 + [False] * 40
    for correct in outcomes:
        answered = api.post(
            f"/api/v1/students/{student}/responses", json={"exercise_id": exercise, "correct": correct}
        )
        assert answered.status_code == 201, answered.get_json()

    with app.app_context():
        params = current_snapshot(db.session()).params[skill]
        expected, belief = [], Belief.of(params.prior)
        for correct in outcomes:
            expected.append(predict_from(belief, params))
            belief = belief_after(belief, correct, params)
        stored = db.session.scalars(
            sa.select(ResponseSkill.p_correct)
            .join(Response, Response.id == ResponseSkill.response_id)
            .where(Response.student_id == student, ResponseSkill.skill_id == skill)
            .order_by(Response.id)
        ).all()
        row = db.session.get(Mastery, (student, skill))
        assert row is not None
        db.session.commit()
    assert max(abs(s - e) for s, e in zip(stored, expected, strict=True)) < 1e-12
    saturated = 1.0 - params.slip
    assert stored[18] == saturated  # P(L) rounded to 1.0 after the right run ...
    assert stored[-1] < saturated - 0.3  # ... and the wrong answers still brought the prediction down
    assert row.p_mastery == belief.known < 0.5 and row.p_not_mastered == belief.unknown

    progress = api.get(f"/api/v1/students/{student}/progress").get_json()
    shown = next(s for s in progress["skills"] if s["skill_id"] == skill)
    assert shown["p_mastery"] < 0.5
    consistent = runner.invoke(args=["check-consistency"])
    assert consistent.exit_code == 0 and consistent.output.startswith("Consistent"), consistent.output
