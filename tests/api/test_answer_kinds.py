"""Answers of every newer kind through the API, on SQLite and PostgreSQL: the grade, the reason of a wrong
one, the readable right answer, a list stored and retried as the same answer, and refusals that write
nothing. The content is the small fixture of tests/fixtures/answer_kinds (the shipped content comes back
after the test: tests/conftest.py reloads it when the revision moved)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from flask import Flask

from app.extensions import db
from app.models import Exercise, Response
from app.services.tutoring.content import sync_content
from app.services.tutoring.content_files import read_content
from tests.conftest import ApiClient

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "answer_kinds"


@pytest.fixture
def kinds(app: Flask) -> Any:
    graph = read_content(FIXTURE)
    with app.app_context():
        sync_content(db.session(), graph)
    return graph


def post(api: ApiClient, student: str, exercise_id: str, answer: Any, **extra: Any) -> Any:
    return api.post(
        f"/api/v1/students/{student}/responses",
        json={"exercise_id": exercise_id, "answer": answer, **extra},
    )


@pytest.mark.parametrize(
    ("exercise_id", "answer", "right", "feedback"),
    [
        ("kinds-expression", "2(x+3)", True, None),
        ("kinds-expression", "x + 6", False, None),
        ("kinds-expression", "2x +", False, "could not read this expression"),
        ("kinds-expression", "__import__('os')", False, "could not read this expression: '_' is not allowed"),
        ("kinds-length", "14 cm", True, None),
        ("kinds-length", 14, True, None),
        ("kinds-length", "14 m", False, "'m' is not the right unit here"),
        ("kinds-estimate", "1.414", True, None),
        ("kinds-estimate", 1.42, False, None),
        ("kinds-fraction", "3/4", True, None),
        ("kinds-fraction", "6/8", False, "the value is right, but write it in simplest form"),
        ("kinds-select", ["5/10", "2/4", "3/6"], True, None),
        ("kinds-select", ["2/4", "3/6"], False, None),
        ("kinds-ordered", ["1/8", "1/3", "1/2", "3/4"], True, None),
        ("kinds-ordered", ["1/3", "1/8", "1/2", "3/4"], False, None),
    ],
)
def test_each_kind_is_graded(
    api: ApiClient, kinds: Any, exercise_id: str, answer: Any, right: bool, feedback: str | None
) -> None:
    student = api.new_student()
    response = post(api, student, exercise_id, answer)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert body["correct"] is right and body["feedback"] == feedback


def test_the_right_answer_is_readable_and_a_list_retries_as_the_same_answer(
    app: Flask, api: ApiClient, kinds: Any
) -> None:
    student = api.new_student()
    order = ["1/3", "1/8", "1/2", "3/4"]
    first = post(api, student, "kinds-ordered", order, client_response_id="r-1")
    assert first.status_code == 201
    assert first.get_json()["correct_answer"] == "1. 1/8; 2. 1/3; 3. 1/2; 4. 3/4"
    again = post(api, student, "kinds-ordered", order, client_response_id="r-1")
    assert again.status_code == 200 and again.get_json()["id"] == first.get_json()["id"]
    other = post(api, student, "kinds-ordered", list(reversed(order)), client_response_id="r-1")
    assert other.status_code == 409
    selected = post(api, student, "kinds-select", ["2/4"])
    assert selected.get_json()["correct_answer"] == "2/4, 3/6, 5/10"
    with app.app_context():
        stored = db.session.scalars(sa.select(Response.answer).order_by(Response.id)).all()
        assert stored == ['["1/3", "1/8", "1/2", "3/4"]', '["2/4"]']
        grading = db.session.get(Exercise, "kinds-length")
        assert grading is not None and grading.grading == {"units": ["cm", "centimetres", "centimeters"]}


def test_an_exercise_shows_what_its_answer_needs_and_never_the_order(api: ApiClient, kinds: Any) -> None:
    ordered = api.get("/api/v1/exercises/kinds-ordered").get_json()
    assert ordered["answer_kind"] == "ordered" and "answers" not in ordered
    assert sorted(ordered["items"]) == sorted(kinds.exercises["kinds-ordered"].answers)
    assert ordered["items"] != list(kinds.exercises["kinds-ordered"].answers)
    assert api.get("/api/v1/exercises/kinds-expression").get_json()["variables"] == ["x"]
    assert api.get("/api/v1/exercises/kinds-length").get_json()["units"] == [
        "cm",
        "centimetres",
        "centimeters",
    ]
    select = api.get("/api/v1/exercises/kinds-select").get_json()
    assert select["choices"] == ["2/4", "2/3", "3/6", "5/10"] and select["items"] == []


@pytest.mark.parametrize(
    ("exercise_id", "answer", "field_message"),
    [
        ("kinds-ordered", ["1/8", "1/3"], "answer must list each item once, in your order"),
        ("kinds-ordered", "1/8", "answer must be a list of the items, in your order"),
        ("kinds-select", ["2/4", "7/8"], "answers must be among the choices: ['7/8']"),
        ("kinds-length", ["14"], "answer must be a single answer, not a list"),
        ("kinds-select", [], "Must be a list of 1 to 50 strings, each 1 to 1000 characters long."),
        ("kinds-select", [1, 2], "Must be a list of 1 to 50 strings, each 1 to 1000 characters long."),
        ("kinds-select", {"a": 1}, "Must be a string, a number, or a list of strings."),
    ],
)
def test_an_answer_that_cannot_fit_is_a_422_and_writes_nothing(
    app: Flask, api: ApiClient, kinds: Any, exercise_id: str, answer: Any, field_message: str
) -> None:
    student = api.new_student()
    refused = post(api, student, exercise_id, answer)
    assert refused.status_code == 422, refused.get_json()
    assert any(field_message in m for m in refused.get_json()["errors"]["json"]["answer"])
    with app.app_context():
        assert db.session.scalar(sa.select(sa.func.count()).select_from(Response)) == 0
