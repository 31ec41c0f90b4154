"""Replay benchmark: how long answers wait while every student is replayed after new parameters, in one run.

    .venv/bin/python bench/replay.py [--backend postgresql|sqlite|both] [--students 40000] [--answers 100]
                                     [--reuse] [--old-students 4000] [--old-full] [--clients 4]
                                     [--think-ms 50] [--baseline-seconds 20] [--workers 2] [--check]

For each backend, a database with the shipped content and a synthetic log of STUDENTS x ANSWERS responses
(default 40,000 x 100 = 4 million) over the shipped exercises, bulk-inserted (COPY on PostgreSQL), then
replayed once so the mastery table is true (timed: the chunked replay with nothing else running). With
--reuse the database is kept (PostgreSQL: tutor_bench_replay_<students>x<answers>; SQLite: a file of that
name in the temporary directory) and taken as it is by the next run of the same size.

gunicorn (WORKERS workers) serves the tutor; a load-generator process runs CLIENTS keep-alive clients, each
posting an answer for a random student and then waiting THINK_MS. Phases, all in this one run:
  baseline   the load for BASELINE_SECONDS with nothing else running;
  chunked    new parameter versions as `fit-params` makes them current (``adopt_parameters``: versions and
             revision in one short commit), then the chunked replay (``mastery.replay_stale``), under load;
  old        (on a log of OLD_STUDENTS x ANSWERS, or the full one with --old-full) the previous path: the
             versions, the revision and the replay of everyone in ONE transaction that holds all answers.
For each phase it prints the answers sent during it (p50, p99, max of their latency; target during the
chunked replay: max <= 1 s) against the baseline's in the same run, and the replay's total time. At the end,
no student may be left behind, and `check-consistency` must pass (logs above a million responses with
--check only: it is a full replay of its own).
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from flask import Flask  # noqa: E402
from flask_migrate import upgrade  # noqa: E402

from app import create_app  # noqa: E402
from app.domain.bkt import BktParams  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import FitRun, LearningApp, Response, School, Student  # noqa: E402
from app.services.modelling import fitting, mastery  # noqa: E402
from app.services.people import accounts  # noqa: E402
from app.services.people.apps import create_api_key  # noqa: E402
from app.services.tutoring.content import bump_revision, read_snapshot, sync_content  # noqa: E402
from app.services.tutoring.content_files import read_content  # noqa: E402
from app.settings import current_settings  # noqa: E402
from bench.harness import PG_ADMIN, SETTINGS, serve  # noqa: E402

SCHOOL = "Replay bench school"
ANSWERS_PER_DAY = 5
ANSWERS_PER_SKILL = 8  # a student moves on to the next skill of the curriculum after this many answers


# --- the database and its synthetic log ---------------------------------------------------------------


@contextmanager
def database(backend: str, students: int, answers: int, reuse: bool) -> Iterator[tuple[str, bool]]:
    """(URL, whether it already holds this log). Kept afterwards with ``reuse``, else dropped."""
    name = f"tutor_bench_replay_{students}x{answers}"
    if backend == "sqlite":
        path = Path(tempfile.gettempdir()) / f"{name}.sqlite3"
        if not reuse:
            _remove_sqlite(path)
        try:
            yield f"sqlite:///{path}", reuse and path.exists()
        finally:
            if not reuse:
                _remove_sqlite(path)
        return
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = bool(conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}))
        if exists and not reuse:
            conn.execute(sa.text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        if not (exists and reuse):
            conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False), exists and reuse
    finally:
        if not reuse:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _remove_sqlite(path: Path) -> None:
    for leftover in (path, Path(f"{path}-wal"), Path(f"{path}-shm")):
        leftover.unlink(missing_ok=True)


def make_app(url: str) -> Flask:
    return create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "LOG_LEVEL": "WARNING", **SETTINGS})


def prepare(url: str, students: int, answers: int, ready: bool) -> dict[str, Any]:
    """Schema, content, school, students and their log (unless ``ready``), then the first replay, which
    makes the mastery table true (timed). Returns what the phases need and the timings."""
    app = make_app(url)
    out: dict[str, Any] = {}
    with app.app_context():
        session = db.session()
        if ready:
            # Earlier runs' answers stay in the log (a few per cent): the size is the log generated.
            count = session.scalar(sa.select(sa.func.count()).select_from(Response)) or 0
            if count < students * answers or mastery.students_behind(session):
                raise SystemExit(f"{url}: not a finished database of this size; run without --reuse once")
        else:
            upgrade()
            sync_content(session, read_content(ROOT / "content"))
            started = time.perf_counter()
            generate(session, students, answers)
            out["generate_s"] = time.perf_counter() - started
            started = time.perf_counter()
            report = mastery.rebuild_in_chunks(session, rules=current_settings().mastery)
            out["first_replay_s"] = time.perf_counter() - started
            out["first_replay_chunks"] = report.chunks
        school = session.scalar(sa.select(School).where(School.name == SCHOOL))
        assert school is not None
        name = f"bench-{uuid.uuid4().hex[:8]}"  # a new key each run (only its hash is stored)
        out["key"] = create_api_key(session, name, school).key
        out["students"] = list(session.scalars(sa.select(Student.id).where(Student.school_id == school.id)))
        snapshot = read_snapshot(session)
        out["exercises"] = sorted(snapshot.graph.exercises)
        session.rollback()
        db.engine.dispose()
    return out


def generate(session: Any, students: int, answers: int, seed: int = 21) -> None:
    """``students`` x ``answers`` responses: each student works through the curriculum from a skill of
    their own, ANSWERS_PER_SKILL answers a skill, ANSWERS_PER_DAY a school day, right more often as they go.
    Written GENERATE_BATCH students at a time. The trace columns get placeholders: the replay that follows
    computes every state from the log."""
    school, _ = accounts.create_school(session, SCHOOL)
    app_row = LearningApp(name="bench-log", school_id=school.id)
    session.add(app_row)
    session.flush()
    school_id, app_id = school.id, app_row.id
    snapshot = read_snapshot(session)
    graph = snapshot.graph
    order = [s for s in graph.skill_order if graph.exercises_by_skill.get(s)]
    exercise_skills = {e.id: e.skill_ids for e in graph.exercises.values()}
    parameters = {skill: current.id for skill, current in snapshot.parameters.items()}
    session.commit()
    postgresql = session.get_bind().dialect.name == "postgresql"
    rng = random.Random(seed)
    start = datetime.now(UTC) - timedelta(days=answers // ANSWERS_PER_DAY * 7 // 5 + 7)
    response_id = 0
    for first_student in range(0, students, GENERATE_BATCH):
        student_rows, responses, steps = [], [], []
        for i in range(first_student, min(students, first_student + GENERATE_BATCH)):
            student_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            first, ability, hour = rng.randrange(len(order)), rng.uniform(-0.15, 0.15), rng.uniform(8, 14)
            last = start
            for k in range(answers):
                skill = order[(first + k // ANSWERS_PER_SKILL) % len(order)]
                exercise = rng.choice(graph.exercises_by_skill[skill])
                tried = k % ANSWERS_PER_SKILL
                correct = rng.random() < 0.35 + ability + 0.5 * min(1.0, tried / ANSWERS_PER_SKILL)
                day = k // ANSWERS_PER_DAY
                last = start + timedelta(
                    days=day + day // 5 * 2, hours=hour, minutes=3 * (k % ANSWERS_PER_DAY)
                )
                response_id += 1
                responses.append((response_id, student_id, exercise, correct, "app", 5000, last, 0))
                for position, skill_id in enumerate(exercise_skills[exercise]):
                    steps.append((response_id, skill_id, position, parameters[skill_id], 0.5, 0.5, 0.5))
            student_rows.append((student_id, school_id, app_id, f"bench-{i}", start, answers, last))
        raw = session.connection().connection.driver_connection
        (_copy_postgresql if postgresql else _insert_sqlite)(raw, student_rows, responses, steps)
        session.commit()
    raw = session.connection().connection.driver_connection
    if postgresql:
        raw.execute(
            "SELECT setval(pg_get_serial_sequence('responses', 'id'), (SELECT max(id) FROM responses))"
        )
    session.commit()
    session.connection().exec_driver_sql("ANALYZE")
    session.commit()


GENERATE_BATCH = 2000
CHECK_UP_TO = 1_000_000  # responses: larger logs are checked with --check only (a full replay of its own)


STUDENT_COLUMNS = "id, school_id, app_id, external_id, created_at, answer_count, last_answer_at"
RESPONSE_COLUMNS = "id, student_id, exercise_id, correct, graded_by, response_time_ms, created_at, hints_used"
STEP_COLUMNS = "response_id, skill_id, position, parameters_id, p_mastery_before, p_correct, p_mastery_after"


def _copy_postgresql(raw: Any, students: list[Any], responses: list[Any], steps: list[Any]) -> None:
    with raw.cursor() as cursor:
        for table, columns, rows in (
            ("students", STUDENT_COLUMNS, students),
            ("responses", RESPONSE_COLUMNS, responses),
            ("response_skills", STEP_COLUMNS, steps),
        ):
            with cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)


def _insert_sqlite(raw: Any, students: list[Any], responses: list[Any], steps: list[Any]) -> None:
    def fmt(value: Any) -> Any:  # as the app's UtcDateTime stores it
        return (
            value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if isinstance(value, datetime) else value
        )

    for table, columns, rows in (
        ("students", STUDENT_COLUMNS, students),
        ("responses", RESPONSE_COLUMNS, responses),
        ("response_skills", STEP_COLUMNS, steps),
    ):
        marks = ", ".join("?" * len(columns.split(",")))
        raw.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})", ([fmt(v) for v in row] for row in rows)
        )


# --- new parameters: the chunked path and the previous one -----------------------------------------------


def shifted(params: dict[str, BktParams], step: int) -> dict[str, BktParams]:
    """Other parameters for every skill (as a fit would give), different at each ``step``."""
    factor = 1.1 if step % 2 else 0.9
    return {
        skill: BktParams(
            prior=min(0.9, p.prior * factor),
            learn=min(0.9, p.learn * factor),
            guess=min(0.45, p.guess * factor),
            slip=min(0.45, p.slip * factor),
            forget=p.forget,
            fitted=True,
        )
        for skill, p in params.items()
    }


def chunked_path(session: Any, params: dict[str, BktParams], marks: list[float]) -> tuple[float, float]:
    """As `fit-params` now: the versions and the revision commit, then the chunked replay. ``marks``: the
    wall-clock time of each progress call (the first: the replay starts). Returns the replay's window."""

    def progress(done: int, total: int) -> None:
        marks.append(time.time())

    fitting.adopt_parameters(
        session, params, engine="bench (shifted)", rules=current_settings().mastery, progress=progress
    )
    return marks[0], time.time()


def old_path(session: Any, params: dict[str, BktParams]) -> tuple[float, float]:
    """As `fit-params` was: the versions, the revision and the replay of everyone in one transaction."""
    run = FitRun(
        engine="bench (shifted, one transaction)",
        options={},
        n_students=0,
        n_responses=0,
        skipped={},
        rejected={},
    )
    session.add(run)
    session.flush()
    fits = [fitting.SkillFit(skill, p.values(), 0, 0, 0.0, 0) for skill, p in params.items()]
    fitting._make_current(session, run.id, fits)
    bump_revision(session, replay=True)
    began = time.time()
    mastery.rebuild_mastery(session, rules=current_settings().mastery, commit=False)
    session.commit()
    return began, time.time()


# --- the load generator (its own process) ----------------------------------------------------------------


def _client(
    port: int, key: str, students: list[str], exercises: list[str], think: float, control: Any, out: list
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    rng = random.Random()
    while not control.is_set():
        body = json.dumps({"exercise_id": rng.choice(exercises), "correct": rng.random() < 0.6})
        sent, began = time.time(), time.perf_counter()
        try:
            conn.request(
                "POST", f"/api/v1/students/{rng.choice(students)}/responses", body=body, headers=headers
            )
            response = conn.getresponse()
            response.read()
            status = response.status
        except (OSError, http.client.HTTPException):
            status = 0
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        out.append((sent, time.perf_counter() - began, status))
        time.sleep(think)
    conn.close()


def load(
    port: int,
    key: str,
    students: list[str],
    exercises: list[str],
    clients: int,
    think: float,
    control: Any,
    queue: Any,
) -> None:
    out: list[tuple[float, float, int]] = []
    threads = [
        threading.Thread(target=_client, args=(port, key, students, exercises, think, control, out))
        for _ in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    queue.put(out)


class Load:
    """The load generator for a ``with`` block; then ``answers``: (time sent, seconds, status) each."""

    def __init__(self, port: int, prepared: dict[str, Any], clients: int, think: float) -> None:
        context = multiprocessing.get_context("spawn")
        self.control, self.queue = context.Event(), context.Queue()
        self.process = context.Process(
            target=load,
            args=(
                port,
                prepared["key"],
                prepared["students"],
                prepared["exercises"],
                clients,
                think,
                self.control,
                self.queue,
            ),
        )
        self.answers: list[tuple[float, float, int]] = []

    def __enter__(self) -> Load:
        self.process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.control.set()
        self.answers = self.queue.get(timeout=600)
        self.process.join(timeout=60)


def stats(answers: list[tuple[float, float, int]]) -> dict[str, Any]:
    ok = sorted(seconds for _, seconds, status in answers if status == 201)
    failed = sum(status != 201 for _, _, status in answers)
    slowest = sorted(answers, key=lambda a: -a[1])[:5]
    if not ok:
        return {"n": 0, "failed": failed, "p50": float("nan"), "p99": float("nan"), "max": float("nan")}
    return {
        "n": len(ok),
        "failed": failed,
        "p50": statistics.median(ok) * 1000,
        "p99": ok[min(len(ok) - 1, int(0.99 * len(ok)))] * 1000,
        "p999": ok[min(len(ok) - 1, int(0.999 * len(ok)))] * 1000,
        "max": ok[-1] * 1000,
        "over_1s": sum(x > 1 for x in ok),
        "over_500ms": sum(x > 0.5 for x in ok),
        "slowest": [(round(sent, 3), round(seconds, 3)) for sent, seconds, _ in slowest],
    }


def timed_phase(
    url: str,
    port: int,
    prepared: dict[str, Any],
    args: argparse.Namespace,
    work: Callable[[Any], tuple[float, float]],
) -> tuple[float, dict[str, Any]]:
    """``work(session)`` under the load; it returns the window of its replay (wall clock). Returns the
    replay's seconds and the latency of the answers SENT during it."""
    app = make_app(url)
    with app.app_context(), Load(port, prepared, args.clients, args.think_ms / 1000) as running:
        time.sleep(2)  # the clients are connected and warm
        began, ended = work(db.session())
        time.sleep(0.5)
        db.engine.dispose()
    during = [a for a in running.answers if began <= a[0] <= ended]
    return ended - began, stats(during)


def baseline_phase(port: int, prepared: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    with Load(port, prepared, args.clients, args.think_ms / 1000) as running:
        time.sleep(2 + args.baseline_seconds)
    began = min((a[0] for a in running.answers), default=0) + 2
    return stats([a for a in running.answers if a[0] >= began])


def current_params(url: str) -> dict[str, BktParams]:
    with make_app(url).app_context():
        params = dict(read_snapshot(db.session()).params)
        db.engine.dispose()
    return params


def run_size(backend: str, students: int, answers: int, paths: list[str], args: argparse.Namespace) -> dict:
    result: dict[str, Any] = {"backend": backend, "students": students, "responses": students * answers}
    with database(backend, students, answers, args.reuse) as (url, ready):
        prepared = prepare(url, students, answers, ready)
        result.update({k: v for k, v in prepared.items() if k.endswith("_s") or k.endswith("_chunks")})
        quiet = {"LOG_LEVEL": "INFO" if args.server_log else "WARNING"}  # a line per request, or none
        log = open(args.server_log, "ab") if args.server_log else None  # noqa: SIM115 - closed below
        with serve("wsgi:app", url, workers=args.workers, env=quiet, log=log, timeout=120) as server:
            result["baseline"] = baseline_phase(server.port, prepared, args)
            params = current_params(url)
            for step, path in enumerate(paths, start=1):
                new = shifted(params, step)
                marks: list[float] = []
                work = (
                    partial(chunked_path, params=new, marks=marks)
                    if path == "chunked"
                    else partial(old_path, params=new)
                )
                seconds, during = timed_phase(url, server.port, prepared, args, work)
                result[path] = {"seconds": seconds, **during}
                if marks:
                    result[path]["chunks"] = len(marks) - 1
                    result[path]["slowest_chunk_s"] = max(
                        b - a for a, b in zip(marks, marks[1:], strict=False)
                    )
                params = new
        if log is not None:
            log.close()
        with make_app(url).app_context():
            result["behind"] = mastery.students_behind(db.session())
            if args.check or students * answers <= CHECK_UP_TO:  # check-consistency replays everyone again
                found = mastery.check_consistency(db.session(), rules=current_settings().mastery)
                result["consistent"] = not found.mismatches and not found.behind
            db.session.rollback()
            db.engine.dispose()
    return result


def show(result: dict[str, Any]) -> None:
    print(f"\n{result['backend']}: {result['students']:,} students, {result['responses']:,} responses")
    if "generate_s" in result:
        print(
            f"  generated in {result['generate_s']:.0f} s; first replay (chunked, no load) "
            f"{result['first_replay_s']:.1f} s in {result['first_replay_chunks']} chunks"
        )
    base = result["baseline"]
    print(
        f"  {'phase':<9} {'answers':>7} {'failed':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} "
        f"{'p99/base':>8} {'replay s':>9}"
    )
    for phase in ("baseline", "chunked", "old"):
        if phase not in result:
            continue
        r = result[phase]
        seconds = f"{r['seconds']:9.1f}" if "seconds" in r else " " * 9
        print(
            f"  {phase:<9} {r['n']:>7} {r['failed']:>6} {r['p50']:8.1f} {r['p99']:8.1f} {r['max']:8.1f} "
            f"{r['p99'] / base['p99']:8.2f} {seconds}"
        )
    if "chunked" in result:
        c = result["chunked"]
        print(
            f"  answers during it over 0.5 s: {c['over_500ms']}, over 1 s: {c['over_1s']}; "
            f"p99.9 {c['p999']:.0f} ms; "
            f"slowest (sent at, seconds): {c['slowest']}"
        )
        print(
            f"  chunked replay: {c.get('chunks', 0)} chunks, slowest {c.get('slowest_chunk_s', 0):.2f} s; "
            f"max answer wait {c['max'] / 1000:.2f} s (target <= 1 s: "
            f"{'met' if c['max'] <= 1000 else 'NOT met'})"
        )
    print(f"  students still behind after the run: {result['behind']}")
    if "consistent" in result:
        print(f"  check-consistency after: {'consistent' if result['consistent'] else 'NOT consistent'}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["postgresql", "sqlite", "both"], default="postgresql")
    parser.add_argument("--students", type=int, default=40_000)
    parser.add_argument("--answers", type=int, default=100)
    parser.add_argument("--old-students", type=int, default=4_000, help="size of the old path's log")
    parser.add_argument("--old-full", action="store_true", help="also run the old path on the full log")
    parser.add_argument("--reuse", action="store_true", help="keep the databases and reuse them next time")
    parser.add_argument("--clients", type=int, default=4)
    parser.add_argument("--think-ms", type=float, default=50)
    parser.add_argument("--baseline-seconds", type=float, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--check", action="store_true", help="check-consistency at the end on any size")
    parser.add_argument("--server-log", help="append gunicorn's log (a line per request) to this file")
    args = parser.parse_args()
    backends = ["postgresql", "sqlite"] if args.backend == "both" else [args.backend]
    for backend in backends:
        full = ["chunked", "old"] if args.old_full else ["chunked"]
        show(run_size(backend, args.students, args.answers, full, args))
        if args.old_students and not args.old_full:
            show(run_size(backend, args.old_students, args.answers, ["chunked", "old"], args))


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
