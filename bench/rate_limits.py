"""What the API's rate-limit counters cost on the answer→next loop, per storage.

    .venv/bin/python bench/rate_limits.py [--seconds 40] [--rounds 4] [--workers 2] [--clients 8]

Two parts, on SQLite (the embedded default, where the question arises):

1. In-process, one thread: the storage calls Flask-Limiter makes per API request (a fixed-window hit, then
   the window's count and reset time for the X-RateLimit-* headers), in microseconds, for ``memory://`` (per
   process: the reference, not shared), the counter file ``sqlite:///`` (the default), and Redis.
2. gunicorn (2 workers, 8 clients of bench/api.py's answer→next loop) on one database, the storage changed
   between runs, each run --seconds/--rounds long, the storages in turn --rounds times (drift hits each
   alike): ``memory://``; the counter file; the same counters *inside the tutor's own SQLite database* (what a
   database-backed counter would be: a write per request under the database's one write lock, which every
   answer also takes); and Redis. Prints requests/s and p50/p90/p99 of the loop, and ratios to memory://.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from limits import parse  # noqa: E402
from limits.storage import storage_from_string  # noqa: E402
from limits.strategies import FixedWindowRateLimiter  # noqa: E402

import app.rate_limits  # noqa: E402, F401 - registers the sqlite:/// storage
from bench.api import _client, percentile, prepare  # noqa: E402
from bench.harness import fresh_database, serve  # noqa: E402

REDIS = "redis://127.0.0.1:6379/0"


def per_request_cost(uri: str, calls: int = 5000) -> float:
    """Median over 5 batches of the microseconds of one request's storage calls."""
    limiter = FixedWindowRateLimiter(storage_from_string(uri))
    item = parse("100000000 per minute")
    batches = []
    for batch in range(5):
        began = time.perf_counter()
        for i in range(calls // 5):
            key = ("bench", f"{batch}-{i % 50}")  # 50 keys, as 50 API keys or users would be
            limiter.hit(item, *key)
            limiter.get_window_stats(item, *key)
        batches.append((time.perf_counter() - began) / (calls // 5) * 1e6)
    return statistics.median(batches)


def loop(port: int, key: str, students: list[str], clients: int, seconds: float, queue: Any) -> None:
    out: list[tuple[str, float]] = []
    per_client = [students[i::clients] for i in range(clients)]
    began = time.perf_counter()
    threads = [
        threading.Thread(target=_client, args=(port, key, own, "loop", began + seconds, out))
        for own in per_client
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    queue.put(([latency for _, latency in out], time.perf_counter() - began))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=40.0, help="per storage, over every round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; server and load generator share them")
    with tempfile.TemporaryDirectory() as folder:
        counters = f"sqlite:///{folder}/ratelimits.sqlite3"
        print("\nstorage calls of one API request (hit + window stats), one thread, median of 5 batches:")
        for label, uri in (("memory://", "memory://"), ("counter file", counters), ("Redis", REDIS)):
            print(f"  {label:13} {per_request_cost(uri):7.1f} µs")

        with fresh_database("sqlite") as url:
            key, students = prepare(url, 40)
            storages = {
                "memory:// (per process)": "memory://",
                "counter file (default)": counters,
                "in the tutor's database": url,  # sqlite:////tmp/.../bench.sqlite3: the same file
                "Redis": REDIS,
            }
            results: dict[str, tuple[list[float], float]] = {name: ([], 0.0) for name in storages}
            for _ in range(args.rounds):
                for name, uri in storages.items():
                    env = {"RATELIMIT_STORAGE_URI": uri, "RATELIMIT_KEY_PREFIX": f"bench-{os.getpid()}"}
                    log = Path(folder) / "gunicorn.log"
                    with (
                        open(log, "wb") as stderr,
                        serve("app:create_app({})", url, workers=args.workers, env=env, log=stderr) as server,
                    ):
                        queue: Any = multiprocessing.Queue()
                        generator = multiprocessing.Process(
                            target=loop,
                            args=(
                                server.port,
                                key,
                                students,
                                args.clients,
                                args.seconds / args.rounds,
                                queue,
                            ),
                        )
                        generator.start()
                        latencies, elapsed = queue.get(timeout=args.seconds + 120)
                        generator.join()
                    # A storage that failed would have been replaced by per-process counting: not measured.
                    assert "rate_limit.storage_unavailable" not in log.read_text(), f"{name} failed"
                    done, spent = results[name]
                    results[name] = (done + latencies, spent + elapsed)
    print(
        f"\n[SQLite] gunicorn {args.workers} workers, {args.clients} clients, the answer→next loop, "
        f"{args.seconds:.0f} s per storage ({args.rounds} rounds, storages in turn)"
    )
    reference_rate = len(results["memory:// (per process)"][0]) / results["memory:// (per process)"][1]
    reference = results["memory:// (per process)"][0]
    for name, (latencies, spent) in results.items():
        rate = len(latencies) / spent
        print(
            f"  {name:24} {rate:6.1f} req/s ({rate / reference_rate:.2f}x)  "
            + "  ".join(
                f"p{int(q * 100)} {1000 * percentile(latencies, q):6.1f} ms "
                f"({percentile(latencies, q) / percentile(reference, q):.2f}x)"
                for q in (0.5, 0.9, 0.99)
            )
        )


if __name__ == "__main__":
    main()
