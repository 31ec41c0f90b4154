"""Sign-in flood benchmark: does password hashing starve the answer→next loop?

    .venv/bin/python bench/signin_flood.py [--seconds 60] [--rounds 6] [--workers 2] [--clients 8]
                                           [--per-minute 100] [--hash-slots N] [--threads N]
                                           [--backend sqlite|postgresql|both]

For each backend: a fresh database with the shipped content, 40 students, 20 staff accounts; gunicorn with
the default 2 sync workers (``scripts/serve``'s WORKERS) serving the app, behind one trusted proxy hop
(``PROXY_COUNT=1``) so each flood post can come from its own address. A separate load-generator process runs C
clients of bench/api.py's answer→next loop, alternating a quiet phase and a flood phase (--rounds times each,
--seconds per phase in all): during the flood, 100 sign-in posts a minute (open loop: one thread per post, on
schedule whatever the server's latency) with wrong passwords for the real accounts, each from a new address,
so neither the per-address limit nor the per-account back-off cuts them off: every post reaches the password
hash (the worst case the throttle allows) unless every hashing slot is taken. In both phases a probe loads
the sign-in page (GET /login) 4 times a second, and a real teacher signs in every 2 s from the school's
address.

Prints, per phase, the loop's requests/s and p50/p90/p99, GET /login's p50/p90/max, what the flood posts and
the teacher's sign-ins got (302 signed in, 401 hashed and wrong, 429 busy: every hashing slot taken, 429
throttled), and the flood/quiet ratios, both phases measured in the same run on the same server.
"""

from __future__ import annotations

import argparse
import http.client
import multiprocessing
import os
import re
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app import create_app  # noqa: E402
from app.domain.access import Role  # noqa: E402
from app.extensions import db  # noqa: E402
from app.services.people import accounts  # noqa: E402
from bench.api import _client, percentile, prepare  # noqa: E402
from bench.harness import SETTINGS, fresh_database, serve  # noqa: E402

STAFF = 20
PASSWORD = "the right password, never sent"
CSRF_FIELD = re.compile(
    r'name="csrf_token" type="hidden" value="([^"]+)"|<meta name="csrf-token" content="([^"]+)">'
)
PROBE_EVERY = 0.25  # seconds between sign-in page loads
OWNER_EVERY = 2.0  # seconds between a real teacher's sign-ins


def prepare_staff(url: str) -> list[str]:
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, **SETTINGS})
    with app.app_context():
        session = db.session()
        school = accounts.resolve_school(session, "Bench school")
        emails = [f"teacher{i}@bench.test" for i in range(STAFF)]
        for email in emails:
            accounts.create_staff_user(session, school, email, "Bench teacher", PASSWORD, role=Role.TEACHER)
        db.engine.dispose()
    return emails


# --- the load generator (its own process) -----------------------------------------------------


def _get(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read().decode()
    finally:
        conn.close()


def _sign_in_form(port: int) -> tuple[str, str]:
    """A session cookie and its CSRF token: the flood reuses one browser session (a token never expires)."""
    status, headers, html = _get(port, "/login")
    assert status == 200, status
    match = CSRF_FIELD.search(html)
    assert match, "no CSRF token on the sign-in page"
    return headers["Set-Cookie"].split(";", 1)[0], match.group(1) or match.group(2)


def _post(port: int, form: tuple[str, str], email: str, password: str, address: str) -> str:
    """One sign-in post: "302" signed in, "401" hashed and wrong, "429 busy" (every hashing slot taken) or
    "429 throttled" (the address or account must wait)."""
    cookie, token = form
    body = f"csrf_token={token}&email={email.replace('@', '%40')}&password={password.replace(' ', '+')}"
    headers = {
        "Cookie": cookie,
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Forwarded-For": address,
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request("POST", "/login", body=body, headers=headers)
        response = conn.getresponse()
        html = response.read().decode()
    finally:
        conn.close()
    if response.status == 429:
        return "429 busy" if "Sign-in is busy" in html else "429 throttled"
    return str(response.status)


def _flood_post(
    port: int, form: tuple[str, str], email: str, address: str, out: list[tuple[str, float]]
) -> None:
    began = time.perf_counter()
    outcome = _post(port, form, email, "wrong guess", address)
    out.append((outcome, time.perf_counter() - began))


def _flood(
    port: int,
    emails: list[str],
    per_minute: float,
    until: float,
    out: list[tuple[str, float]],
    serial: list[int],
) -> None:
    form = _sign_in_form(port)
    interval, posts = 60.0 / per_minute, []
    next_at = time.perf_counter()
    while next_at < until:
        time.sleep(max(0.0, next_at - time.perf_counter()))
        n = serial[0] = serial[0] + 1
        address = f"10.{n // 65536 % 256}.{n // 256 % 256}.{n % 256}"  # a new address for every post
        post = threading.Thread(target=_flood_post, args=(port, form, emails[n % len(emails)], address, out))
        post.start()
        posts.append(post)
        next_at += interval
    for post in posts:
        post.join()


def _probe(port: int, until: float, out: list[float]) -> None:
    while time.perf_counter() < until:
        began = time.perf_counter()
        status, _, _ = _get(port, "/login")
        assert status == 200, status
        out.append(time.perf_counter() - began)
        time.sleep(max(0.0, PROBE_EVERY - (time.perf_counter() - began)))


def _owner(port: int, email: str, until: float, out: list[str]) -> None:
    """A real teacher signing in (the right password, from the school's address) every few seconds."""
    while time.perf_counter() < until:
        began = time.perf_counter()
        out.append(_post(port, _sign_in_form(port), email, PASSWORD, "192.0.2.10"))
        time.sleep(max(0.0, OWNER_EVERY - (time.perf_counter() - began)))


def load(
    port: int, key: str, students: list[str], emails: list[str], args: argparse.Namespace, queue: Any
) -> None:
    results: dict[str, dict[str, Any]] = {
        phase: {"loop": [], "login": [], "posts": [], "owner": [], "elapsed": 0.0}
        for phase in ("quiet", "flood")
    }
    per_client = [students[i :: args.clients] for i in range(args.clients)]
    serial = [0]
    for phase in ("quiet", "flood") * args.rounds:  # alternated: drift hits both alike
        out: list[tuple[str, float]] = []
        began = time.perf_counter()
        until = began + args.seconds / args.rounds
        threads = [
            threading.Thread(target=_client, args=(port, key, own, "loop", until, out)) for own in per_client
        ]
        threads.append(threading.Thread(target=_probe, args=(port, until, results[phase]["login"])))
        threads.append(
            threading.Thread(target=_owner, args=(port, emails[0], until, results[phase]["owner"]))
        )
        if phase == "flood":
            threads.append(
                threading.Thread(
                    target=_flood,
                    args=(port, emails, args.per_minute, until, results[phase]["posts"], serial),
                )
            )
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        results[phase]["elapsed"] += time.perf_counter() - began
        results[phase]["loop"].extend(latency for _, latency in out)
    queue.put(results)


# --- report ------------------------------------------------------------------------------------------


def counted(outcomes: Any) -> str:
    return ", ".join(f"{n} {o}" for o, n in sorted(Counter(outcomes).items()))


def ms(values: list[float], q: float) -> float:
    return 1000 * percentile(values, q)


def run_backend(name: str, url: str, args: argparse.Namespace) -> None:
    key, students = prepare(url, 40)
    emails = prepare_staff(url)
    env = {"PROXY_COUNT": "1", "LOG_LEVEL": "WARNING"}
    if args.hash_slots:
        env["LOGIN_HASH_CONCURRENCY"] = str(args.hash_slots)
    if args.threads:
        env["GUNICORN_CMD_ARGS"] = f"--worker-class gthread --threads {args.threads}"
    with serve("app:create_app({})", url, workers=args.workers, env=env) as server:
        queue: Any = multiprocessing.Queue()
        generator = multiprocessing.Process(
            target=load, args=(server.port, key, students, emails, args, queue)
        )
        generator.start()
        results = queue.get(timeout=args.seconds * 4 + 300)
        generator.join()
    slots = args.hash_slots or "default"
    kind = f"gthread x {args.threads} threads" if args.threads else "sync"
    print(
        f"\n[{name}] gunicorn {args.workers} {kind} workers, {args.clients} loop clients, flood "
        f"{args.per_minute:.0f} sign-in posts/min, hashing slots: {slots}; {args.seconds:.0f} s per phase "
        f"({args.rounds} alternations)"
    )
    for phase in ("quiet", "flood"):
        r = results[phase]
        loop, login = r["loop"], r["login"]
        print(
            f"  {phase:5}  loop {len(loop) / r['elapsed']:6.1f} req/s  p50 {ms(loop, 0.5):6.1f}  p90 "
            f"{ms(loop, 0.9):6.1f}  p99 {ms(loop, 0.99):6.1f} ms   GET /login p50 {ms(login, 0.5):6.1f}  p90 "
            f"{ms(login, 0.9):6.1f}  max {1000 * max(login):6.1f} ms"
        )
    posts = results["flood"]["posts"]
    print(
        f"  flood posts: {len(posts)} ({counted(o for o, _ in posts)}), "
        f"p50 {ms([t for _, t in posts], 0.5):.1f} ms; "
        f"a teacher's own sign-ins: quiet {counted(results['quiet']['owner'])}, flood "
        f"{counted(results['flood']['owner'])}"
    )
    quiet, flood = results["quiet"], results["flood"]
    throughput = (len(flood["loop"]) / flood["elapsed"]) / (len(quiet["loop"]) / quiet["elapsed"])
    p90, p99 = (ms(flood["loop"], q) / ms(quiet["loop"], q) for q in (0.9, 0.99))
    login = ms(flood["login"], 0.9) / ms(quiet["login"], 0.9)
    print(
        f"  flood / quiet: loop throughput {throughput:.2f}, p90 {p90:.2f}x, p99 {p99:.2f}x; "
        f"GET /login p90 {login:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="per phase, over every round")
    parser.add_argument("--rounds", type=int, default=6, help="quiet/flood alternations")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-minute", type=float, default=100.0)
    parser.add_argument("--hash-slots", type=int, default=0, help="LOGIN_HASH_CONCURRENCY (0: the default)")
    parser.add_argument("--threads", type=int, default=0, help="gthread workers with N threads (0: sync)")
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; server and load generator share them")
    for backend, label in (("sqlite", "SQLite"), ("postgresql", "PostgreSQL")):
        if args.backend in (backend, "both"):
            with fresh_database(backend) as url:
                run_backend(label, url, args)


if __name__ == "__main__":
    main()
