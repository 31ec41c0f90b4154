"""Simultaneous answers, retries in flight and a killed worker, against a real multi-process server.

gunicorn with several workers (processes, like production) serves the app on loopback against the test's
own database: the SQLite file (WAL, shared by the processes) or the run's PostgreSQL database. Whatever the
interleaving, the log must hold each distinct answer exactly once and the stored state must equal a
sequential replay of that log.
"""

from __future__ import annotations

import http.client
import json
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.domain.content import ContentGraph, Exercise
from app.extensions import db
from app.models import Mastery, Response, ResponseSkill, Student
from app.services.modelling.mastery import check_mastery, replay_log
from app.services.tutoring.content import read_snapshot
from app.settings import current_settings
from bench.harness import Gunicorn, serve
from tests.conftest import issue_key

WORKERS = 3
DEADLINE = 120.0  # seconds for any one load phase: a hang fails instead of stalling CI
# Connection-level failures a client sees when the worker handling its request dies.
BROKEN = (OSError, http.client.HTTPException)


@dataclass
class Server:
    gunicorn: Gunicorn
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")

    def log_tail(self) -> str:
        return self.log_text()[-3000:]


@pytest.fixture(scope="module")
def server(
    migrated_app: Flask, database_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("gunicorn") / "stderr.log"
    # create_app({}) rather than wsgi:app: a developer's instance/config.py must not point the server
    # at another database. Everything else comes from the environment, as in production.
    env = {"SECRET_KEY": "concurrency-test", "RATELIMIT_API": "1000000 per minute"}
    with (
        open(log, "wb") as stderr,
        serve("app:create_app({})", database_url, workers=WORKERS, env=env, log=stderr) as running,
    ):
        yield Server(running, log)


def call(
    port: int,
    key: str,
    method: str,
    path: str,
    payload: dict[str, Any] | None = None,
    connection: http.client.HTTPConnection | None = None,
) -> tuple[int, dict[str, Any]]:
    """One request on its own connection (gunicorn's sync workers close it after each response)."""
    conn = connection or http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(
            method,
            path,
            body=json.dumps(payload) if payload is not None else None,
            headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        )
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def new_student(port: int, key: str, external_id: str) -> str:
    status, body = call(port, key, "POST", "/api/v1/students", {"external_id": external_id})
    assert status == 201, body
    return str(body["id"])


def answer_payload(exercise: Exercise, right: bool, client_id: str, graded_here: bool) -> dict[str, Any]:
    """An app-graded answer (``correct``) or a text the server grades (a wrong choice, or nonsense)."""
    payload: dict[str, Any] = {"exercise_id": exercise.id, "client_response_id": client_id}
    if not graded_here:
        return {**payload, "correct": right}
    if right:
        return {**payload, "answer": exercise.answers[0]}
    wrong = [c for c in exercise.choices if c not in exercise.answers]
    return {**payload, "answer": wrong[0] if wrong else "no idea"}


def some_exercises(graph: ContentGraph) -> list[Exercise]:
    """Single-skill exercises and exercises of several skills (one answer, several updates)."""
    ordered = sorted(graph.exercises.values(), key=lambda e: e.id)
    return [e for e in ordered if len(e.skill_ids) == 1][:6] + [e for e in ordered if len(e.skill_ids) > 1][
        :4
    ]


def run_all(jobs: list[Callable[[], Any]], threads: int) -> list[Any]:
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(job) for job in jobs]
        return [future.result(timeout=DEADLINE) for future in futures]


def assert_recorded_once_and_replayable(app: Flask, sent: dict[str, set[str]]) -> None:
    """The log holds each sent (student, client_response_id) exactly once; every trace step equals a
    sequential replay (each answer saw the state the one before it left); the mastery table, the pace and
    the answer counters equal the replay."""
    with app.app_context():
        session = db.session()
        rows = Counter(session.execute(sa.select(Response.student_id, Response.client_response_id)).all())
        assert max(rows.values()) == 1
        assert {(s, c) for s, ids in sent.items() for c in ids} == set(rows)
        stored = {
            (r.response_id, r.skill_id): (r.p_mastery_before, r.p_correct, r.p_mastery_after)
            for r in session.scalars(sa.select(ResponseSkill))
        }
        replayed = {
            (s.response_id, s.skill_id): (s.p_mastery_before, s.p_correct, s.p_mastery_after)
            for s in replay_log(session, read_snapshot(session).params, current_settings().mastery)
        }
        assert stored.keys() == replayed.keys()
        drift = max(abs(a - b) for key in stored for a, b in zip(stored[key], replayed[key], strict=True))
        assert drift < 1e-9, drift
        assert check_mastery(session, current_settings().mastery) == []
        counts = dict(session.execute(sa.select(Student.id, Student.answer_count)).all())
        assert counts == {student: len(ids) for student, ids in sent.items()}
        assert session.scalar(sa.select(sa.func.sum(Mastery.attempts))) == len(stored)


def wait_until(condition: Callable[[], bool], what: str, deadline: float) -> None:
    """Poll until ``condition`` holds; fail at the deadline."""
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def test_parallel_answers_for_one_student_are_recorded_once_and_in_order(
    app: Flask, server: Server, runner: Any, shipped_graph: ContentGraph
) -> None:
    port, key = server.gunicorn.port, issue_key(app, "concurrent-app")
    student = new_student(port, key, "two-tabs")
    others = [new_student(port, key, f"classmate-{i}") for i in range(3)]
    exercises = some_exercises(shipped_graph)
    threads, per_thread = 50, 20

    def plan(t: int, i: int) -> tuple[str, dict[str, Any]]:
        exercise = exercises[(t + i) % len(exercises)]
        return student, answer_payload(exercise, (t * 7 + i) % 3 != 0, f"t{t}-a{i}", graded_here=i % 2 == 1)

    def client(t: int) -> list[tuple[str, int, dict[str, Any]]]:
        out = []
        for i in range(per_thread):
            sends = [plan(t, i)]
            if i % 4 == 0:  # an app retry of another thread's answer, racing the original
                sends.append(plan((t + 1) % threads, i))
            if i % 5 == 0:  # classmates answer meanwhile
                sends.append(
                    (
                        others[(t + i) % 3],
                        answer_payload(exercises[i % 10], i % 2 == 0, f"c{t}-{i}", graded_here=False),
                    )
                )
            for who, payload in sends:
                status, body = call(port, key, "POST", f"/api/v1/students/{who}/responses", payload)
                out.append((who, status, body))
                with lock:
                    progress["sent"] += 1
        return out

    progress, lock = Counter[str](), threading.Lock()
    deadline = time.monotonic() + DEADLINE
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(client, t) for t in range(threads)]
        # An operator's check while answers pour in reads one snapshot: no false alarm.
        wait_until(lambda: progress["sent"] >= 300, "300 answers went through", deadline)
        live = runner.invoke(args=["check-consistency"])
        overlapped = not all(f.done() for f in futures)
        results = [r for f in futures for r in f.result(timeout=DEADLINE)]
    assert live.exit_code == 0 and overlapped, live.output
    statuses = Counter(status for _, status, _ in results)
    assert set(statuses) <= {200, 201}, (
        statuses,
        server.log_tail(),
        [b for _, s, b in results if s not in (200, 201)][:3],
    )
    by_answer: dict[tuple[str, str], list[tuple[int, dict[str, Any]]]] = {}
    for who, status, body in results:
        by_answer.setdefault((who, body["client_response_id"]), []).append((status, body))
    for sends in by_answer.values():
        assert sorted(status for status, _ in sends) == [200] * (len(sends) - 1) + [201]
        assert all(body == sends[0][1] for _, body in sends)
    assert len([a for a in by_answer if a[0] == student]) == threads * per_thread
    sent: dict[str, set[str]] = {}
    for who, client_id in by_answer:
        sent.setdefault(who, set()).add(client_id)
    assert_recorded_once_and_replayable(app, sent)


def fire_together(
    port: int, key: str, path: str, payloads: list[dict[str, Any]]
) -> list[tuple[int, dict[str, Any]]]:
    """Every payload from its own thread, released at the same instant on already open connections."""
    barrier = threading.Barrier(len(payloads))

    def one(payload: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.connect()
        barrier.wait(timeout=30)
        return call(port, key, "POST", path, payload, connection=conn)

    return run_all([lambda p=p: one(p) for p in payloads], len(payloads))


def test_a_retry_in_flight_returns_the_first_result(
    app: Flask, server: Server, shipped_graph: ContentGraph
) -> None:
    port, key = server.gunicorn.port, issue_key(app, "retrying-app")
    student = new_student(port, key, "impatient")
    path = f"/api/v1/students/{student}/responses"
    exercises = some_exercises(shipped_graph)
    sent: set[str] = set()
    for round_, exercise in enumerate(exercises[:3] + exercises[-2:]):
        payload = answer_payload(exercise, round_ % 2 == 0, f"same-{round_}", graded_here=round_ % 2 == 1)
        results = fire_together(port, key, path, [payload] * 12)
        assert sorted(status for status, _ in results) == [200] * 11 + [201], server.log_tail()
        assert all(body == results[0][1] for _, body in results)
        sent.add(payload["client_response_id"])

    # The same id with two different answers at once: the first to get the student wins, the same
    # answer gets its result, the other one a conflict.
    right = answer_payload(exercises[0], True, "contested", graded_here=False)
    other = {**right, "correct": False}
    results = fire_together(port, key, path, [right, other] * 6)
    winner = next(body for status, body in results if status == 201)
    loser = other if winner["correct"] else right
    assert sorted(status for status, _ in results) == [200] * 5 + [201] + [409] * 6
    for (status, body), payload in zip(results, [right, other] * 6, strict=True):
        if status == 409:
            assert payload is loser
            assert body["message"] == (
                "client_response_id 'contested' was already used for a different "
                f"answer (exercise '{exercises[0].id}')."
            )
        else:
            assert body == winner
    sent.add("contested")

    # Afterwards, one at a time: another exercise or another graded answer under a used id conflict too.
    graded = answer_payload(exercises[1], True, "same-1", graded_here=True)  # round 1 sent a wrong one
    for payload in ({**right, "exercise_id": exercises[2].id}, graded):
        status, body = call(port, key, "POST", path, payload)
        assert status == 409 and body["code"] == 409, body
    assert_recorded_once_and_replayable(app, {student: sent})


def test_a_killed_worker_leaves_no_partial_answer(
    app: Flask, server: Server, runner: Any, shipped_graph: ContentGraph
) -> None:
    """kill -9 workers under load; clients retry what failed with the same client_response_id."""
    gunicorn = server.gunicorn
    port, key = gunicorn.port, issue_key(app, "crashing-app")
    students = [new_student(port, key, f"load-{i}") for i in range(6)]
    exercises = some_exercises(shipped_graph)
    threads, per_thread, kills_wanted = 16, 25, 3
    done = Counter[str]()
    lock = threading.Lock()

    def client(t: int) -> list[tuple[str, int, int, dict[str, Any]]]:
        student = students[t % len(students)]  # several clients per student: contention as well
        out = []
        for i in range(per_thread):
            payload = answer_payload(
                exercises[(t + i) % len(exercises)], (t + i) % 3 != 0, f"k{t}-{i}", graded_here=i % 2 == 0
            )
            attempts = 0
            deadline = time.monotonic() + DEADLINE
            while True:
                attempts += 1
                try:
                    status, body = call(port, key, "POST", f"/api/v1/students/{student}/responses", payload)
                    break
                except BROKEN:
                    assert time.monotonic() < deadline, "no worker answered a retry in time"
                    time.sleep(0.05)  # a client's back-off before it retries
            out.append((student, attempts, status, body))
            with lock:
                done["answers"] += 1
                done["interrupted"] += attempts > 1
        return out

    kills: list[int] = []
    picker = random.Random(0)
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [pool.submit(client, t) for t in range(threads)]
        deadline = time.monotonic() + DEADLINE
        for n in range(1, kills_wanted + 1):
            # Each kill once more answers went through, mid-load (the last one well before the end).
            wait_until(lambda n=n: done["answers"] >= 60 * n, f"{60 * n} answers went through", deadline)
            assert not all(f.done() for f in futures), "the load ended before the kills: make it longer"
            victim = picker.choice(gunicorn.worker_pids())
            os.kill(victim, signal.SIGKILL)
            kills.append(victim)
            wait_until(
                lambda v=victim: v not in (pids := gunicorn.worker_pids()) and len(pids) == WORKERS,
                "gunicorn replaced the killed worker",
                deadline,
            )
        results = [r for f in futures for r in f.result(timeout=DEADLINE)]

    assert done["interrupted"] >= 1, "no request was cut off by a kill"
    # (the whole log: every request is logged, so gunicorn's line is far from the tail)
    assert "was sent SIGKILL" in server.log_text()
    for _, attempts, status, body in results:
        # A cut-off request may have been committed before its worker died: the retry then gets 200.
        assert status == 201 or (status == 200 and attempts > 1), (status, body, server.log_tail())
    sent: dict[str, set[str]] = {}
    for student, _, _, body in results:
        sent.setdefault(student, set()).add(body["client_response_id"])
    assert sum(len(ids) for ids in sent.values()) == threads * per_thread
    assert_recorded_once_and_replayable(app, sent)
    checked = runner.invoke(args=["check-consistency"])
    assert checked.exit_code == 0 and checked.output.startswith("Consistent:"), checked.output
