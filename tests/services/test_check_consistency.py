"""flask check-consistency: the stored state against a replay of the log, and its repair."""

from __future__ import annotations

import sqlite3
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.domain.content import ContentGraph
from app.extensions import db
from app.models import Mastery
from app.services.modelling import fitting, mastery
from app.services.modelling.mastery import check_mastery
from app.settings import current_settings
from tests.conftest import ApiClient


def writers_held_back() -> bool:
    """Whether an answer or a new student would have to wait right now (asked of the database, not timed):
    SQLite: another connection cannot take the write lock; PostgreSQL: the students table cannot be locked
    as an answer's SELECT ... FOR UPDATE (ROW SHARE) or a new student's INSERT (ROW EXCLUSIVE) locks it."""
    url = db.engine.url
    if url.get_backend_name() == "sqlite":
        probe = sqlite3.connect(str(url.database), timeout=0, isolation_level=None)
        try:
            probe.execute("BEGIN IMMEDIATE")
            probe.execute("ROLLBACK")
            return False
        except sqlite3.OperationalError as error:
            assert "locked" in str(error), error
            return True
        finally:
            probe.close()
    with db.engine.connect() as probe:  # a connection of its own, beside the command's
        for mode in ("ROW SHARE", "ROW EXCLUSIVE"):
            try:
                probe.execute(sa.text(f"LOCK TABLE students IN {mode} MODE NOWAIT"))
            except sa.exc.OperationalError as error:
                assert getattr(error.orig, "sqlstate", None) == "55P03", error  # lock_not_available
                probe.rollback()
            else:
                probe.rollback()
                return False
    return True


def test_check_consistency_names_what_differs_and_repairs_it(
    app: Flask, api: ApiClient, runner: Any, shipped_graph: ContentGraph
) -> None:
    student, other = api.new_student("s-1"), api.new_student("s-2")
    exercises = shipped_graph.exercises
    several = next(e for e in sorted(exercises) if len(exercises[e].skill_ids) > 1)  # two skills at once
    for i, exercise in enumerate([several, *sorted(exercises)[:3], several]):
        for who in (student, other):
            response = api.post(
                f"/api/v1/students/{who}/responses", json={"exercise_id": exercise, "correct": i % 2 == 0}
            )
            assert response.status_code == 201, response.get_json()
    clean = runner.invoke(args=["check-consistency"])
    assert clean.exit_code == 0, clean.output
    assert clean.output == "Consistent: stored state equals a replay of the log (2 students, 10 answers).\n"

    skill, gone = exercises[several].skill_ids[:2]
    with app.app_context():
        before = {
            (m.student_id, m.skill_id): (m.p_mastery, m.attempts)
            for m in db.session.scalars(sa.select(Mastery))
        }
        db.session.execute(
            sa.text("UPDATE mastery SET p_mastery = 0.5 WHERE student_id = :s AND skill_id = :k"),
            {"s": student, "k": skill},
        )
        db.session.execute(
            sa.text("DELETE FROM mastery WHERE student_id = :s AND skill_id = :k"), {"s": student, "k": gone}
        )
        db.session.execute(
            sa.text("UPDATE students SET answer_count = answer_count + 3 WHERE id = :s"), {"s": other}
        )
        db.session.commit()

    broken = runner.invoke(args=["check-consistency"])
    assert broken.exit_code == 1, broken.output
    lines = broken.output.splitlines()
    assert lines[0] == "Inconsistent: 3 difference(s) for 2 student(s) (2 students, 10 answers):"
    assert f"  student {student} skill {skill}: stored P(L) 0.5, by speed [" in broken.output
    assert f"  student {student} skill {gone}: stored no row; replayed P(L) " in broken.output
    assert f"  student {other}: answer count stored 8, in the log 5" in lines
    assert lines[-1].startswith("Error: the stored state differs from a replay of the log")

    repaired = runner.invoke(args=["check-consistency", "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert "Repaired 2 student(s): 10 answers replayed, " in repaired.output
    assert repaired.output.splitlines()[-1] == "Checked again: consistent (2 students, 10 answers)."
    again = runner.invoke(args=["check-consistency"])
    assert again.exit_code == 0 and again.output.startswith("Consistent:"), again.output
    with app.app_context():
        assert check_mastery(db.session(), current_settings().mastery) == []
        after = {
            (m.student_id, m.skill_id): (m.p_mastery, m.attempts)
            for m in db.session.scalars(sa.select(Mastery))
        }
    assert after.keys() == before.keys()
    assert all(abs(after[k][0] - before[k][0]) < 1e-12 and after[k][1] == before[k][1] for k in before)


def test_check_consistency_on_an_empty_database(app: Flask, runner: Any) -> None:
    result = runner.invoke(args=["check-consistency", "--repair"])
    assert result.exit_code == 0
    assert result.output == "Consistent: stored state equals a replay of the log (0 students, 0 answers).\n"


def test_the_check_reads_one_snapshot_and_holds_no_answer_up(
    app: Flask, api: ApiClient, runner: Any, shipped_graph: ContentGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An answer committed in the middle of a check (after it read the log, before it reads the mastery
    table) neither waits for the check nor shows up as a difference."""
    student = api.new_student()
    url, exercise = f"/api/v1/students/{student}/responses", sorted(shipped_graph.exercises)[0]
    assert api.post(url, json={"exercise_id": exercise, "correct": True}).status_code == 201
    replay, answered = mastery.replay_models, []

    def replay_then_answer(*args: Any, **kwargs: Any) -> Any:
        replayed = list(replay(*args, **kwargs))
        held = writers_held_back()
        # From another thread, so the request has an app context, and a database session, of its own. Had
        # the check held a lock, the answer would wait for it: a 503 after SQLite's busy timeout, or a
        # TimeoutError here on PostgreSQL (the check waits for the answer).
        with ThreadPoolExecutor(max_workers=1) as other:
            status = other.submit(
                lambda: api.post(url, json={"exercise_id": exercise, "correct": False}).status_code
            ).result(timeout=60)
        answered.append((held, status))
        return iter(replayed)

    monkeypatch.setattr(mastery, "replay_models", replay_then_answer)
    result = runner.invoke(args=["check-consistency"])
    assert answered == [(False, 201)]  # nothing held back while the check read, and the answer went in
    assert result.exit_code == 0, result.output
    assert "(1 students, 1 answers)" in result.output  # as of the snapshot
    monkeypatch.undo()
    assert runner.invoke(args=["check-consistency"]).output.endswith("(1 students, 2 answers).\n")


def test_answers_during_a_rebuild_are_not_held_and_land_on_a_replayed_state(
    app: Flask, api: ApiClient, runner: Any, shipped_graph: ContentGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rebuild-mastery (and the replay after fit-params) replays in chunks that hold no lock while they read
    and replay: an answer sent meanwhile, also by a student created meanwhile, goes in at once; the answering
    student, behind the parameters revision the rebuild started, is replayed by their own answer first, and
    the chunk then leaves them alone (their state moved since it was read). Nothing lost, nothing twice."""
    student = api.new_student()
    url, exercise = f"/api/v1/students/{student}/responses", sorted(shipped_graph.exercises)[0]
    for correct in (True, False, True):
        assert api.post(url, json={"exercise_id": exercise, "correct": correct}).status_code == 201
    replay, answered = mastery.replay_models, []

    def newcomer_answers() -> int:
        newcomer = api.new_student("newcomer")
        return int(
            api.post(
                f"/api/v1/students/{newcomer}/responses", json={"exercise_id": exercise, "correct": True}
            ).status_code
        )

    def replay_then_answer(*args: Any, **kwargs: Any) -> Any:
        replayed = list(replay(*args, **kwargs))
        if answered or threading.current_thread() is not threading.main_thread():
            return iter(replayed)  # the answers' own replays (their student is behind), or a later chunk
        held = writers_held_back()
        with ThreadPoolExecutor(max_workers=2) as others:  # their own app contexts and connections
            first = others.submit(lambda: api.post(url, json={"exercise_id": exercise, "correct": False}))
            second = others.submit(newcomer_answers)
            # Had the chunk held a lock, these would wait for it (a TimeoutError here).
            answered.append((held, first.result(timeout=60).status_code, second.result(timeout=60)))
        return iter(replayed)

    monkeypatch.setattr(mastery, "replay_models", replay_then_answer)
    rebuilt = runner.invoke(args=["rebuild-mastery"])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert answered == [(False, 201, 201)]
    # The chunk wrote no one: the one student it read had answered (and replayed) in between.
    assert "0 students" in rebuilt.output and "still behind" not in rebuilt.output, rebuilt.output
    monkeypatch.undo()
    with app.app_context():
        assert check_mastery(db.session(), current_settings().mastery) == []
        assert mastery.students_behind(db.session()) == 0
        assert db.session.scalar(sa.select(sa.func.sum(Mastery.attempts))) == 5 * len(
            shipped_graph.exercises[exercise].skill_ids
        )


def test_answers_go_on_while_pybkt_fits_and_are_in_the_replay_after(
    app: Flask, api: ApiClient, shipped_graph: ContentGraph, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fit-params reads and fits in a read-only snapshot: an answer sent mid-fit is recorded at once (no
    write lock held; SQLite would make it wait up to its 30 s busy timeout) and the replay includes it."""
    student = api.new_student()
    url, exercise = f"/api/v1/students/{student}/responses", sorted(shipped_graph.exercises)[0]
    for i in range(12):
        assert api.post(url, json={"exercise_id": exercise, "correct": i % 3 != 0}).status_code == 201
    fit_frame, answered = fitting.fit_frame, []

    def answer_then_fit(*args: Any, **kwargs: Any) -> Any:
        held = writers_held_back()
        # Had the fit held the write lock, the answer would wait for it (503 after SQLite's busy timeout,
        # a TimeoutError here on PostgreSQL).
        with ThreadPoolExecutor(max_workers=1) as other:
            status = other.submit(
                lambda: api.post(url, json={"exercise_id": exercise, "correct": True}).status_code
            ).result(timeout=60)
        answered.append((held, status))
        return fit_frame(*args, **kwargs)

    monkeypatch.setattr(fitting, "fit_frame", answer_then_fit)
    with app.app_context():
        report = fitting.fit_parameters(
            db.session(), min_responses=1, num_fits=1, rules=current_settings().mastery
        )
        # The fit saw the log as of its snapshot; the replay after it, every answer.
        assert report.n_responses == 12 * len(shipped_graph.exercises[exercise].skill_ids)
        assert check_mastery(db.session(), current_settings().mastery) == []
        assert db.session.scalar(sa.select(sa.func.sum(Mastery.attempts))) == 13 * len(
            shipped_graph.exercises[exercise].skill_ids
        )
    assert answered == [(False, 201)]  # nothing held back mid-fit, and the answer went in
