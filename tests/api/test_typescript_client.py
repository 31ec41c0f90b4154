"""A newcomer's TypeScript client: types from the live document, the loop with openapi-fetch, real server.

tests/typescript/ holds the app (loop.ts) and its pinned tools (package.json, package-lock.json). The test
installs them with ``npm ci`` (skipped while node_modules matches the lock), runs openapi-typescript on the
document served over HTTP, compiles loop.ts with tsc in strict mode and runs it with node against the same
server, then checks the JSON summary it prints. A document that leaves a field optional or untyped, or an
operation without its documented 404, fails at the tsc step. The build happens once per distinct document,
in a temporary directory, so nothing is written into the tree but node_modules; the loop runs on both
backends.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask

from tests.conftest import ROOT, issue_key

TS_DIR = ROOT / "tests" / "typescript"
SOURCES = ("package.json", "tsconfig.json", "loop.ts")
# What node_modules was installed from; npm ci removes node_modules first, so a failed install leaves none.
STAMP = TS_DIR / "node_modules" / ".installed-from"


def run(command: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env={**os.environ, **(env or {})}
    )
    assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}{done.stderr}"
    return done.stdout


def node_tools() -> tuple[str, str]:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        return node, npm
    message = (
        "node and npm are needed for the TypeScript client test (Debian: apt-get install -y nodejs npm); "
        f"found node={node}, npm={npm}"
    )
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(message)
    pytest.skip(message)


def install(npm: str) -> None:
    """``npm ci`` from the committed lock, unless node_modules was installed from this very lock."""
    wanted = hashlib.sha256(
        b"".join((TS_DIR / name).read_bytes() for name in ("package.json", "package-lock.json"))
    )
    if STAMP.is_file() and STAMP.read_text() == wanted.hexdigest():
        return
    run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], TS_DIR, timeout=300)
    STAMP.write_text(wanted.hexdigest())


@pytest.fixture(scope="session")
def typescript_loop(tmp_path_factory: pytest.TempPathFactory) -> Callable[[str], list[str]]:
    """For a server: the command that runs the compiled loop.ts against it (built once per document)."""
    node, npm = node_tools()
    install(npm)
    built: dict[str, Path] = {}

    def for_server(base_url: str) -> list[str]:
        document = httpx.get(f"{base_url}/api/v1/openapi.json", timeout=30).content
        digest = hashlib.sha256(document).hexdigest()
        if digest not in built:
            work = tmp_path_factory.mktemp("typescript")
            for name in SOURCES:
                shutil.copy(TS_DIR / name, work / name)
            (work / "node_modules").symlink_to(TS_DIR / "node_modules")
            bin_dir = TS_DIR / "node_modules" / ".bin"
            # --default-non-nullable false: a field with a default stays optional in a request body (the
            # server fills it in); a response field is required only where the document says so.
            run(
                [
                    str(bin_dir / "openapi-typescript"),
                    f"{base_url}/api/v1/openapi.json",
                    "--default-non-nullable",
                    "false",
                    "--output",
                    "generated/api.d.ts",
                ],
                work,
                timeout=120,
            )
            run([str(bin_dir / "tsc"), "-p", "tsconfig.json"], work, timeout=300)
            built[digest] = work
        return [node, str(built[digest] / "build" / "loop.js"), base_url]

    return for_server


def test_typescript_client_runs_the_loop(
    app: Flask, live_server: str, typescript_loop: Callable[[str], list[str]], shipped_graph: Any
) -> None:
    command = typescript_loop(live_server)
    key = issue_key(app, "typescript-app")
    summary = json.loads(run(command, TS_DIR, timeout=120, env={"TUTOR_API_KEY": key}))
    print(json.dumps(summary, indent=1))

    assert summary["created_status"] == 201 and summary["student_id"]
    exercise = shipped_graph.exercises[summary["exercise_id"]]
    assert summary["prompt"] == exercise.prompt and summary["skill_id"] in exercise.skill_ids
    assert summary["wrong"]["answer"] not in exercise.answers, "the loop's wrong answer was right"
    assert summary["wrong"] == {"answer": summary["wrong"]["answer"], "correct": False, "graded_by": "server"}
    assert summary["right"] == {"answer": summary["right"]["answer"], "correct": True, "graded_by": "server"}
    assert summary["right"]["answer"] in exercise.answers
    assert summary["estimate_after_right"] > summary["estimate_after_wrong"]
    assert summary["by_app"]["correct"] is True and summary["by_app"]["graded_by"] == "app"
    assert summary["progress"]["skills_total"] == len(shipped_graph.skills)
    assert summary["progress"]["attempts"] >= 2 and 0 <= summary["progress"]["mastery_estimate"] <= 1
    assert summary["not_found"]["status"] == summary["not_found"]["code"] == 404
    assert summary["not_found"]["message"]
