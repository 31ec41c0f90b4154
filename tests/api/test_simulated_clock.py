"""Hidden students of the forgetting world through the real HTTP API, on a simulated server clock.

The server stamps every answer with its own clock; ``time_machine`` moves that clock over
school days (Monday to Friday) and then a two-week gap. The service must then choose exactly
what the pure harness (``worlds.run_student``) chooses for the same student and seed, stamp
answers at the simulated times, and show a skill it called mastered as due after the gap.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import time_machine
from flask import Flask

from app.domain.worlds import ForgettingConfig, ForgettingWorld, HiddenStudent, Step, run_student
from app.extensions import db
from app.services.tutoring.config import policy_config
from app.services.tutoring.content import current_snapshot
from tests.conftest import ApiClient

DUE = {"due_for_review", "needs_relearning"}


def next_monday() -> datetime:
    """A Monday after today, so the server clock only ever moves forward from the real one."""
    today = datetime.now(UTC).replace(hour=8, minute=0, second=0, microsecond=0)
    return today + timedelta(days=7 + (7 - today.weekday()) % 7)


def at(text: str) -> datetime:
    """A timestamp of the API: ISO 8601 (schemas) or an HTTP date (the export's JSON)."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = parsedate_to_datetime(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def service_seed(student_id: str, response_ids: list[int], n: int) -> int:
    # tutoring.next_exercise.next_exercise without ?seed: seeded by the student and their latest response id.
    return random.Random(f"{student_id}:{response_ids[n - 1] if n else 0}").getrandbits(63)


def run_through_api(
    api: ApiClient, graph: Any, config: ForgettingConfig, index: int, student_id: str
) -> tuple[list[Step], list[int], list[dict[str, Any]]]:
    """One hidden student's sessions through HTTP; returns the answers, their ids and the progress
    shown at the end of each session."""
    hidden = HiddenStudent(graph, config, index)
    steps: list[Step] = []
    ids: list[int] = []
    shown = []
    for session in config.session_days():
        for k in range(config.answers_per_session):
            now = config.answer_time(session, k)
            with time_machine.travel(now, tick=False):
                body = api.get(f"/api/v1/students/{student_id}/next-exercise").get_json()
                if body["exercise"] is None:
                    break
                exercise = graph.exercises[body["exercise"]["id"]]
                correct = hidden.answer(exercise, now)
                posted = api.post(
                    f"/api/v1/students/{student_id}/responses",
                    json={
                        "exercise_id": exercise.id,
                        "correct": correct,
                        "client_response_id": f"{index}-{len(ids)}",
                    },
                )
                assert posted.status_code == 201, posted.get_json()
            ids.append(posted.get_json()["id"])
            steps.append(Step(now, exercise.id, body["skill_id"], body["reason"], correct))
        with time_machine.travel(config.answer_time(session, config.answers_per_session), tick=False):
            shown.append(api.get(f"/api/v1/students/{student_id}/progress").get_json())
    return steps, ids, shown


def test_hidden_students_through_the_api_follow_the_simulated_clock(app: Flask, api: ApiClient) -> None:
    # Two school weeks (a weekend between) of 10 answers a day, by students fast enough to earn skills.
    world = ForgettingWorld(prior=0.3, learn=0.3)
    with app.app_context():
        snapshot = current_snapshot(db.session())
        config = ForgettingConfig(
            weeks=2, answers_per_session=10, world=world, start=next_monday(), policy=policy_config()
        )
    graph, params = snapshot.graph, snapshot.params
    students = [0, 1]
    checked_gap = 0
    for index in students:
        student_id = api.new_student(f"hidden-{index}")
        steps, ids, shown = run_through_api(api, graph, config, index, student_id)
        assert len(steps) > 50

        # The same student and seeds in the pure harness: the same choices, answers and clock.
        pure = run_student(
            graph,
            "adaptive",
            index,
            config,
            params=params,
            trace=True,
            seed_for=lambda n, sid=student_id, rids=ids: service_seed(sid, rids, n),
        )
        assert list(pure.steps) == steps
        # What the service shows as mastered at each session end is what the harness counts as claims.
        assert [sum(s["status"] == "mastered" for s in p["skills"]) for p in shown] == [
            c for c, _ in pure.session_claims
        ]

        # Server timestamps are the simulated clock: school days only, one answer a minute.
        exported = api.get(f"/api/v1/students/{student_id}/export").get_json()
        stamped = sorted(at(r["created_at"]) for r in exported["responses"])
        assert stamped == [s.at for s in steps]
        assert {t.weekday() for t in stamped} <= {0, 1, 2, 3, 4} and len({t.date() for t in stamped}) == 10
        last = shown[-1]
        for skill in last["skills"]:
            if skill["last_practiced_at"] is not None:
                assert at(skill["last_practiced_at"]) in set(stamped)
            if skill["mastered_at"] is not None:
                assert at(skill["mastered_at"]) in set(stamped)

        # Two weeks later, with no practice: every skill shown as mastered has decayed, and (all but a
        # well-spaced few whose memory is strong enough) are now due for review or need relearning.
        mastered = {s["skill_id"] for s in last["skills"] if s["status"] == "mastered"}
        with time_machine.travel(config.post_test_time(), tick=False):
            later = api.get(f"/api/v1/students/{student_id}/progress").get_json()
        after = {s["skill_id"]: s for s in later["skills"]}
        before = {s["skill_id"]: s["mastery_estimate"] for s in last["skills"]}
        assert all(after[s]["mastery_estimate"] < before[s] for s in mastered)
        assert all(after[s]["recall"] < 1 for s in mastered)
        due = {s for s in mastered if after[s]["status"] in DUE}
        assert all(after[s]["review_due"] for s in due)
        assert len(due) >= max(1, len(mastered) // 2), {s: after[s]["status"] for s in mastered}
        checked_gap += bool(mastered)
    assert checked_gap >= 1  # at least one student had something mastered to forget
