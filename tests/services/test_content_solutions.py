"""Worked solutions: loaded into the database and the snapshot, never served with the question."""

from __future__ import annotations

import shutil
from pathlib import Path

import sqlalchemy as sa

from app.extensions import db
from app.models import Exercise
from app.services.tutoring.content import current_snapshot, load_exercise, sync_content
from tests.conftest import CONTENT_DIR, ApiClient

EXERCISE = "place-value-001"


def test_a_changed_solution_is_a_content_change(app, runner, tmp_path: Path, shipped_graph) -> None:
    content = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, content)
    path = content / "exercises" / "whole-numbers.toml"
    old_step = shipped_graph.exercises[EXERCISE].solution[-1]
    new_step = "So the 5 is worth 500."
    text = path.read_text(encoding="utf-8")
    assert text.count(f'"{old_step}"') == 1
    path.write_text(text.replace(f'"{old_step}"', f'"{new_step}"'), encoding="utf-8")

    result = runner.invoke(args=["load-content", str(content)])
    assert result.exit_code == 0, result.output
    assert f"exercises updated: 1 ({EXERCISE})" in result.output
    with app.app_context():
        wanted = (*shipped_graph.exercises[EXERCISE].solution[:-1], new_step)
        assert tuple(db.session.get(Exercise, EXERCISE).solution) == wanted
        # Every process sees it through the snapshot, and single lookups (retired ones too) carry it.
        assert current_snapshot(db.session()).graph.exercises[EXERCISE].solution == wanted
        assert load_exercise(db.session(), EXERCISE).solution == wanted
    again = runner.invoke(args=["load-content", str(content)])
    assert "content unchanged" in again.output.splitlines()[-1]


def test_rows_without_a_solution_get_one_on_the_next_load(app, shipped_graph) -> None:
    """What a database upgraded to 0011 holds until `load-content` runs: empty solutions."""
    with app.app_context():
        db.session.execute(
            sa.update(Exercise).where(Exercise.id.in_([EXERCISE, "gcf-001"])).values(solution=[])
        )
        db.session.commit()
        changes = sync_content(db.session(), shipped_graph)
        assert sorted(changes.updated_exercises) == ["gcf-001", EXERCISE]
        assert db.session.scalar(sa.select(Exercise.solution).where(Exercise.id == "gcf-001")) == list(
            shipped_graph.exercises["gcf-001"].solution
        )
        assert current_snapshot(db.session()).graph.exercises[EXERCISE].solution == (
            shipped_graph.exercises[EXERCISE].solution
        )


def test_the_exercise_api_never_shows_the_solution(api: ApiClient, shipped_graph) -> None:
    student = api.new_student()
    served = api.get(f"/api/v1/students/{student}/next-exercise")
    exercise_id = served.get_json()["exercise"]["id"]
    direct = api.get(f"/api/v1/exercises/{exercise_id}")
    assert served.status_code == direct.status_code == 200
    exercise = shipped_graph.exercises[exercise_id]
    shown = " ".join((exercise.prompt, *exercise.hints, *exercise.choices))
    # Steps that repeat the prompt or a hint word for word would be there anyway.
    secret = [step for step in exercise.solution if step not in shown]
    assert secret
    for response in (served, direct):
        assert not [step for step in secret if step in response.get_data(as_text=True)]
    assert "solution" not in direct.get_json() and "solution" not in served.get_json()["exercise"]
