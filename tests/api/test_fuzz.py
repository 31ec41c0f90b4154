"""Fuzzing every API operation from the served OpenAPI document (schemathesis + Hypothesis).

Requests are generated from /api/v1/openapi.json itself, both schema-valid ("positive") and
schema-violating ("negative"), sent as a learning app (Bearer key), as a signed-in admin and as a
signed-in teacher who has a class (session + CSRF header: the role-scoped routes, whose answers depend on
whose students and classes they are), on SQLite and PostgreSQL. Path ids are sometimes swapped for real ones,
so generated bodies reach real students, classes and exercises rather than only 404s.
Every answer must be: not a 5xx, a documented status, the documented content type, a body that
matches the documented schema; and a schema-violating request must be refused with a 4xx.
"""

from __future__ import annotations

import os
from collections import Counter, defaultdict
from collections.abc import Callable
from typing import Any

import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from app.domain.access import Principal, Role
from app.extensions import db
from app.services.reporting.bias import run_bias_check
from tests.conftest import World

# Per operation, generation mode and caller; ~21 operations x 2 x 3 x 14 = 1,764 requests per backend, as
# many as two callers at 20 were (about a minute per backend in CI). FUZZ_EXAMPLES=200 for a deeper run.
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "14"))
# An app (every student of its school), an admin (the school, by session) and teacher A (class A only).
CALLERS = ("app1", "admin", "teacher_a")
REMOVE_MEMBER = "DELETE /api/v1/classes/{class_id}/students/{student_id}"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def real_ids(app: Any, world: World, shipped_graph: Any) -> dict[str, list[Any]]:
    # A queued job (no worker runs here: it stays queued) and a stored check.
    job = world.actors["admin"].request("POST", "/api/v1/bias-checks", json={"attribute": "class"})
    assert job.status_code == 202, job.get_json()
    with app.app_context():
        admin = Principal(Role.ADMIN, "operator", world.north, "operator")
        bias_check_id = run_bias_check(db.session(), admin, "class", bootstrap=50, permutations=20).id
    return {
        "student_id": [world.student_a, world.student_b],
        "class_id": [world.class_a, world.class_b],
        "bias_check_id": [bias_check_id],
        "job_id": [job.get_json()["id"]],
        "exercise_id": sorted(shipped_graph.exercises)[:3],
        "skill_id": sorted(shipped_graph.skills)[:3],
    }


def with_real_ids(case: Any, ids: dict[str, list[Any]], draw: Callable[[Any], Any]) -> None:
    """Swap most generated ids for existing ones (a quarter stay random: unknown ids must give 404s)."""

    def often() -> bool:
        return bool(draw(st.integers(0, 3)))

    for name in list(case.path_parameters or {}):
        if name in ids and often():
            case.path_parameters[name] = draw(st.sampled_from(ids[name]))
    if isinstance(case.body, dict) and "exercise_id" in case.body and often():
        case.body["exercise_id"] = draw(st.sampled_from(ids["exercise_id"]))
        if often():  # an app-graded answer: random text rarely parses as the exercise's kind
            case.body.pop("answer", None)
            case.body["correct"] = draw(st.booleans())


def disposable_student(world: World, n: int) -> str:
    response = world.actors["app1"].request(
        "POST", "/api/v1/students", json={"external_id": f"throwaway-{n}"}
    )
    return str(response.get_json()["id"])


class Run:
    """What one fuzzing run sent and what went wrong."""

    def __init__(self, world: World, ids: dict[str, list[Any]]) -> None:
        self.world = world
        self.ids = ids
        self.sent: Counter[str] = Counter()
        self.statuses: Counter[int] = Counter()
        self.by_caller: dict[str, Counter[int]] = defaultdict(Counter)
        self.failures: dict[str, str] = {}

    def fuzz(self, operation: Any, mode: GenerationMode, caller: str) -> None:
        actor = self.world.actors[caller]
        checks = CHECKS + ([negative_data_rejection] if mode is GenerationMode.NEGATIVE else [])
        headers = dict(actor.headers)
        if actor.csrf:
            headers["X-CSRFToken"] = actor.csrf

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            database=None,
            phases=[Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode), data=st.data())
        def send(case: Any, data: st.DataObject) -> None:
            if mode is GenerationMode.POSITIVE:  # a real id could turn a deliberately invalid value valid
                with_real_ids(case, self.ids, data.draw)
            if (
                operation.label == "DELETE /api/v1/students/{student_id}"
                and case.path_parameters.get("student_id") in self.ids["student_id"]
            ):
                # Deleting the shared students would leave nothing real for the operations after.
                case.path_parameters["student_id"] = disposable_student(self.world, sum(self.sent.values()))
            # The caller's own credentials, not generated ones (those are tested by the 401 tests).
            if case.headers:
                case.headers.pop("Authorization", None)
            if case.cookies:
                case.cookies.pop("session", None)
            where = f"{operation.label} [{mode.value}, {caller}]"
            self.sent[operation.label] += 1
            try:
                response = case.call(session=actor.client, headers=headers)
            except Exception as error:  # noqa: BLE001 - an exception in the app: a 500 in production
                self.failures.setdefault(where, f"server error {error!r}: {case.as_curl_command()}")
                self.statuses[500] += 1
                return
            self.statuses[response.status_code] += 1
            if operation.label == REMOVE_MEMBER and response.status_code == 200:
                # A shared student taken out of their class: put back, for the operations after.
                self.world.actors["app1"].request(
                    "POST",
                    f"/api/v1/classes/{case.path_parameters['class_id']}/students",
                    json={"student_ids": [case.path_parameters["student_id"]]},
                )
            self.by_caller[caller][response.status_code] += 1
            try:
                case.validate_response(response, checks=checks, headers=headers)
            except (Exception, BaseExceptionGroup) as error:  # collected, reported together at the end
                self.failures.setdefault(where, str(error)[:2000])

        send()


def test_generated_requests_get_documented_answers_and_never_a_server_error(
    app: Any,
    world: World,
    shipped_graph: Any,
) -> None:
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20, [op.label for op in operations]
    run = Run(world, real_ids(app, world, shipped_graph))
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            for caller in CALLERS:
                run.fuzz(operation, mode, caller)

    total = sum(run.sent.values())
    report = "\n\n".join(f"{where}:\n{what}" for where, what in list(run.failures.items())[:8])
    assert not run.failures, report
    assert not [s for s in run.statuses if s >= 500], run.statuses
    # Bounded but broad: every operation was exercised, and the run as a whole is a few thousand requests.
    assert set(run.sent) == {op.label for op in operations}
    assert total >= len(operations) * 2 * len(CALLERS) * EXAMPLES * 0.75, (total, run.sent)
    # The teacher's answers vary with the target: their class's student (200), another class's (404).
    assert run.by_caller["teacher_a"][200] and run.by_caller["teacher_a"][404], run.by_caller["teacher_a"]
    print(
        f"fuzzing: {total} requests over {len(operations)} operations; "
        f"statuses {dict(sorted(run.statuses.items()))}"
    )
