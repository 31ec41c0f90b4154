"""Replays in chunks (issue 21): new parameters commit at once, students are replayed a chunk at a time, and
answers that arrive meanwhile, a crash or a cancel never leave anyone inconsistent."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import requests
import sqlalchemy as sa
from flask import Flask

from app.domain.bkt import BktParams
from app.domain.content import ContentGraph, build_graph
from app.extensions import db
from app.models import FitRun, Mastery, Response, ResponseSkill, SkillParameters, Student
from app.services.modelling import mastery
from app.services.modelling.fitting import fit_parameters
from app.services.modelling.imports import import_log
from app.services.modelling.mastery import (
    behind,
    check_consistency,
    rebuild_mastery,
    replay_log,
    replay_stale,
    students_behind,
)
from app.services.tutoring.content import read_snapshot, sync_content
from app.settings import current_settings
from tests.conftest import DATA_DIR, ApiClient, issue_key, serve

# Content defaults unlike the shipped ones: loading them makes every skill's parameters new.
NEW_DEFAULTS = BktParams(prior=0.31, learn=0.23, guess=0.17, slip=0.13)


class Crash(Exception):
    """The replay's process dying mid-way (raised from its progress callback)."""


def with_new_defaults(graph: ContentGraph) -> ContentGraph:
    return build_graph(
        [replace(s, bkt=NEW_DEFAULTS) for s in graph.skills.values()], graph.exercises.values()
    )


def practise(api: ApiClient, graph: ContentGraph, students: int, answers: int, seed: int = 1) -> list[str]:
    """Students with a history of answers through the API (seeded)."""
    rng = random.Random(seed)
    exercises = sorted(graph.exercises)
    ids = [api.new_student(f"s-{i}") for i in range(students)]
    for _ in range(answers):
        for student in ids:
            body = {"exercise_id": rng.choice(exercises), "correct": rng.random() < 0.6}
            assert api.post(f"/api/v1/students/{student}/responses", json=body).status_code == 201
    return ids


def new_parameters(graph: ContentGraph) -> None:
    """New current parameters for every skill, committed alone (no replay ran): everyone with answers is
    behind, as right after a fit's versions commit."""
    changes = sync_content(db.session(), with_new_defaults(graph))
    assert len(changes.replaced_parameters) == len(graph.skills)


def stored_state() -> dict[tuple[str, str], tuple[Any, ...]]:
    # pace_check_at is the answer path's index, not state: a replay leaves it to the next answer
    columns = [c for c in Mastery.__table__.c if c.name not in ("student_id", "skill_id", "pace_check_at")]
    rows = db.session.execute(sa.select(Mastery.student_id, Mastery.skill_id, *columns)).all()
    db.session.rollback()
    return {(r[0], r[1]): tuple(r[2:]) for r in rows}


def pace() -> dict[str, Any]:
    found = dict(db.session.execute(sa.select(Student.id, Student.speed_weights)).all())
    db.session.rollback()
    return found


def assert_same_state(a: dict[Any, tuple[Any, ...]], b: dict[Any, tuple[Any, ...]]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        for x, y in zip(a[key], b[key], strict=True):
            if isinstance(x, float) or isinstance(y, float):
                assert x == pytest.approx(y, abs=1e-12), key
            elif isinstance(x, list):
                assert x == pytest.approx(y, abs=1e-12), key
            else:
                assert x == y, key


def consistent(*, behind: int | None = 0) -> Any:
    """check-consistency finds nothing wrong (students still behind are checked under their own versions)."""
    found = check_consistency(db.session(), rules=current_settings().mastery)
    assert found.mismatches == [], found.mismatches[:5]
    if behind is not None:
        assert found.behind == behind
    return found


@pytest.fixture
def base_url(app: Flask) -> Iterator[str]:
    with serve(app) as url:
        yield url


def test_answers_from_concurrent_writers_during_a_chunked_replay_land_consistently(
    app: Flask, api: ApiClient, shipped_graph: ContentGraph, base_url: str
) -> None:
    """Writer threads post answers over HTTP for random students while the replay runs (each chunk waits
    until another answer has gone in since the last, so they really interleave); every answer is recorded,
    whether its student's chunk had committed, was being computed, or was still to come, and the end state
    equals a replay of the whole log."""
    students = practise(api, shipped_graph, students=24, answers=6)
    exercises = sorted(shipped_graph.exercises)
    with app.app_context():
        new_parameters(shipped_graph)
        assert students_behind(db.session()) == 24
        db.session.rollback()

    stop, lock = threading.Event(), threading.Lock()
    statuses: list[int] = []

    def writer(seed: int) -> None:
        rng, http = random.Random(seed), requests.Session()
        headers = dict(api.headers)
        while not stop.is_set():
            body = {"exercise_id": rng.choice(exercises), "correct": rng.random() < 0.5}
            url = f"{base_url}/api/v1/students/{rng.choice(students)}/responses"
            status = http.post(url, json=body, headers=headers, timeout=60).status_code
            with lock:
                statuses.append(status)

    def answered() -> int:
        with lock:
            return len(statuses)

    progress: list[tuple[int, int]] = []
    seen = [0]

    def interleave(done: int, total: int) -> None:
        progress.append((done, total))
        give_up = time.monotonic() + 60
        while answered() <= seen[0]:  # the next chunk only after another answer went in
            assert time.monotonic() < give_up, "no answer went in between two chunks"
            time.sleep(0.005)
        seen[0] = answered()

    writers = [threading.Thread(target=writer, args=(seed,)) for seed in range(3)]
    for thread in writers:
        thread.start()
    try:
        with app.app_context():
            report = replay_stale(
                db.session(), rules=current_settings().mastery, progress=interleave, chunk_responses=20
            )
    finally:
        stop.set()
        for thread in writers:
            thread.join(timeout=60)
    assert set(statuses) == {201} and len(statuses) >= report.chunks
    # Students who answered before their chunk came were replayed by that answer: fewer chunks, fewer written.
    assert report.chunks >= 2 and report.remaining == 0
    assert progress[0] == (0, 24) and progress[-1] == (24, 24)
    with app.app_context():
        consistent()
        answers = db.session.scalar(sa.select(sa.func.count()).select_from(Response))
        assert answers == 24 * 6 + len(statuses)


def test_a_replay_stopped_by_a_crash_is_finished_by_the_next_answer_and_the_next_rebuild(
    app: Flask,
    shipped_graph: ContentGraph,
    base_url: str,
    runner: Any,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """fit-params' replay dies after two chunks: the new versions are current, some students are replayed
    and the rest are behind, each consistent with the versions their rows name. A behind student's answer
    replays them first; `rebuild-mastery --stale-only` does the rest; the end state equals the old
    single-transaction replay of everyone."""
    frame = pd.read_csv(DATA_DIR / "assistments_2skills.csv", encoding="latin-1", index_col=0)
    users = frame["user_id"].drop_duplicates().head(60)
    log_file = tmp_path / "log.csv"
    frame[frame["user_id"].isin(users)].to_csv(log_file, encoding="latin-1")
    key = issue_key(app, "research", school="Research school")
    with app.app_context():
        rules = current_settings().mastery
        import_log(
            db.session(),
            log_file,
            "assistments",
            app_name="research",
            school_name="Research school",
            rules=rules,
        )
        monkeypatch.setattr(mastery, "CHUNK_RESPONSES", 300)  # many chunks of this small log
        calls: list[tuple[int, int]] = []

        def crash_after_two_chunks(done: int, total: int) -> None:
            calls.append((done, total))
            if len(calls) == 3:  # (0, total), then one call per committed chunk
                raise Crash

        with pytest.raises(Crash):
            fit_parameters(
                db.session(), num_fits=1, min_responses=1, rules=rules, progress=crash_after_two_chunks
            )
        db.session.rollback()
        run = db.session.scalar(sa.select(FitRun).order_by(FitRun.id.desc()))
        assert run is not None
        fitted = db.session.scalars(
            sa.select(SkillParameters).where(SkillParameters.is_current, SkillParameters.fit_run_id == run.id)
        ).all()
        assert fitted, "the fit's versions committed before the replay"
        left = consistent(behind=None).behind
        assert 0 < left < 60 and calls[0] == (0, 60)
        lagging = db.session.scalar(
            sa.select(Student.id).where(behind(read_snapshot(db.session()).parameters_revision)).limit(1)
        )
        db.session.rollback()

    # The next answer of a student left behind: replayed first, then the answer on top.
    exercise = sorted(shipped_graph.exercises)[0]
    posted = requests.post(
        f"{base_url}/api/v1/students/{lagging}/responses",
        json={"exercise_id": exercise, "correct": True},
        headers={"Authorization": f"Bearer {key}"},
        timeout=60,
    )
    assert posted.status_code == 201, posted.text
    with app.app_context():
        consistent(behind=left - 1)

    finished = runner.invoke(args=["rebuild-mastery", "--stale-only"])
    assert finished.exit_code == 0, finished.output
    assert f"{left - 1} students" in finished.output and "still behind" not in finished.output, (
        finished.output
    )
    with app.app_context():
        consistent()
        chunked, chunked_pace = stored_state(), pace()
        rebuild_mastery(db.session(), rules=rules)  # the old path: everyone in one transaction
        assert_same_state(chunked, stored_state())
        for student, weights in pace().items():
            assert weights == pytest.approx(chunked_pace[student], abs=1e-12), student


def test_a_behind_students_first_answer_equals_a_full_replay_then_that_answer(
    app: Flask, api: ApiClient, shipped_graph: ContentGraph
) -> None:
    """The version check: the answer of a student behind the current parameters is traced from the state
    a full replay under them gives (what the old single-transaction replay, then the answer, would give),
    and every row of the student is rewritten under them."""
    student, *_ = practise(api, shipped_graph, students=2, answers=12, seed=5)
    with app.app_context():
        before = stored_state()
        new_parameters(shipped_graph)
        db.session.commit()
    several = next(
        e for e in sorted(shipped_graph.exercises) if len(shipped_graph.exercises[e].skill_ids) > 1
    )
    posted = api.post(f"/api/v1/students/{student}/responses", json={"exercise_id": several, "correct": True})
    assert posted.status_code == 201
    with app.app_context():
        session, rules = db.session(), current_settings().mastery
        snapshot = read_snapshot(session)
        # The other student is still behind (and consistent under the versions their rows name).
        consistent(behind=1)
        mine = {k: v for k, v in stored_state().items() if k[0] == student}
        assert mine.keys() == {k for k in before if k[0] == student} | {
            (student, s) for s in shipped_graph.exercises[several].skill_ids
        }
        ids = set(session.scalars(sa.select(Mastery.parameters_id).where(Mastery.student_id == student)))
        assert ids <= {p.id for p in snapshot.parameters.values()}  # every row under the current versions
        # The answer's stored steps are the full replay's steps for it.
        latest = session.scalar(sa.select(sa.func.max(Response.id)).where(Response.student_id == student))
        steps = {
            s.skill_id: s
            for s in replay_log(session, snapshot.params, rules, [student])
            if s.response_id == latest
        }
        stored = session.scalars(sa.select(ResponseSkill).where(ResponseSkill.response_id == latest)).all()
        assert {s.skill_id for s in stored} == set(steps) == set(shipped_graph.exercises[several].skill_ids)
        for row in stored:
            step = steps[row.skill_id]
            assert row.p_mastery_before == pytest.approx(step.p_mastery_before, abs=1e-12)
            assert row.p_correct == pytest.approx(step.p_correct, abs=1e-12)
            assert row.p_mastery_after == pytest.approx(step.p_mastery_after, abs=1e-12)
            assert row.p_mastery_paced_after == pytest.approx(step.p_mastery_paced_after, abs=1e-12)
            assert row.parameters_id == snapshot.parameters[row.skill_id].id
        session.rollback()
        # The old path (replay everyone in one transaction) finds the student's state as the answer left it.
        rebuild_mastery(session, rules=rules)
        assert_same_state(mine, {k: v for k, v in stored_state().items() if k[0] == student})


def test_reads_of_a_student_behind_show_the_replayed_state(
    app: Flask, api: ApiClient, shipped_graph: ContentGraph
) -> None:
    """Before their chunk is written, a student's progress reads as the replay under the current parameters
    (what it reads after the replay), not as the rows left by the old ones."""
    student, *_ = practise(api, shipped_graph, students=1, answers=15, seed=9)
    url = f"/api/v1/students/{student}/progress"
    old = api.get(url).get_json()
    with app.app_context():
        new_parameters(shipped_graph)
        db.session.commit()
    while_behind = api.get(url).get_json()
    with app.app_context():
        assert students_behind(db.session()) == 1
        replay_stale(db.session(), rules=current_settings().mastery)
        assert students_behind(db.session()) == 0
        db.session.rollback()
    after = api.get(url).get_json()

    def numbers(body: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
        return {
            s["skill_id"]: (s["status"], s["p_mastery"], s["p_mastery_paced"], s["mastery_estimate"])
            for s in body["skills"]
        }

    replayed, later = numbers(while_behind), numbers(after)
    assert replayed.keys() == later.keys()
    for skill_id, values in replayed.items():  # read a moment apart: recall moves by far less than 1e-5
        assert values[0] == later[skill_id][0]
        assert values[1:] == pytest.approx(later[skill_id][1:], abs=1e-5), skill_id
    assert numbers(old) != replayed  # not the old rows: the new parameters change every P(L)


def test_a_cancelled_replay_stops_between_chunks_and_the_next_one_finishes(
    app: Flask, api: ApiClient, shipped_graph: ContentGraph
) -> None:
    practise(api, shipped_graph, students=8, answers=5, seed=3)
    with app.app_context():
        session, rules = db.session(), current_settings().mastery
        new_parameters(shipped_graph)
        chunks: list[int] = []
        stopped = replay_stale(
            session,
            rules=rules,
            progress=lambda done, total: chunks.append(done),
            cancelled=lambda: len(chunks) > 2,  # after two chunks
            chunk_responses=10,
        )
        assert stopped.chunks == 2 and stopped.remaining == 8 - stopped.students > 0
        consistent(behind=stopped.remaining)
        rest = replay_stale(session, rules=rules)
        assert rest.students == stopped.remaining and rest.remaining == 0
        consistent()


def test_check_consistency_checks_a_student_behind_under_their_own_versions(
    app: Flask, api: ApiClient, shipped_graph: ContentGraph, runner: Any
) -> None:
    """A student behind is not a fault, but a tampered one is; --repair fixes it and finishes the replay."""
    practise(api, shipped_graph, students=3, answers=4, seed=4)
    with app.app_context():
        new_parameters(shipped_graph)
        consistent(behind=3)
        victim = db.session.scalar(sa.select(Mastery.student_id).limit(1))
        db.session.execute(sa.update(Mastery).where(Mastery.student_id == victim).values(p_mastery=0.5))
        db.session.commit()
        found = check_consistency(db.session(), rules=current_settings().mastery)
        assert found.students_affected == [victim] and found.behind == 3
    checked = runner.invoke(args=["check-consistency"])
    assert checked.exit_code == 1 and "3 still to be replayed" in checked.output, checked.output
    repaired = runner.invoke(args=["check-consistency", "--repair"])
    assert repaired.exit_code == 0, repaired.output
    assert repaired.output.splitlines()[-1].startswith("Checked again: consistent (3 students, 12 answers)")
    with app.app_context():
        consistent()
