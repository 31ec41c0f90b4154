"""Where an answer→next request spends its time: cProfile of the loop, in-process, against the baseline route.

    .venv/bin/python bench/profile_loop.py [--backend sqlite|postgresql] [--steps 300] [--top 40]
                                           [--sort cumulative|tottime]

A fresh database as bench/api.py prepares it (shipped content, 8 students), then, through Flask's test client
(the whole WSGI app: middleware, extensions, limiter, validation, serialisation, SQL; no network), STEPS
answer→next steps (POST an answer, GET the next exercise) and as many baseline requests, each timed, then the
same steps again under cProfile. Prints the mean time of each request kind, their ratio (what bench/api.py's
throughput ratio approaches when the server is the bottleneck), and the profile's top functions.
"""

from __future__ import annotations

import argparse
import cProfile
import pstats
import random
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.api import prepare  # noqa: E402
from bench.harness import SETTINGS, fresh_database  # noqa: E402


def run(client: Any, key: str, students: list[str], steps: int, seed: int) -> tuple[list[float], list[float]]:
    """(loop request times, baseline request times), in seconds."""
    headers = {"Authorization": f"Bearer {key}"}
    rng = random.Random(seed)
    nxt: dict[str, str] = {}
    loop: list[float] = []
    baseline: list[float] = []

    def call(method: str, path: str, body: Any, out: list[float]) -> Any:
        began = time.perf_counter()
        response = client.open(path, method=method, json=body, headers=headers)
        out.append(time.perf_counter() - began)
        assert response.status_code < 400, (path, response.status_code, response.get_data(as_text=True))
        return response.get_json()

    for _ in range(steps):
        student = rng.choice(students)
        if student not in nxt:
            first = call("GET", f"/api/v1/students/{student}/next-exercise", None, [])
            nxt[student] = first["exercise"]["id"]
        call(
            "POST",
            f"/api/v1/students/{student}/responses",
            {"exercise_id": nxt[student], "correct": rng.random() < 0.7},
            loop,
        )
        body = call("GET", f"/api/v1/students/{student}/next-exercise", None, loop)
        if body["exercise"] is None:
            nxt.pop(student)
        else:
            nxt[student] = body["exercise"]["id"]
        call("POST", f"/bench/baseline/{student}", {}, baseline)
        call("POST", f"/bench/baseline/{student}", {}, baseline)
    return loop, baseline


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--sort", choices=["cumulative", "tottime"], default="cumulative")
    parser.add_argument("--callees", nargs="*", default=[], help="functions whose callees to print")
    args = parser.parse_args()

    import os

    with fresh_database(args.backend) as url:
        key, students = prepare(url, 8)
        os.environ["DATABASE_URL"] = url
        for name, setting in SETTINGS.items():
            os.environ[name] = setting
        from bench.baseline_wsgi import app

        client = app.test_client()
        run(client, key, students, 50, seed=0)  # warm: content snapshot, caches, first connections
        loop, baseline = run(client, key, students, args.steps, seed=1)
        loop_ms, baseline_ms = statistics.mean(loop) * 1000, statistics.mean(baseline) * 1000
        print(f"{args.backend}: {args.steps} steps")
        for name, times, mean in (("loop", loop, loop_ms), ("baseline", baseline, baseline_ms)):
            p50 = statistics.median(times) * 1000
            print(f"  {name + ' request':17} mean {mean:6.2f} ms  (p50 {p50:.2f})")
        print(f"  baseline / loop   {baseline_ms / loop_ms:.2f}")
        profiler = cProfile.Profile()
        profiler.enable()
        run(client, key, students, args.steps, seed=2)
        profiler.disable()
        with app.app_context():
            from app.extensions import db

            db.engine.dispose()
    stats = pstats.Stats(profiler).strip_dirs().sort_stats(args.sort)
    stats.print_stats(args.top)
    for name in args.callees:
        stats.print_callees(name)


if __name__ == "__main__":
    main()
