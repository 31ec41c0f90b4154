"""API benchmark: the answer→next loop against a baseline endpoint of the same app, in one run.

    .venv/bin/python bench/api.py [--seconds 10] [--workers 2] [--clients 8] [--students 40]
                                  [--backend sqlite|postgresql|both]

For each backend: a fresh database with the shipped content, N students, gunicorn (the same worker count
for every run) serving ``bench.baseline_wsgi:app`` (the tutor plus one benchmark-only route). A separate
load-generator process on loopback, with C keep-alive clients, alternates two phases (each twice, bounded in
time): the real loop (POST an answer, then GET the next exercise) and the baseline (POST
/bench/baseline/<student>: authenticate the key, read one row, insert one row, return JSON). Prints
requests/s, p50 and p99 of both and the ratios (targets: loop throughput >= 50% of the baseline's; loop p99
<= 3x the baseline's).

Then, in-process: one answer→next step for a student with 10 vs 10,000 prior answers (target <= 1.2x), and
next-exercise selection on synthetic graphs of 50, 500 and 5,000 skills (time per skill should not grow).
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
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from flask_migrate import upgrade  # noqa: E402

from app import create_app  # noqa: E402
from app.domain.access import Principal, Role  # noqa: E402
from app.domain.bkt import BktParams  # noqa: E402
from app.domain.content import Exercise, Skill, build_graph  # noqa: E402
from app.domain.selection import PolicyConfig, StudentView, choose_next_exercise  # noqa: E402
from app.domain.tracking import DEFAULT_RULES, HYPOTHESES, SkillState, StudentModel, apply_answer  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Mastery, Response, ResponseSkill, Student  # noqa: E402
from app.services.people import accounts  # noqa: E402
from app.services.people.apps import create_api_key  # noqa: E402
from app.services.tutoring.content import read_snapshot, sync_content  # noqa: E402
from app.services.tutoring.content_files import read_content  # noqa: E402
from app.services.tutoring.student_models import row_values  # noqa: E402
from app.services.tutoring.students import get_or_create_student  # noqa: E402
from bench.harness import SETTINGS, fresh_database, serve  # noqa: E402


def prepare(url: str, students: int) -> tuple[str, list[str]]:
    """Schema, shipped content, a school with an app key, and students. Returns (key, student ids)."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, **SETTINGS})
    with app.app_context():
        upgrade()
        session = db.session()
        sync_content(session, read_content(ROOT / "content"))
        school, _ = accounts.create_school(session, "Bench school")
        issued = create_api_key(session, "bench-app", school)
        principal = Principal(Role.APP, str(issued.app_id), school.id, "bench-app")
        ids = [get_or_create_student(session, principal, f"s-{i}")[0].id for i in range(students)]
        db.engine.dispose()
    return issued.key, ids


# --- the load generator (its own process) -----------------------------------------------------


def _client(
    port: int, key: str, students: list[str], mode: str, until: float, out: list[tuple[str, float]]
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    rng = random.Random()
    nxt: dict[str, str] = {}

    def call(method: str, path: str, body: Any = None) -> Any:
        began = time.perf_counter()
        conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
        response = conn.getresponse()
        data = response.read()
        out.append(
            (f"{method} {path.split('/')[-1] if mode == 'loop' else 'baseline'}", time.perf_counter() - began)
        )
        if response.status >= 400:
            raise RuntimeError(f"{method} {path}: {response.status} {data[:200]!r}")
        return json.loads(data)

    while time.perf_counter() < until:
        student = rng.choice(students)
        if mode == "baseline":
            call("POST", f"/bench/baseline/{student}", {})
            continue
        if student not in nxt:
            nxt[student] = call("GET", f"/api/v1/students/{student}/next-exercise")["exercise"]["id"]
        call(
            "POST",
            f"/api/v1/students/{student}/responses",
            {"exercise_id": nxt[student], "correct": rng.random() < 0.7},
        )
        body = call("GET", f"/api/v1/students/{student}/next-exercise")
        if body["exercise"] is None:
            nxt.pop(student)
        else:
            nxt[student] = body["exercise"]["id"]
    conn.close()


def load(port: int, key: str, students: list[str], clients: int, seconds: float, queue: Any) -> None:
    results: dict[str, list[float]] = {"loop": [], "baseline": []}
    elapsed: dict[str, float] = {"loop": 0.0, "baseline": 0.0}
    per_client = [students[i::clients] for i in range(clients)]
    for mode in ("baseline", "loop", "baseline", "loop"):  # alternated: drift hits both alike
        out: list[tuple[str, float]] = []
        began = time.perf_counter()
        until = began + seconds / 2
        threads = [
            threading.Thread(target=_client, args=(port, key, own, mode, until, out)) for own in per_client
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed[mode] += time.perf_counter() - began
        results[mode].extend(latency for _, latency in out)
    queue.put((results, elapsed))


# --- scaling, in-process ---------------------------------------------------------------------


def history_scaling(url: str, repeat: int = 30) -> tuple[float, float]:
    """Median time of one answer→next step for a student with 10 and with 10,000 prior answers."""
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, **SETTINGS})
    with app.app_context():
        session = db.session()
        school = accounts.resolve_school(session, "Bench school")
        key = create_api_key(session, "scaling-app", school).key
        snapshot = read_snapshot(session)
        exercises = [e for s in snapshot.graph.skill_order for e in snapshot.graph.exercises_by_skill[s]]
        ids = []
        for name, prior in (("ten", 10), ("ten-thousand", 10_000)):
            student = Student(id=str(uuid.uuid4()), school_id=school.id, external_id=name)
            session.add(student)
            session.flush()
            model, rows, traces = StudentModel(), [], []
            at = datetime.now(UTC) - timedelta(days=30)
            for i in range(prior):
                exercise = snapshot.graph.exercises[exercises[i % len(exercises)]]
                at += timedelta(seconds=20)
                right = i % 10 < 3  # mostly wrong: skills stay open, so there is always a next exercise
                traced = apply_answer(
                    model, exercise.skill_ids, right, snapshot.params, now=at, rules=DEFAULT_RULES
                )
                rows.append(
                    {
                        "student_id": student.id,
                        "exercise_id": exercise.id,
                        "correct": right,
                        "graded_by": "app",
                        "created_at": at,
                    }
                )
                traces.append(traced)
            # Ids from the database (its sequence), in the order given.
            returning = sa.insert(Response).returning(Response.id, sort_by_parameter_order=True)
            response_ids = session.scalars(returning, rows).all()
            session.execute(
                sa.insert(ResponseSkill),
                [
                    {
                        "response_id": rid,
                        "skill_id": t.skill_id,
                        "position": p,
                        "parameters_id": snapshot.parameters[t.skill_id].id,
                        "p_mastery_before": t.p_mastery_before,
                        "p_correct": t.p_correct,
                        "p_mastery_after": t.p_mastery_after,
                        "p_mastery_paced_after": t.p_mastery_paced_after,
                    }
                    for rid, traced in zip(response_ids, traces, strict=True)
                    for p, t in enumerate(traced)
                ],
            )
            session.execute(
                sa.insert(Mastery),
                [
                    {
                        "student_id": student.id,
                        "skill_id": s,
                        "parameters_id": snapshot.parameters[s].id,
                        **row_values(state),
                    }
                    for s, state in model.skills.items()
                ],
            )
            student.speed_weights = model.speed_weights
            student.answer_count, student.last_answer_at = prior, at
            session.commit()
            ids.append(student.id)
        if db.engine.dialect.name == "postgresql":
            session.execute(sa.text("ANALYZE"))
            session.commit()
    client = app.test_client()
    headers = {"Authorization": f"Bearer {key}"}

    def step(student: str) -> float:
        began = time.perf_counter()
        chosen = client.get(f"/api/v1/students/{student}/next-exercise", headers=headers).get_json()
        assert chosen["exercise"] is not None, chosen["reason"]
        client.post(
            f"/api/v1/students/{student}/responses",
            headers=headers,
            json={"exercise_id": chosen["exercise"]["id"], "correct": False},
        )
        return time.perf_counter() - began

    times: dict[str, list[float]] = {i: [] for i in ids}
    for _ in range(repeat):
        for student in ids:
            times[student].append(step(student))
    with app.app_context():
        db.engine.dispose()
    return statistics.median(times[ids[0]]), statistics.median(times[ids[1]])


def selection_scaling(sizes: tuple[int, ...] = (50, 500, 5000), repeat: int = 20) -> dict[int, float]:
    """Median time of choose_next_exercise on synthetic graphs (chains of 10 skills, 3 exercises each)."""
    out = {}
    for n in sizes:
        params = BktParams(prior=0.2, learn=0.15, guess=0.2, slip=0.1)
        skills = [
            Skill(f"s{i}", f"S{i}", prerequisites=(f"s{i - 1}",) if i % 10 else (), bkt=params)
            for i in range(n)
        ]
        exercises = [
            Exercise(f"e{i}-{j}", (f"s{i}",), "?", "numeric", ("1",), 0.3 * j + 0.2)
            for i in range(n)
            for j in range(3)
        ]
        graph = build_graph(skills, exercises)
        all_params = {s.id: params for s in skills}
        rng = random.Random(1)
        model = StudentModel(
            skills={
                s.id: SkillState(
                    p, [p] * len(HYPOTHESES), attempts=3, correct_count=2, last_practiced_at=datetime.now(UTC)
                )
                for s in skills[: n // 3]
                for p in [rng.random()]
            }
        )
        view = StudentView(model=model, now=datetime.now(UTC))
        times = []
        for seed in range(repeat):
            began = time.perf_counter()
            choose_next_exercise(graph, all_params, view, PolicyConfig(), seed)
            times.append(time.perf_counter() - began)
        out[n] = statistics.median(times)
    return out


def verdict(met: bool) -> str:
    return "met" if met else "NOT met"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def run_backend(name: str, url: str, args: argparse.Namespace) -> None:
    key, students = prepare(url, args.students)
    with serve("bench.baseline_wsgi:app", url, workers=args.workers) as server:
        queue: Any = multiprocessing.Queue()
        generator = multiprocessing.Process(
            target=load, args=(server.port, key, students, args.clients, args.seconds, queue)
        )
        generator.start()
        results, elapsed = queue.get(timeout=args.seconds * 4 + 60)
        generator.join()
    rates = {m: len(results[m]) / elapsed[m] for m in results}
    print(
        f"\n[{name}] gunicorn {args.workers} workers, {args.clients} clients, {args.students} students, "
        f"{args.seconds:.0f} s per mode (alternated)"
    )
    for mode in ("baseline", "loop"):
        lat = results[mode]
        print(
            f"  {mode:9} {rates[mode]:8.1f} req/s   p50 {1000 * percentile(lat, 0.5):6.1f} ms   "
            f"p99 {1000 * percentile(lat, 0.99):6.1f} ms   ({len(lat)} requests)"
        )
    throughput = rates["loop"] / rates["baseline"]
    p99 = percentile(results["loop"], 0.99) / percentile(results["baseline"], 0.99)
    print(
        f"  loop / baseline: throughput {throughput:.2f} (target >= 0.50: {verdict(throughput >= 0.5)}), "
        f"p99 {p99:.2f}x (target <= 3: {verdict(p99 <= 3)})"
    )
    ten, many = history_scaling(url)
    print(
        f"  one answer→next step: 10 prior answers {1000 * ten:.1f} ms, 10,000 prior answers "
        f"{1000 * many:.1f} ms: {many / ten:.2f}x (target <= 1.2: {verdict(many / ten <= 1.2)})"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=10.0, help="per mode (each run twice, halves)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; server and load generator share them")
    for backend, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        if args.backend in (backend, "both"):
            with fresh_database(backend) as url:
                run_backend(label, url, args)
    sizes = selection_scaling()
    base = sizes[50] / 50
    print(
        "\nnext-exercise selection (domain), median: "
        + ", ".join(
            f"{n} skills {1000 * t:.2f} ms ({t / n / base:.2f}x per skill vs 50)" for n, t in sizes.items()
        )
    )


if __name__ == "__main__":
    main()
