"""Databases and gunicorn on loopback, for the benchmarks and the tests that run a real server.

Kept apart from the benchmarks themselves (and from the app: nothing here imports it), so the test suite
depends on this small harness only.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
SETTINGS = {"SECRET_KEY": "bench", "RATELIMIT_API": "100000000 per minute", "SESSION_COOKIE_SECURE": "false"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def postgres_database(admin_url: str, prefix: str) -> Iterator[str]:
    """The URL of a new, uniquely named database on the server of ``admin_url``, dropped afterwards (also
    the tests' databases)."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def fresh_database(backend: str) -> Iterator[str]:
    """The URL of a new, empty database: a temporary SQLite file, or a PostgreSQL database on the server at
    TEST_DATABASE_URL (dropped afterwards)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory() as directory:
            yield f"sqlite:///{directory}/bench.sqlite3"
        return
    with postgres_database(PG_ADMIN, "tutor_bench") as url:
        yield url


# --- gunicorn on loopback -----------------------------------------------------------------------


def child_pids(pid: int) -> list[int]:
    """Live (not yet reaped) child processes of ``pid``, from /proc (Linux)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # exited while we looked
            continue
        state, parent = text[text.rindex(")") + 2 :].split()[:2]
        if int(parent) == pid and state not in ("Z", "X"):
            found.append(int(stat.parent.name))
    return sorted(found)


def rss_mib(pid: int) -> float:
    """Resident memory of a process (VmRSS), in MiB; 0 when it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0.0
    for line in status.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class Gunicorn:
    """A running gunicorn master on 127.0.0.1; its workers are its children."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, workers: int) -> None:
        self.process, self.port, self.workers = process, port, workers

    def worker_pids(self) -> list[int]:
        return child_pids(self.process.pid)

    def wait_ready(self, timeout: float, path: str = "/healthz") -> None:
        """Until every worker is forked and one answers ``path``; RuntimeError if gunicorn exits or the
        deadline passes. The default is the process probe: exempt from rate limits, so a probe the client gave
        up on (a worker still importing the app answers it later) cannot use up a test's tight limit."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"gunicorn exited with status {self.process.returncode}")
            if len(self.worker_pids()) == self.workers:
                probe = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
                try:
                    probe.request("GET", path)
                    if probe.getresponse().status == 200:
                        return
                except OSError:
                    pass
                finally:
                    probe.close()
            time.sleep(0.1)
        raise RuntimeError(f"gunicorn did not answer on port {self.port} within {timeout:.0f} s")


@contextmanager
def serve(
    target: str,
    url: str,
    *,
    workers: int,
    env: Mapping[str, str] | None = None,
    log: IO[bytes] | None = None,
    timeout: float = 60,
) -> Iterator[Gunicorn]:
    """gunicorn serving ``target`` (e.g. ``wsgi:app``) against ``url`` on a free loopback port, with
    SETTINGS and ``env`` in its environment and its stderr in ``log``; stopped on exit."""
    port = free_port()
    environment = {**os.environ, **SETTINGS, "DATABASE_URL": url, "PYTHONPATH": str(ROOT), **(env or {})}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--workers",
            str(workers),
            "--bind",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            target,
        ],
        cwd=ROOT,
        env=environment,
        stderr=log,
    )
    try:
        server = Gunicorn(process, port, workers)
        server.wait_ready(timeout)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
