"""The schemathesis CLI, as a newcomer runs it: every phase, every check, against a real server.

``st run`` reads the document over HTTP and runs its examples, coverage, fuzzing and stateful phases with
``--checks all``, twice: as a learning app (Bearer key) and as a signed-in admin (session cookie and
X-CSRFToken header), on SQLite and PostgreSQL. The only help it gets is tests/api/schemathesis_hooks.py,
rules the document states in words that JSON Schema cannot express. The run is bounded by time
(SCHEMATHESIS_MAX_TIME seconds per run, 20 by default: the four phases take about 7 s once, then fuzzing
and stateful repeat until the time is spent; set it higher for a deeper run). The test passes only with 0
failures and 0 errors in both runs, every operation tested in each and past authentication for one caller
at least; it prints the counts of each check and the operations that never answered with a 2xx.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from app.extensions import db
from tests.conftest import ROOT, World, make_app, serve

ST = Path(sys.executable).with_name("st")
PHASES = "examples,coverage,fuzzing,stateful"
MAX_TIME = int(os.environ.get("SCHEMATHESIS_MAX_TIME", "20"))
MAX_EXAMPLES = int(os.environ.get("SCHEMATHESIS_MAX_EXAMPLES", "20"))
HOOKS = "tests.api.schemathesis_hooks"
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


@dataclass
class Run:
    """What one ``st run`` reported (its JSON report and its NDJSON events)."""

    caller: str
    exit_code: int
    output: str
    report: dict[str, Any]
    checks: Counter[tuple[str, str]] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))

    @property
    def requests(self) -> int:
        return sum(sum(counts.values()) for counts in self.statuses.values())


class Operations:
    """The document's operations, and which one a request went to (stateful scenarios chain several)."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.labels: set[str] = set()
        self.patterns: list[tuple[str, re.Pattern[str], str]] = []
        for path, item in document["paths"].items():
            pattern = re.compile(
                "".join(
                    "[^/]+" if part.startswith("{") else re.escape(part)
                    for part in re.split(r"(\{[^}]+\})", path)
                )
            )
            for method in item:
                if method in HTTP_METHODS:
                    self.labels.add(f"{method.upper()} {path}")
                    self.patterns.append((method.upper(), pattern, path))

    def of(self, method: str, uri: str) -> str | None:
        path = urlsplit(uri).path
        for known, pattern, template in self.patterns:
            if known == method and pattern.fullmatch(path):
                return f"{method} {template}"
        return None


def read_events(run: Run, ndjson: Path, operations: Operations) -> None:
    """Per check, how often it passed and failed; per operation, the statuses it answered with."""
    with ndjson.open() as lines:
        for line in lines:
            event = json.loads(line)
            if error := event.get("NonFatalError"):
                run.errors.append(f"{error['label']} ({error['phase']}): {json.dumps(error['value'])[:1500]}")
            finished = event.get("ScenarioFinished")
            if finished is None:
                continue
            recorder = finished["recorder"]
            for results in recorder.get("checks", {}).values():
                for check in results:
                    run.checks[(check["name"], check["status"])] += 1
            for interaction in recorder.get("interactions", {}).values():
                request, response = interaction["request"], interaction.get("response")
                if response is not None:
                    label = operations.of(request["method"], request["uri"]) or "undocumented"
                    run.statuses[label][response["status_code"]] += 1


def real_ids_config(world: World, exercises: list[str]) -> str:
    """schemathesis.toml: fuzz dictionaries of ids that exist (schemathesis's own way to "give the fuzzer
    real IDs"). Ids a body names must name something, which no schema can say: drawn from these, a valid
    answer reaches the grading and an enrolment the class. Path ids are real half the time only, so that
    unknown ones (404s) are still sent."""
    students = [world.student_a, world.student_b]
    # Not multiple-choice ones: "an answer to a multiple_choice exercise is one of its choices" is a rule the
    # document states in words (test_bad_input.py holds it); a random string answers the others. Likewise
    # "a list answers only a multiple_select or ordered exercise" (tests/api/test_answer_kinds.py holds it):
    # the answers are drawn from strings and numbers, the shapes these exercises take.
    answers = ["12", "3/4", "-2.5", "certainly not", 7, 0.25]

    def values(items: list[Any]) -> str:
        return json.dumps(items)

    return f"""
[dictionaries.exercises]
values = {values(exercises)}
[dictionaries.students]
values = {values(students)}
[dictionaries.external_ids]
values = {values(["student-a", "student-b"])}
[dictionaries.classes]
values = {values([world.class_a, world.class_b])}
[dictionaries.answers]
values = {values(answers)}

[parameters]
"body.exercise_id" = {{ dictionary = "exercises" }}
"body.answer" = {{ dictionary = "answers" }}
"body.student_ids[*]" = {{ dictionary = "students" }}
"body.external_ids[*]" = {{ dictionary = "external_ids" }}
"path.student_id" = {{ dictionary = "students", probability = 0.5 }}
"path.class_id" = {{ dictionary = "classes", probability = 0.5 }}
"path.exercise_id" = {{ dictionary = "exercises", probability = 0.5 }}
"""


def st_run(
    caller: str, base_url: str, headers: dict[str, str], reports: Path, operations: Operations, config: str
) -> Run:
    reports.mkdir(parents=True)
    (reports / "schemathesis.toml").write_text(config)
    command = [
        str(ST),
        "--config-file",
        str(reports / "schemathesis.toml"),
        "run",
        f"{base_url}/api/v1/openapi.json",
        "--phases",
        PHASES,
        "--checks",
        "all",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(MAX_TIME),
        # One worker: with two, Hypothesis's lambda introspection races on Python 3.11's AST recursion
        # counter ("AST constructor recursion depth mismatch"), an error of the tool, not of the API.
        "--workers",
        "1",
        # The caller's credentials come from the headers below, not from generated security parameters
        # (ignored_auth still sends requests without them and expects a 401).
        "--generation-with-security-parameters",
        "false",
        "--generation-database",
        "none",
        "--report",
        "json,ndjson",
        "--report-json-path",
        str(reports / "report.json"),
        "--report-ndjson-path",
        str(reports / "events.ndjson"),
        "--no-color",
    ]
    for name, value in headers.items():
        command += ["--header", f"{name}: {value}"]
    environment = {
        **os.environ,
        "SCHEMATHESIS_HOOKS": HOOKS,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    done = subprocess.run(
        command,
        cwd=reports,
        env=environment,
        capture_output=True,
        text=True,
        timeout=MAX_TIME + 120,
    )
    output = done.stdout + done.stderr
    assert (reports / "report.json").is_file(), f"st run wrote no report:\n{output[-5000:]}"
    run = Run(caller, done.returncode, output, json.loads((reports / "report.json").read_text()))
    read_events(run, reports / "events.ndjson", operations)
    return run


@pytest.fixture
def fuzz_server(world: World, database_url: str) -> Iterator[str]:
    """The test's database behind a real server whose API limit no fuzzing run reaches (a 429 would answer
    in place of the behaviour under test)."""
    app = make_app(database_url, RATELIMIT_API="1000000 per minute")
    with serve(app) as url:
        yield url
    with app.app_context():
        db.engine.dispose()


def callers(world: World) -> dict[str, dict[str, str]]:
    admin = world.actors["admin"]
    cookie = admin.client.get_cookie("session")
    assert cookie is not None and admin.csrf, "the admin is not signed in"
    return {
        "app": {"Authorization": f"Bearer {world.key_1}"},
        "admin": {"Cookie": f"session={cookie.value}", "X-CSRFToken": admin.csrf},
    }


def summary(run: Run) -> str:
    report = run.report
    by_check: dict[str, dict[str, int]] = defaultdict(dict)
    for (name, status), count in sorted(run.checks.items()):
        by_check[name][status] = count
    lines = [
        f"st run as {run.caller}: exit {run.exit_code}, {report['test_cases']['generated']} test cases, "
        f"{run.requests} requests in {report['running_time']:.0f} s; operations {report['operations']}",
        *(f"  {name}: {counts}" for name, counts in by_check.items()),
        f"  warnings: { {k: v for k, v in report['warnings'].items() if v} }",
    ]
    return "\n".join(lines)


def test_schemathesis_cli_all_phases_all_checks_no_failure(
    world: World, fuzz_server: str, tmp_path: Path, shipped_graph: Any
) -> None:
    operations = Operations(httpx.get(f"{fuzz_server}/api/v1/openapi.json", timeout=30).json())
    typed = sorted(e.id for e in shipped_graph.exercises.values() if e.answer_kind != "multiple_choice")
    config = real_ids_config(world, typed[:20])
    runs = [
        st_run(name, fuzz_server, headers, tmp_path / name, operations, config)
        for name, headers in callers(world).items()
    ]
    for run in runs:
        print(summary(run))

    problems = []
    for run in runs:
        report = run.report
        if report["failures"] or report["errors"] or run.errors or run.exit_code != 0:
            start = min(
                (i for i in (run.output.find(" ERRORS ="), run.output.find(" FAILURES =")) if i >= 0),
                default=0,
            )
            problems.append(
                f"as {run.caller}: exit {run.exit_code}, failures {report['failures']}, "
                f"errors {report['errors']}"
                + "".join(f"\n  error: {error}" for error in run.errors)
                + f"\n{run.output[start:][:8000]}"
            )
        tested = report["operations"]
        if tested["errored"] or not tested["tested"] == tested["selected"] == len(operations.labels):
            problems.append(f"as {run.caller}: not every operation was tested: {tested}")
        phases = {name: phase["status"] for name, phase in report["phases"].items()}
        # The examples phase has nothing to run while the document has no examples; the others must pass.
        if phases.pop("examples") not in ("success", "skip") or set(phases.values()) != {"success"}:
            problems.append(f"as {run.caller}: phases {report['phases']}")
    # Every operation got past authentication for one caller at least (app-only and admin-only operations
    # answer the other caller with a 403): its own rules answered, not only the access check.
    reached = {
        label
        for run in runs
        for label, counts in run.statuses.items()
        if any(status not in (401, 403) for status in counts)
    }
    for label in sorted(operations.labels - reached):
        problems.append(f"{label}: only 401/403 answers: {[dict(run.statuses[label]) for run in runs]}")
    # Random ids rarely name a real exercise or report: which operations never answered with a 2xx (there is
    # no seed data here, and the hooks may not invent any) is printed, not failed.
    unanswered = {
        label: [dict(run.statuses[label]) for run in runs]
        for label in sorted(operations.labels)
        if not any(200 <= status < 300 for run in runs for status in run.statuses[label])
    }
    print(f"operations without a 2xx answer in these runs: {unanswered}")
    assert not problems, "\n\n".join(problems)
