"""Real job workers for the tests: ``flask worker``'s code in a process of its own (``python -m
tests.jobs_support CONFIG``), started, stopped, killed with SIGKILL and restarted by the tests; and one job
kind of the tests' own, ``test_gate``, whose work waits (reporting progress) until the test opens its gate,
then stores a row and commits, like every real kind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from flask import Flask

from app.domain.access import Action
from app.domain.errors import DomainError
from app.models import BiasReport
from app.services.operations.jobs import KINDS, JobContext, JobKind, register

ROOT = Path(__file__).resolve().parent.parent
GATE = "test_gate"
MARKER = "job-marker"  # bias_reports.attribute of the rows test_gate stores
# What a test's worker needs of the test app's settings (the rest are defaults).
SHARED_KEYS = (
    "SQLALCHEMY_DATABASE_URI",
    "SECRET_KEY",
    "CONTENT_DIR",
    "LOGIN_HASH_LOCK_DIR",
    "JOBS_URL",
    "JOBS_QUEUE",
    "SESSION_COOKIE_SECURE",
)


def _run_gate(ctx: JobContext) -> dict[str, Any]:
    gate = Path(ctx.params["gate"])
    steps = 0
    while not gate.exists():
        steps += 1
        ctx.progress(steps, None, "waiting for the gate")
        time.sleep(0.02)
        if steps > 50 * 120:
            raise DomainError("the gate was never opened")
    ctx.session.add(
        BiasReport(
            school_id=ctx.principal.school_id,
            actor=ctx.principal.actor,
            attribute=MARKER,
            report={"job": ctx.job_id},
        )
    )
    ctx.session.commit()
    return {"steps": steps}


def register_test_kinds() -> None:
    if GATE not in KINDS:
        register(
            JobKind(
                GATE,
                "Test gate",
                Action.MANAGE_JOBS,
                _run_gate,
                link=lambda created: {"marker_ids": [o.id for o in created if isinstance(o, BiasReport)]},
            )
        )


def worker_config(app: Flask, **overrides: Any) -> dict[str, Any]:
    """The settings of a worker for ``app``'s database and queue: short leases and heartbeats."""
    config = {key: app.config[key] for key in SHARED_KEYS}
    return {"TESTING": True, "JOBS_LEASE_SECONDS": 1.0, "JOBS_HEARTBEAT_SECONDS": 0.05, **config, **overrides}


class WorkerProcess:
    """``flask worker`` in a process of its own, its output in ``log``."""

    def __init__(self, config: dict[str, Any], log: Path) -> None:
        self.config = config
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    def start(self, timeout: float = 90) -> WorkerProcess:
        self.starts += 1
        marker = f"--- start {self.starts} ---\n"
        with self.log.open("a") as out:
            out.write(marker)
        out = self.log.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.jobs_support", json.dumps(self.config)],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        out.close()
        wait_for(lambda: "worker.started" in self.output().rsplit(marker, 1)[-1], timeout, self.output)
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def kill(self) -> None:
        """SIGKILL: no handler runs, nothing is handed back (as when a machine dies)."""
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)
        self.process = None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60) -> int:
        if self.process is None:
            return 0
        self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait(timeout=30)
        self.process = None
        return code


def wait_for(condition: Callable[[], Any], timeout: float = 60, context: Callable[[], str] = str) -> Any:
    """Poll ``condition`` until it is truthy (its value), or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s\n{context()[-4000:]}")
        time.sleep(0.02)


def main() -> None:
    from app import create_app
    from app.services.operations import jobs

    register_test_kinds()
    app = create_app(json.loads(sys.argv[1]))
    with app.app_context():
        jobs.run_worker()


if __name__ == "__main__":
    main()
