"""The OpenAPI document as a contract: what generated clients rely on, and that the answers keep it.

Generated clients themselves run the loop in test_generated_client.py and test_typescript_client.py, and the
schemathesis CLI checks every operation in test_schemathesis_cli.py; here are the promises those do not
pin down one by one: names, versions, rounding, deprecations, the README's table.
"""

from __future__ import annotations

import re
from http import HTTPStatus
from pathlib import Path
from typing import Any

from flask import Flask

from app.api.contract import ERRORS
from app.api.schemas import DECIMALS, REMOVED_IN
from tests.conftest import ApiClient, World

ROOT = Path(__file__).resolve().parents[2]
METHODS = {"get", "post", "put", "patch", "delete"}


def document(client: Any) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    return dict(response.get_json())


def operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, item in doc["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def resolve(doc: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = doc["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def test_every_operation_has_a_stable_snake_case_id_and_documents_its_errors(client: Any) -> None:
    doc = document(client)
    assert doc["openapi"].startswith("3.1") and re.fullmatch(r"\d+\.\d+\.\d+", doc["info"]["version"])
    ids = [operation["operationId"] for _, _, operation in operations(doc)]
    assert len(ids) == len(set(ids)) >= 21
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", i) for i in ids), ids
    for method, path, operation in operations(doc):
        responses = operation["responses"]
        assert "default" not in responses, (method, path)
        expected = {"400", "401", "403", "429", "503"} | ({"404"} if "{" in path else set())
        if method in {"POST", "PUT", "PATCH"}:
            expected |= {"413", "415", "422"}
        assert expected <= set(responses), (method, path, sorted(responses))
        for status, response in responses.items():
            assert response.get("content"), f"{method} {path} {status} has no media type"
            if int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == {
                    "$ref": "#/components/schemas/ApiError"
                }
                assert ERRORS[int(status)] in response["description"]
            if status in ("429", "503"):
                assert "Retry-After" in response["headers"]
    record = doc["paths"]["/api/v1/students/{student_id}/responses"]["post"]
    assert "409" in record["responses"]
    export = doc["paths"]["/api/v1/students/{student_id}/export"]["get"]["responses"]["200"]["content"]
    assert set(export) == {"application/json", "application/zip"}


def test_schema_names_cannot_clash_with_generator_types(client: Any) -> None:
    names = set(document(client)["components"]["schemas"])
    # openapi-python-client's own types.py / client.py, and TypeScript's built-in names
    assert not names & {"Response", "File", "Unset", "Client", "AuthenticatedClient", "Error", "Record"}


def test_response_fields_are_required_and_nullable_exactly_where_they_may_be_null(client: Any) -> None:
    doc = document(client)
    schemas = doc["components"]["schemas"]
    next_exercise = schemas["NextExercise"]
    assert set(next_exercise["required"]) == set(next_exercise["properties"])
    assert next_exercise["properties"]["exercise"]["anyOf"] == [
        {"$ref": "#/components/schemas/Exercise"},
        {"type": "null"},
    ]
    for name in ("Student", "Progress", "SkillProgress", "AnswerResult", "StudentReport", "ClassReport"):
        schema = schemas[name]
        assert set(schema["required"]) == set(schema["properties"]), name
        assert "additionalProperties" not in schema, name  # later versions may add fields
    error = schemas["ApiError"]
    assert {"code", "message", "status"} <= set(error["required"]) and "errors" not in error["required"]
    # Requests stay closed: a misspelt field is a 422, not silently ignored.
    assert schemas["AnswerCreate"]["additionalProperties"] is False
    # Exactly one of answer and correct: "not (both, or neither)".
    both = {"required": ["answer", "correct"]}
    neither = {"not": {"anyOf": [{"required": ["answer"]}, {"required": ["correct"]}]}}
    assert schemas["AnswerCreate"]["not"] == {"anyOf": [both, neither]}
    probability = schemas["SkillProgress"]["properties"]["mastery_estimate"]
    assert probability["minimum"] == 0 and probability["maximum"] == 1
    assert f"rounded to {DECIMALS} decimal places" in probability["description"]


PER_SKILL = "Per skill of the exercise, after this answer: "


def test_one_name_one_meaning_across_endpoints(client: Any) -> None:
    """A field name that appears in several schemas is described as the same thing (deprecated aliases,
    which say what replaces them, aside)."""
    schemas = document(client)["components"]["schemas"]
    by_name: dict[str, set[str]] = {}
    for schema in schemas.values():
        for name, prop in schema.get("properties", {}).items():
            if not prop.get("deprecated") and prop.get("description"):
                meaning = prop["description"].removeprefix(PER_SKILL).split(".")[0]
                by_name.setdefault(name, set()).add(meaning)
    for name in ("p_mastery", "p_mastery_paced", "correct_count", "speed", "answers"):
        assert len(by_name.get(name, set())) == 1, (name, by_name.get(name))
    # The old report meaning of p_mastery (the estimate, null below a few answers) lives on only deprecated.
    cell = schemas["ClassReportCell"]["properties"]
    assert cell["p_mastery"]["deprecated"] is True and REMOVED_IN in cell["p_mastery"]["description"]


def floats_in(value: Any) -> list[float]:
    if isinstance(value, float):
        return [value]
    if isinstance(value, dict):
        return [f for item in value.values() for f in floats_in(item)]
    if isinstance(value, list):
        return [f for item in value for f in floats_in(item)]
    return []


def test_numbers_are_rounded_paces_unknown_until_earned_and_old_names_deprecated(
    app: Flask, api: ApiClient, world: World
) -> None:
    student = api.new_student("contract-1")
    bodies = []
    for i in range(25):  # past the 20 answers a pace needs
        chosen = api.get(f"/api/v1/students/{student}/next-exercise").get_json()
        bodies.append(chosen)
        answer = api.post(
            f"/api/v1/students/{student}/responses",
            json={"exercise_id": chosen["exercise"]["id"], "correct": i % 3 != 0},
        )
        assert answer.headers["Deprecation"].startswith("@") and 'rel="deprecation"' in answer.headers["Link"]
        body = answer.get_json()
        assert body["mastery"] == body["p_mastery"] and body["mastery_paced"] == body["p_mastery_paced"]
        bodies.append(body)
        if i == 0:
            progress = api.get(f"/api/v1/students/{student}/progress").get_json()
            assert progress["speed"] is None and progress["speed_reason"] == "not_enough_answers"
            assert "Deprecation" not in api.get(f"/api/v1/students/{student}/progress").headers
    progress = api.get(f"/api/v1/students/{student}/progress")
    report = api.get(f"/api/v1/students/{student}/report")
    for response in (progress, report):
        body = response.get_json()
        assert body["answers"] == 25 and body["speed"] > 0 and body["speed_reason"] is None
        bodies.append(body)
    assert report.get_json()["last_active_at"] == report.get_json()["last_activity_at"] is not None
    for skill in report.get_json()["skills"]:
        assert skill["correct_count"] == skill["correct"]
        assert skill["p_mastery"] == (skill["mastery_estimate"] if skill["enough_data"] else None) or (
            skill["mastered_at"] is not None
        )
    class_report = world.actors["admin"].request("GET", f"/api/v1/classes/{world.class_a}/report")
    assert class_report.status_code == 200 and class_report.headers["Deprecation"]
    bodies.append(class_report.get_json())
    numbers = [f for body in bodies for f in floats_in(body)]
    assert len(numbers) > 500
    assert all(f == round(f, DECIMALS) for f in numbers)


def test_a_numeric_answer_may_be_a_json_number(api: ApiClient, shipped_graph: Any) -> None:
    exercise = next(e for e in shipped_graph.exercises.values() if e.answer_kind == "numeric")
    number = float(exercise.answers[0])
    value: int | float = int(number) if number.is_integer() else number
    student = api.new_student()
    right = api.post(
        f"/api/v1/students/{student}/responses", json={"exercise_id": exercise.id, "answer": value}
    )
    assert right.status_code == 201 and right.get_json()["correct"] is True
    items = "Must be a list of 1 to 50 strings, each 1 to 1000 characters long."
    for bad, message in ((True, "Must be a string, a number, or a list of strings."), ([1], items)):
        refused = api.post(
            f"/api/v1/students/{student}/responses", json={"exercise_id": exercise.id, "answer": bad}
        )
        assert refused.status_code == 422
        assert refused.get_json()["errors"]["json"]["answer"] == [message]


def test_a_405_names_the_allowed_methods(api: ApiClient) -> None:
    student = api.new_student()
    refused = api.client.put(f"/api/v1/students/{student}/responses", headers=api.headers, json={})
    assert refused.status_code == 405 and refused.get_json()["code"] == 405
    assert set(refused.headers["Allow"].split(", ")) >= {"POST", "OPTIONS"}
    page = api.client.delete("/login")
    assert page.status_code == 405 and "GET" in page.headers["Allow"]


def test_the_changelog_has_the_documents_version(client: Any) -> None:
    version = document(client)["info"]["version"]
    changelog = (ROOT / "docs" / "API_CHANGELOG.md").read_text()
    assert re.search(rf"^## {re.escape(version)} ", changelog, re.M), version


README_ROW = re.compile(
    r"^\| `(GET|POST|PUT|PATCH|DELETE) (/api/v1/[^` \[]*)[^`]*`[^|]*\| `([a-z_]+)` \|", re.M
)


def test_the_readme_api_table_is_the_document(client: Any) -> None:
    """One row per operation, with its operationId, and no row for an operation the document lacks."""
    readme = (ROOT / "README.md").read_text()
    rows = {
        (m, re.sub(r"<([a-z_]+)>", r"{\1}", path), op_id) for m, path, op_id in README_ROW.findall(readme)
    }
    served = {(m, path, operation["operationId"]) for m, path, operation in operations(document(client))}
    assert rows == served, {"README only": rows - served, "document only": served - rows}
    assert all(HTTPStatus(int(code)) for code in ERRORS)
