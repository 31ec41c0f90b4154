"""The practice loop through HTTP: next exercise, answers, mastery, progress."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from app.domain.tracking import StudentModel
from app.extensions import db
from app.models import Mastery, Response, ResponseSkill
from tests.conftest import ROUNDING, ApiClient, published


def independent_bkt(
    p: float, correct: bool, prior: float, learn: float, guess: float, slip: float, forget: float
) -> float:
    """The BKT update written out again, independently of app.domain.bkt."""
    del prior
    if correct:
        post = p * (1 - slip) / (p * (1 - slip) + (1 - p) * guess)
    else:
        post = p * slip / (p * slip + (1 - p) * (1 - guess))
    return post * (1 - forget) + (1 - post) * learn


def skill_params(api: ApiClient) -> dict[str, dict]:
    return {s["id"]: s["parameters"] for s in api.get("/api/v1/skills").get_json()}


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def wrong_answer(exercise: dict) -> str:
    if exercise["answer_kind"] == "multiple_choice":
        return exercise["choices"][0]
    return "-98765.4321"


def test_first_exercise_is_from_a_skill_without_prerequisites(api: ApiClient, shipped_graph) -> None:
    student = api.new_student()
    body = api.get(f"/api/v1/students/{student}/next-exercise").get_json()
    exercise = body["exercise"]
    assert body["reason"] in {"learn", "explore"} and body["explanation"] and body["policy"] == "adaptive"
    assert shipped_graph.skills[body["skill_id"]].prerequisites == ()
    assert body["details"]["skill"]["id"] == body["skill_id"] and body["details"]["target_success"] == 0.7
    prior = skill_params(api)[body["skill_id"]]["prior"]
    # standard BKT starts at the prior; the decision model also weighs the chance the student starts from
    # scratch (prior knowledge 0, 1/2 or 1 x the prior), so it starts lower
    assert body["p_mastery"] == prior
    assert body["p_mastery_paced"] == body["mastery_estimate"] == pytest.approx(prior * 0.55)
    assert body["skill_id"] in exercise["skill_ids"]
    assert set(exercise) == {
        *("id", "skill_ids", "prompt", "answer_kind", "choices", "difficulty", "hints"),
        *("items", "variables", "units"),  # what an answer of the newer kinds needs; never the answers
    }
    assert 0 <= exercise["difficulty"] <= 1
    # Asking again without answering gives the same exercise; a seed makes it reproducible.
    assert api.get(f"/api/v1/students/{student}/next-exercise").get_json() == body
    seeded = [api.get(f"/api/v1/students/{student}/next-exercise?seed=7").get_json() for _ in range(2)]
    assert seeded[0] == seeded[1]
    assert api.get(f"/api/v1/students/{student}/next-exercise?seed=-1").status_code == 422
    assert api.get(f"/api/v1/students/{student}/next-exercise?seed=abc").status_code == 422


def test_server_grades_answers_and_updates_mastery(app, api: ApiClient, shipped_graph) -> None:
    student = api.new_student()
    params = skill_params(api)
    exercise_id = api.get(f"/api/v1/students/{student}/next-exercise").get_json()["exercise"]["id"]
    exercise = shipped_graph.exercises[exercise_id]
    right = api.post(
        f"/api/v1/students/{student}/responses",
        json={"exercise_id": exercise_id, "answer": exercise.answers[0], "response_time_ms": 5300},
    )
    assert right.status_code == 201
    body = right.get_json()
    assert body["correct"] is True and body["graded_by"] == "server"
    assert body["correct_answer"] == exercise.answers[0]
    for skill_id in exercise.skill_ids:
        p = params[skill_id]
        assert body["p_mastery"][skill_id] == published(
            independent_bkt(
                p["prior"], True, **{k: p[k] for k in ("prior", "learn", "guess", "slip", "forget")}
            )
        )
        assert body["mastery"][skill_id] == body["p_mastery"][skill_id]  # the deprecated name, one version
    step = body["skills"][0]
    p = params[step["skill_id"]]
    assert step["p_mastery_before"] == p["prior"]
    assert abs(step["p_correct"] - (p["prior"] * (1 - p["slip"]) + (1 - p["prior"]) * p["guess"])) <= ROUNDING

    wrong = api.post(
        f"/api/v1/students/{student}/responses",
        json={
            "exercise_id": exercise_id,
            "answer": wrong_answer(api.get(f"/api/v1/exercises/{exercise_id}").get_json()),
        },
    )
    assert wrong.status_code == 201 and wrong.get_json()["correct"] is False
    for skill_id in exercise.skill_ids:
        assert wrong.get_json()["p_mastery"][skill_id] < body["p_mastery"][skill_id]
    assert count(app, Response) == 2


def test_app_graded_answers(app, api: ApiClient, shipped_graph) -> None:
    student = api.new_student()
    exercise_id = next(iter(shipped_graph.exercises))
    response = api.post(
        f"/api/v1/students/{student}/responses", json={"exercise_id": exercise_id, "correct": False}
    )
    assert response.status_code == 201
    assert response.get_json()["graded_by"] == "app" and response.get_json()["correct"] is False


def test_multi_skill_exercise_updates_every_skill(app, api: ApiClient, shipped_graph) -> None:
    multi = next(e for e in shipped_graph.exercises.values() if len(e.skill_ids) > 1)
    student = api.new_student()
    body = api.post(
        f"/api/v1/students/{student}/responses", json={"exercise_id": multi.id, "correct": True}
    ).get_json()
    assert set(body["p_mastery"]) == set(multi.skill_ids)
    progress = skill_progress(api, student)
    for skill_id in multi.skill_ids:
        assert progress[skill_id]["attempts"] == 1
        assert progress[skill_id]["p_mastery"] == body["p_mastery"][skill_id]


def test_retry_with_client_response_id_records_once(app, api: ApiClient, shipped_graph) -> None:
    student = api.new_student()
    exercise_id = next(iter(shipped_graph.exercises))
    payload = {"exercise_id": exercise_id, "correct": True, "client_response_id": "tab-1-answer-1"}
    first = api.post(f"/api/v1/students/{student}/responses", json=payload)
    retry = api.post(f"/api/v1/students/{student}/responses", json=payload)
    assert first.status_code == 201 and retry.status_code == 200
    assert retry.get_json() == first.get_json()
    assert count(app, Response) == 1
    with app.app_context():
        assert db.session.scalar(sa.select(Mastery.attempts)) == 1
    conflicting = api.post(f"/api/v1/students/{student}/responses", json={**payload, "correct": False})
    assert conflicting.status_code == 409 and "tab-1-answer-1" in conflicting.get_json()["message"]
    # The same client id for another student is a different answer.
    other = api.new_student("student-2")
    assert api.post(f"/api/v1/students/{other}/responses", json=payload).status_code == 201


def test_bad_answers_are_refused_without_writing(app, api: ApiClient, shipped_graph) -> None:
    student = api.new_student()
    choice = next(e for e in shipped_graph.exercises.values() if e.answer_kind == "multiple_choice")
    url = f"/api/v1/students/{student}/responses"
    cases = [
        ({"exercise_id": "no-such-exercise", "correct": True}, 404, "exercise_id"),
        ({"exercise_id": choice.id, "answer": "not a choice"}, 422, "answer"),
        ({"exercise_id": choice.id, "answer": "   "}, 422, "answer"),
        ({"exercise_id": choice.id}, 422, "_schema"),
        ({"exercise_id": choice.id, "answer": choice.answers[0], "correct": True}, 422, "_schema"),
        ({"exercise_id": choice.id, "correct": "true"}, 422, "correct"),
        ({"exercise_id": choice.id, "correct": True, "response_time_ms": -5}, 422, "response_time_ms"),
        ({"exercise_id": choice.id, "correct": True, "response_time_ms": 1.5}, 422, "response_time_ms"),
        ({"exercise_id": choice.id, "correct": True, "client_response_id": ""}, 422, "client_response_id"),
        ({"exercise_id": choice.id, "correct": True, "extra": 1}, 422, "extra"),
    ]
    for payload, status, field in cases:
        response = api.post(url, json=payload)
        assert response.status_code == status, payload
        assert field in response.get_json()["errors"]["json"], payload
    malformed = api.client.post(
        url, data='{"exercise_id": ', headers={**api.headers, "Content-Type": "application/json"}
    )
    assert malformed.status_code == 400 and malformed.get_json()["message"]
    form = api.client.post(url, data={"exercise_id": choice.id}, headers=api.headers)
    assert form.status_code == 415 and "JSON" in form.get_json()["message"]
    missing = api.post("/api/v1/students/nobody/responses", json={"exercise_id": choice.id, "correct": True})
    assert missing.status_code == 404
    assert count(app, Response) == 0 and count(app, ResponseSkill) == 0 and count(app, Mastery) == 0


def test_replayed_answers_match_an_independent_bkt_computation(app, api: ApiClient, shipped_graph) -> None:
    """Follow the tutor for 60 answers (a fixed right/wrong pattern) and recompute mastery by hand."""
    student = api.new_student()
    params = skill_params(api)
    expected: dict[str, float] = {}
    attempts: dict[str, int] = {}
    pattern = [True, True, False, True, False, True, True, True]
    for i in range(60):
        exercise = api.get(f"/api/v1/students/{student}/next-exercise").get_json()["exercise"]
        correct = pattern[i % len(pattern)]
        body = api.post(
            f"/api/v1/students/{student}/responses", json={"exercise_id": exercise["id"], "correct": correct}
        ).get_json()
        for skill_id in exercise["skill_ids"]:
            p = params[skill_id]
            before = expected.get(skill_id, p["prior"])
            expected[skill_id] = independent_bkt(before, correct, **p_args(p))
            attempts[skill_id] = attempts.get(skill_id, 0) + 1
            assert abs(body["p_mastery"][skill_id] - expected[skill_id]) <= ROUNDING
    progress = skill_progress(api, student)
    for skill_id, p in expected.items():
        assert abs(progress[skill_id]["p_mastery"] - p) <= ROUNDING
        assert progress[skill_id]["attempts"] == attempts[skill_id]
    with app.app_context():
        stored = dict(db.session.execute(sa.select(Mastery.skill_id, Mastery.p_mastery)).all())
    assert stored.keys() == expected.keys()
    assert all(abs(stored[s] - expected[s]) < 1e-12 for s in stored)  # stored exactly; published rounded
    assert len(expected) >= 2  # the tutor moved on to other skills


def skill_progress(api: ApiClient, student: str) -> dict[str, dict]:
    body = api.get(f"/api/v1/students/{student}/progress").get_json()
    return {s["skill_id"]: s for s in body["skills"]}


def p_args(p: dict) -> dict:
    return {k: p[k] for k in ("prior", "learn", "guess", "slip", "forget")}


def test_student_who_always_answers_right_masters_everything(app, api: ApiClient, shipped_graph) -> None:
    """The whole curriculum end to end: prerequisites first, then 'all_mastered'."""
    student = api.new_student()
    threshold = app.config["MASTERY_THRESHOLD"]
    mastered: set[str] = set()
    for _ in range(1000):
        body = api.get(f"/api/v1/students/{student}/next-exercise").get_json()
        if body["exercise"] is None:
            break
        assert set(shipped_graph.skills[body["skill_id"]].prerequisites) <= mastered
        result = api.post(
            f"/api/v1/students/{student}/responses",
            json={"exercise_id": body["exercise"]["id"], "correct": True},
        ).get_json()
        mastered |= {s["skill_id"] for s in result["skills"] if s["mastered"]}
        for step in result["skills"]:
            # one number before and after, on the same scale: a right answer never shows a fall
            assert step["mastery_estimate_after"] >= step["mastery_estimate_before"]
            assert result["mastery_estimate"][step["skill_id"]] == step["mastery_estimate_after"]
            if step["mastered"]:
                assert step["mastery_estimate_after"] >= 0.9
        answered = {s["skill_id"] for s in result["skills"]}
        for skill in api.get(f"/api/v1/students/{student}/progress").get_json()["skills"]:
            if skill["skill_id"] in answered:  # never mastered on fewer than 3 credited answers
                assert not skill["mastered"] or skill["correct_count"] >= 3
    assert threshold == 0.95
    assert body["exercise"] is None and body["skill_id"] is None and body["reason"] == "all_mastered"
    progress = api.get(f"/api/v1/students/{student}/progress").get_json()
    assert progress["skills_mastered"] == progress["skills_total"] == len(shipped_graph.skills)
    assert all(s["mastered"] and s["mastered_at"] for s in progress["skills"])


def test_progress_of_a_new_student_is_at_the_priors(api: ApiClient, shipped_graph) -> None:
    student = api.new_student()
    params = skill_params(api)
    body = api.get(f"/api/v1/students/{student}/progress").get_json()
    assert body["mastery_threshold"] == 0.95 and body["skills_mastered"] == 0
    assert [s["skill_id"] for s in body["skills"]] == list(shipped_graph.skill_order)
    assert body["personalized"] is True and body["answers"] == 0
    # No answers tell no pace: the model's assumptions are not published as the student's.
    assert body["speed"] is None and body["prior_knowledge"] is None
    assert body["speed_reason"] == "not_enough_answers"
    assert body["min_correct"] == 3
    assumed_prior_knowledge = StudentModel().prior_knowledge
    for skill in body["skills"]:
        prior = params[skill["skill_id"]]["prior"]
        assert skill["p_mastery"] == published(prior)
        expected = pytest.approx(prior * assumed_prior_knowledge, abs=ROUNDING)
        assert skill["p_mastery_paced"] == skill["mastery_estimate"] == expected
        assert skill["status"] == "not_started"
        assert skill["review_due"] is False and skill["recall"] is None
        assert skill["attempts"] == 0 and skill["mastered"] is False and skill["mastered_at"] is None


def test_skills_and_exercises_are_published_without_answers(api: ApiClient, shipped_graph) -> None:
    skills = api.get("/api/v1/skills").get_json()
    assert [s["id"] for s in skills] == list(shipped_graph.skill_order)
    for skill in skills:
        params = skill["parameters"]
        assert set(params) == {"prior", "learn", "guess", "slip", "forget", "version", "source"}
        assert params["guess"] < 0.5 and params["slip"] < 0.5 and skill["exercise_count"] > 0
    one = skills[-1]
    assert api.get(f"/api/v1/skills/{one['id']}").get_json() == one
    assert api.get("/api/v1/skills/nope").status_code == 404
    for exercise_id in list(shipped_graph.exercises)[:20]:
        body = api.get(f"/api/v1/exercises/{exercise_id}").get_json()
        assert "answers" not in body and body["id"] == exercise_id
    missing = api.get("/api/v1/exercises/nope")
    assert missing.status_code == 404 and missing.get_json()["message"] == "Unknown exercise 'nope'."


def test_opt_out_gives_fixed_order_and_is_recorded(app, api: ApiClient, shipped_graph) -> None:
    student = api.new_student()
    off = api.client.patch(f"/api/v1/students/{student}", json={"personalized": False}, headers=api.headers)
    assert off.status_code == 200
    assert off.get_json()["personalized"] is False and off.get_json()["personalization_changed_at"]
    order = [
        e
        for s in shipped_graph.skill_order
        for e in shipped_graph.exercises_by_skill[s]
        if shipped_graph.exercises[e].skill_ids[0] == s
    ]
    seen = []
    for i in range(4):
        body = api.get(f"/api/v1/students/{student}/next-exercise").get_json()
        assert body["reason"] == "fixed_order" and body["policy"] == "fixed_sequence"
        seen.append(body["exercise"]["id"])
        api.post(
            f"/api/v1/students/{student}/responses",
            json={"exercise_id": body["exercise"]["id"], "correct": i % 2 == 0},
        )
    assert seen == order[:4]
    assert api.get(f"/api/v1/students/{student}/progress").get_json()["personalized"] is False
    on = api.client.patch(f"/api/v1/students/{student}", json={"personalized": True}, headers=api.headers)
    assert on.get_json()["personalized"] is True
    assert api.get(f"/api/v1/students/{student}/next-exercise").get_json()["policy"] == "adaptive"
    for bad in ({}, {"personalized": "no"}, {"personalized": None}):
        response = api.client.patch(f"/api/v1/students/{student}", json=bad, headers=api.headers)
        assert response.status_code == 422, bad


def test_recommendations_are_stored_with_the_answer_that_followed(app, api: ApiClient, shipped_graph) -> None:
    student = api.new_student()
    first = api.get(f"/api/v1/students/{student}/next-exercise").get_json()
    again = api.get(f"/api/v1/students/{student}/next-exercise").get_json()
    assert again["recommendation_id"] == first["recommendation_id"]  # served twice, stored once
    answered = api.post(
        f"/api/v1/students/{student}/responses",
        json={"exercise_id": first["exercise"]["id"], "correct": True},
    ).get_json()
    assert answered["recommendation_id"] == first["recommendation_id"]
    second = api.get(f"/api/v1/students/{student}/next-exercise").get_json()
    assert second["recommendation_id"] != first["recommendation_id"]
    # An exercise the app chose itself is not attributed to a recommendation.
    own_choice = next(e for e in shipped_graph.exercises if e != second["exercise"]["id"])
    unlinked = api.post(
        f"/api/v1/students/{student}/responses", json={"exercise_id": own_choice, "correct": False}
    ).get_json()
    assert unlinked["recommendation_id"] is None
    history = api.get(f"/api/v1/students/{student}/recommendations").get_json()
    assert [h["id"] for h in history] == [second["recommendation_id"], first["recommendation_id"]]
    assert history[1]["response_id"] == answered["id"] and history[1]["correct"] is True
    assert history[1]["explanation"] == first["explanation"] and history[1]["details"] == first["details"]
    assert history[0]["response_id"] is None


def test_the_worked_solution_comes_with_the_answer_and_never_before(api: ApiClient, shipped_graph) -> None:
    student = api.new_student()
    served = api.get(f"/api/v1/students/{student}/next-exercise").get_json()
    exercise = shipped_graph.exercises[served["exercise"]["id"]]
    assert exercise.solution and "solution" not in served["exercise"]
    wrong = api.post(
        f"/api/v1/students/{student}/responses",
        json={"exercise_id": exercise.id, "answer": "999999", "client_response_id": "w-1"},
    )
    assert wrong.status_code == 201 and wrong.get_json()["solution"] == list(exercise.solution)
    retry = api.post(
        f"/api/v1/students/{student}/responses",
        json={"exercise_id": exercise.id, "answer": "999999", "client_response_id": "w-1"},
    )
    assert retry.status_code == 200 and retry.get_json() == wrong.get_json()
