"""Soak: the real practice loop under gunicorn for a fixed time, with simulated students. Errors must be 0.

    .venv/bin/python bench/soak.py [--seconds 60] [--workers 2] [--clients 8] [--students 40]
                                   [--interval 5] [--backend sqlite|postgresql]

A fresh database with the shipped content and N students (``bench/api.py``'s ``prepare``), gunicorn serving
the app, and a separate load-generator process on loopback with C clients. Each client owns some students,
each played by a simulated learner of ``app/domain/simulation.py`` (a hidden BKT state per skill, a fast or
a slow learning rate), and runs what a learning app runs: GET the next exercise, answer it by the hidden
state, POST the answer with a fresh ``client_response_id``; now and then the app retries the POST (same id:
200 and the same body expected) or reads the progress. A learner who finished the graph is replaced by a new
student. The load stops by itself after --seconds.

Prints, per interval: requests/s, answers/s, p50/p99 latency, errors and each worker's RSS. At the end:
totals, throughput of the first vs the last interval, each worker's RSS at start, after the first interval
and at the end (growth), and ``flask check-consistency``'s verdict. Exits 1 on any error, any worker that
died, or an inconsistent state.
"""

from __future__ import annotations

import argparse
import http.client
import json
import multiprocessing
import os
import random
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from queue import Empty
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.domain.content import ContentGraph  # noqa: E402
from app.domain.simulation import SimulatedStudent, SimulationConfig  # noqa: E402
from app.extensions import db  # noqa: E402
from app.services.modelling.mastery import check_consistency  # noqa: E402
from app.services.tutoring.content_files import read_content  # noqa: E402
from bench.api import percentile, prepare  # noqa: E402
from bench.harness import fresh_database, rss_mib, serve  # noqa: E402

RETRY_SHARE = 0.05  # answers the app sends twice
PROGRESS_SHARE = 0.1  # answers followed by a progress read


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes (/proc/<pid>/stat): the server's own cost per request,
    which, unlike requests/s, other load on the machine does not change."""
    total = 0
    for pid in pids:
        try:
            text = Path(f"/proc/{pid}/stat").read_text()
        except OSError:  # a worker gone (the run then fails as "workers lost")
            continue
        utime, stime = text[text.rindex(")") + 2 :].split()[11:13]
        total += int(utime) + int(stime)
    return total / os.sysconf("SC_CLK_TCK")


@dataclass
class Tally:
    """Requests of the current interval, shared by the client threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    latencies: list[float] = field(default_factory=list)
    kinds: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)

    def record(self, kind: str, latency: float, error: str | None = None) -> None:
        with self.lock:
            self.latencies.append(latency)
            self.kinds[kind] += 1
            if error is not None:
                self.errors.append(error)

    def take(self) -> dict[str, Any]:
        with self.lock:
            latencies, kinds, errors = self.latencies, self.kinds, self.errors
            self.latencies, self.kinds, self.errors = [], Counter(), []
        return {
            "requests": len(latencies),
            "kinds": dict(kinds),
            "errors": len(errors),
            "error_samples": errors[:5],
            "p50": percentile(latencies, 0.5) if latencies else 0.0,
            "p99": percentile(latencies, 0.99) if latencies else 0.0,
        }


class App:
    """One client's view of the API (a keep-alive connection, reopened by http.client when closed)."""

    def __init__(self, port: int, key: str, tally: Tally) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        self.headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        self.tally = tally

    def call(self, kind: str, method: str, path: str, expect: int, payload: Any = None) -> Any:
        """The JSON body, or None after recording an error (wrong status, broken connection)."""
        began = time.perf_counter()
        try:
            self.conn.request(
                method, path, body=json.dumps(payload) if payload is not None else None, headers=self.headers
            )
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.conn.close()
            self.tally.record(kind, time.perf_counter() - began, f"{kind}: {error!r}")
            return None
        latency = time.perf_counter() - began
        if response.status != expect:
            self.tally.record(kind, latency, f"{kind}: {response.status} {data[:200]!r}")
            return None
        self.tally.record(kind, latency)
        return json.loads(data)


def _answer(graph: ContentGraph, exercise_id: str, right: bool, rng: random.Random) -> dict[str, Any]:
    """Half graded by the app (``correct``), half typed and graded by the server."""
    exercise = graph.exercises[exercise_id]
    payload: dict[str, Any] = {
        "exercise_id": exercise_id,
        "client_response_id": uuid.uuid4().hex,
        "response_time_ms": rng.randint(2_000, 60_000),
    }
    if rng.random() < 0.5:
        return {**payload, "correct": right}
    wrong = [c for c in exercise.choices if c not in exercise.answers] or ["no idea"]
    return {**payload, "answer": exercise.answers[0] if right else rng.choice(wrong)}


def _client(
    index: int, port: int, key: str, students: list[str], graph: ContentGraph, until: float, tally: Tally
) -> None:
    app, rng = App(port, key, tally), random.Random(index)
    config = SimulationConfig(seed=index)
    groups = list(config.groups)  # fast and slow learners
    learners = {s: SimulatedStudent(config, rng.choice(groups), i) for i, s in enumerate(students)}
    order = list(learners)
    while time.monotonic() < until:
        student = rng.choice(order)
        chosen = app.call("next", "GET", f"/api/v1/students/{student}/next-exercise", 200)
        if chosen is None:
            continue
        if chosen["exercise"] is None:  # finished (or stuck): a new student takes the seat
            created = app.call(
                "new student",
                "POST",
                "/api/v1/students",
                201,
                {"external_id": f"soak-{index}-{uuid.uuid4().hex[:8]}"},
            )
            if created is not None:
                order[order.index(student)] = created["id"]
                learners[created["id"]] = SimulatedStudent(config, rng.choice(groups), len(learners))
            continue
        exercise = chosen["exercise"]
        payload = _answer(graph, exercise["id"], learners[student].answer(exercise["skill_ids"]), rng)
        path = f"/api/v1/students/{student}/responses"
        first = app.call("answer", "POST", path, 201, payload)
        if first is not None and rng.random() < RETRY_SHARE:
            again = app.call("retry", "POST", path, 200, payload)
            if again is not None and again != first:
                tally.record("retry", 0.0, f"retry: another body than the first ({again} vs {first})")
        if rng.random() < PROGRESS_SHARE:
            app.call("progress", "GET", f"/api/v1/students/{student}/progress", 200)
    app.conn.close()


def generate(
    port: int, key: str, students: list[str], clients: int, seconds: float, interval: float, queue: Any
) -> None:
    """The load generator (its own process): C client threads; one summary per interval on ``queue``."""
    graph = read_content(ROOT / "content")
    tally = Tally()
    began = time.monotonic()

    def client(index: int) -> None:
        try:
            _client(index, port, key, students[index::clients], graph, began + seconds, tally)
        except Exception as error:  # noqa: BLE001 - a crashed client is an error of the run, not a stop
            tally.record("client", 0.0, f"client {index} crashed: {error!r}")

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for thread in threads:
        thread.start()
    boundary = began + interval
    while any(thread.is_alive() for thread in threads):
        if time.monotonic() >= boundary:
            queue.put(("interval", boundary - began, interval, tally.take()))
            boundary += interval
        time.sleep(min(0.05, max(boundary - time.monotonic(), 0.0)))
    # Requests still in flight at the end: counted in the totals, not as an interval.
    queue.put(("tail", time.monotonic() - began, 0.0, tally.take()))


def soak(backend: str, args: argparse.Namespace) -> bool:
    """One run; True when it passed (no error, no worker lost, consistent state)."""
    label = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}[backend]
    with fresh_database(backend) as url:
        key, students = prepare(url, args.students)
        # create_app({}): a developer's instance/config.py must not send this load to their database.
        with serve("app:create_app({})", url, workers=args.workers) as server:
            workers = server.worker_pids()
            rss_start = {pid: rss_mib(pid) for pid in workers}
            print(
                f"[{label}] gunicorn {args.workers} workers (pids {', '.join(map(str, workers))}), "
                f"{args.clients} clients, {args.students} simulated students, {args.seconds:.0f} s; "
                f"machine: {os.cpu_count()} cores shared by server, database and load generator"
            )
            print(
                f"{'time':>6} {'req/s':>8} {'answers/s':>10} {'p50 ms':>7} {'p99 ms':>7} "
                f"{'CPU ms/req':>10} {'errors':>7}  worker RSS MiB"
            )
            cpu = cpu_seconds(workers)
            queue: Any = multiprocessing.Queue()
            generator = multiprocessing.Process(
                target=generate,
                args=(server.port, key, students, args.clients, args.seconds, args.interval, queue),
            )
            generator.start()
            intervals: list[tuple[float, float, dict[str, Any]]] = []
            rss_seen: list[dict[int, float]] = []
            tail: dict[str, Any] | None = None
            while tail is None:
                try:
                    kind, at, length, summary = queue.get(timeout=args.interval + 60)
                except Empty:
                    generator.kill()
                    generator.join()
                    print(f"[{label}] FAILED: the load generator stopped reporting")
                    return False
                if kind == "tail":
                    tail, elapsed = summary, at
                    continue
                rss = {pid: rss_mib(pid) for pid in server.worker_pids()}
                spent = cpu_seconds(list(rss))
                summary["cpu_per_request"] = (spent - cpu) / max(summary["requests"], 1)
                cpu = spent
                intervals.append((at, length, summary))
                rss_seen.append(rss)
                print(
                    f"{at:>4.0f} s {summary['requests'] / length:>8.1f} "
                    f"{summary['kinds'].get('answer', 0) / length:>10.1f} {1000 * summary['p50']:>7.1f} "
                    f"{1000 * summary['p99']:>7.1f} {1000 * summary['cpu_per_request']:>10.1f} "
                    f"{summary['errors']:>7}  " + " / ".join(f"{v:.1f}" for v in rss.values())
                )
                for sample in summary["error_samples"]:
                    print(f"         error: {sample}")
            generator.join()
            queue.close()
            if backend == "sqlite":  # a WAL that checkpoints cannot reset slows every read down
                database = Path(url.removeprefix("sqlite:///"))
                wal = Path(f"{database}-wal")
                print(
                    f"SQLite file {database.stat().st_size / 2**20:.1f} MiB, WAL "
                    f"{wal.stat().st_size / 2**20 if wal.exists() else 0:.1f} MiB"
                )
            lost = sorted(set(workers) - set(server.worker_pids()))
            rss_end = {pid: rss_mib(pid) for pid in server.worker_pids()}
        app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url})
        with app.app_context():
            consistency = check_consistency(db.session(), threshold=float(app.config["MASTERY_THRESHOLD"]))
            db.engine.dispose()

    summaries = [s for _, _, s in intervals] + [tail]
    kinds = sum((Counter(s["kinds"]) for s in summaries), Counter[str]())
    errors = sum(s["errors"] for s in summaries)
    total = sum(kinds.values())
    for sample in tail["error_samples"]:
        print(f"         error: {sample}")
    print(
        f"total: {total} requests in {elapsed:.1f} s ({total / elapsed:.1f}/s): "
        + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common())
        + f"; errors: {errors}"
    )
    if intervals:
        (_, first_length, first), (_, last_length, last) = intervals[0], intervals[-1]
        first_rate, last_rate = first["requests"] / first_length, last["requests"] / last_length
        first_cpu, last_cpu = first["cpu_per_request"], last["cpu_per_request"]
        print(
            f"throughput: first interval {first_rate:.1f} req/s, last {last_rate:.1f} req/s "
            f"({last_rate / first_rate:.2f}x); worker CPU per request {1000 * first_cpu:.1f} vs "
            f"{1000 * last_cpu:.1f} ms ({last_cpu / first_cpu:.2f}x)"
        )
    for pid in workers:
        warm = rss_seen[0].get(pid) if rss_seen else None
        end = rss_end.get(pid)
        growth = f"{end - warm:+.1f} MiB since the first interval" if warm and end else "worker gone"
        print(
            f"worker {pid} RSS: start {rss_start[pid]:.1f} MiB, after the first interval "
            f"{warm or 0:.1f}, end {end or 0:.1f} ({growth})"
        )
    if lost:
        print(f"workers lost during the run (restarted by gunicorn): {lost}")
    scope = f"{consistency.students} students, {consistency.answers} answers"
    if consistency.mismatches:
        print(f"consistency: {len(consistency.mismatches)} difference(s) from a replay of the log ({scope})")
    else:
        print(f"consistency: stored state equals a replay of the log ({scope})")
    passed = errors == 0 and not lost and not consistency.mismatches
    print(f"[{label}] {'PASSED' if passed else 'FAILED'}\n")
    return passed


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="how long the load runs")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--clients", type=int, default=8, help="concurrent client threads")
    parser.add_argument("--students", type=int, default=40, help="students at the start")
    parser.add_argument("--interval", type=float, default=5.0, help="seconds per reported interval")
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    if args.clients > args.students:
        parser.error("--students must be at least --clients (each client owns its students)")
    sys.exit(0 if soak(args.backend, args) else 1)


if __name__ == "__main__":
    main()
