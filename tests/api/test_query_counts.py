"""The answer → next-exercise loop runs a fixed number of SQL statements, whatever the student's history."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from flask import Flask
from sqlalchemy import event

from app.extensions import db
from tests.conftest import ApiClient

# Statements per step, measured and pinned so a new query in the hot path fails here. An answer: key
# lookup, student (locked), retry check, content revision, the answered skills' mastery rows, the rows the new
# pace estimate could bring to mastery (none, mostly), pending recommendation, and the writes (student,
# mastery, response, its skills); SQLite adds BEGIN IMMEDIATE; +1 when such rows get new check levels, +1
# when one is mastered that way. Next exercise: key, student, revision, mastery, recent answers, last reason
# and skill, last recommendation (+ its answer), the stored recommendation.
MAX_ANSWER = 14
MAX_NEXT = 8


@contextmanager
def counted(app: Flask) -> Iterator[list[str]]:
    statements: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:  # noqa: ANN001
        statements.append(statement.split()[0].upper() + " " + " ".join(statement.split()[1:4]))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def one_step(app: Flask, api: ApiClient, student: str, i: int) -> tuple[int, int]:
    chosen = api.get(f"/api/v1/students/{student}/next-exercise").get_json()
    with counted(app) as answer:
        response = api.post(
            f"/api/v1/students/{student}/responses",
            json={
                "exercise_id": chosen["exercise"]["id"],
                "correct": i % 3 != 0,
                "client_response_id": f"q-{i}",
            },
        )
        assert response.status_code == 201
    with counted(app) as next_:
        assert api.get(f"/api/v1/students/{student}/next-exercise").status_code == 200
    return len(answer), len(next_)


def test_queries_per_step_do_not_grow_with_history(app: Flask, api: ApiClient) -> None:
    student = api.new_student("history")
    counts = [one_step(app, api, student, i) for i in range(80)]
    # The same statements after 5 answers as after 80 (up to two more UPDATEs when a new pace estimate
    # could master other skills, which may or may not happen early: the choices depend on the random student
    # id); never a statement per past answer.
    fewest_answer = min(a for a, _ in counts[:20])
    most_next = max(n for _, n in counts[:20])
    assert all(a <= fewest_answer + 2 and n <= most_next for a, n in counts[-20:]), counts
    assert max(a for a, _ in counts) <= MAX_ANSWER, sorted(set(counts))
    assert max(n for _, n in counts) <= MAX_NEXT, sorted(set(counts))


def test_an_answer_reads_only_the_skills_it_can_change(app: Flask, api: ApiClient) -> None:
    """The mastery rows an answer loads: the answered skills', and unearned ones a new pace estimate could
    bring to mastery; never the skills already earned, however many the student has practised."""
    from sqlalchemy import event as orm_event
    from sqlalchemy import select

    from app.models import Mastery

    student = api.new_student("reads")
    loaded: list[tuple[str, bool]] = []  # (skill, earned when read)

    def on_load(target: Mastery, context: object) -> None:
        loaded.append((target.skill_id, target.mastered_at is not None))

    fewer = 0
    for i in range(90):
        chosen = api.get(f"/api/v1/students/{student}/next-exercise").get_json()["exercise"]
        answered = set(chosen["skill_ids"])
        with app.app_context():
            held = db.session.scalar(
                select(db.func.count()).select_from(Mastery).where(Mastery.student_id == student)
            )
        orm_event.listen(Mastery, "load", on_load)
        try:
            reply = api.post(
                f"/api/v1/students/{student}/responses",
                json={"exercise_id": chosen["id"], "correct": i % 4 != 0},
            )
        finally:
            orm_event.remove(Mastery, "load", on_load)
        assert reply.status_code == 201
        for skill_id, earned in loaded:
            assert skill_id in answered or not earned, (i, skill_id)
        fewer += len(loaded) < held
        loaded.clear()
    assert fewer > 30  # the student held rows the answers did not read
