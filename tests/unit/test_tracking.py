from datetime import UTC, datetime

import pytest

from app.domain.bkt import BktParams, update_mastery
from app.domain.tracking import SPEED_PRIOR, SPEEDS, StudentModel, apply_answer, params_at_speed

NOW = datetime(2026, 1, 1, tzinfo=UTC)
P = BktParams(prior=0.0, learn=0.11, guess=0.2, slip=0.2)
PARAMS = {"a": P, "b": P}


def answer(model: StudentModel, correct: bool, skills=("a",)):
    return apply_answer(model, list(skills), correct, PARAMS, now=NOW, threshold=0.95)


def test_standard_estimate_is_plain_bkt() -> None:
    model, p = StudentModel(), P.prior
    for correct in (False, True, True, False, True):
        step = answer(model, correct)[0]
        assert step.p_mastery_before == p
        p = update_mastery(p, correct, P)
        assert step.p_mastery_after == p


def test_speed_factor_turns_learn_rate_into_k_opportunities() -> None:
    assert params_at_speed(P, 1.0) == P
    assert params_at_speed(P, 2.0).learn == pytest.approx(1 - 0.89**2)
    assert params_at_speed(P, 0.5).learn < P.learn < params_at_speed(P, 4.0).learn


def test_speed_posterior_follows_the_answers() -> None:
    slow, fast = StudentModel(), StudentModel()
    for _ in range(12):
        answer(slow, False)
    for _ in range(4):
        answer(fast, True)
    assert sum(slow.speed_weights) == pytest.approx(1) and sum(fast.speed_weights) == pytest.approx(1)
    assert slow.speed < 1.0 < fast.speed
    assert slow.speed_weights[0] > SPEED_PRIOR[0] and fast.speed_weights[-1] > SPEED_PRIOR[-1]


def test_paced_estimate_is_the_posterior_average() -> None:
    model = StudentModel()
    answer(model, True)
    state = model.skills["a"]
    assert model.paced("a", P) == pytest.approx(
        sum(w * p for w, p in zip(model.speed_weights, state.p_by_speed, strict=True)))
    assert model.paced("b", P) == P.prior  # never practised: the prior


def estimates(answers: list[bool]) -> tuple[float, float]:
    model = StudentModel()
    for correct in answers:
        step = answer(model, correct)[0]
    return step.p_mastery_after, step.p_mastery_paced_after


def test_a_slow_learner_is_not_declared_mastered_early() -> None:
    # Many misses before the first successes: a slow learner by their own answers.
    standard, paced = estimates([False] * 14 + [True] * 3)
    assert standard > 0.94 and paced < standard - 0.03


def test_a_fast_learner_is_not_held_back() -> None:
    standard, paced = estimates([False, True, True, True])
    assert paced > standard + 0.01


def test_multi_skill_answer_updates_every_skill_and_pace_once() -> None:
    model, single = StudentModel(), StudentModel()
    answer(model, False, skills=("a", "b"))
    answer(single, False)
    steps = answer(model, True, skills=("a", "b"))
    assert [s.skill_id for s in steps] == ["a", "b"]
    assert model.skills["a"].attempts == model.skills["b"].attempts == 2
    answer(single, True)
    # Two observations moved the speed posterior further than one.
    assert model.speed > single.speed > 1.0


def test_expected_gain_is_the_learning_transition() -> None:
    model = StudentModel(speed_weights=[0, 0, 1, 0, 0])
    answer(model, False)
    p = model.skills["a"].p_by_speed[SPEEDS.index(1.0)]
    assert model.expected_gain("a", P) == pytest.approx((1 - p) * P.learn)


def test_review_successes_and_mastered_at() -> None:
    model = StudentModel()
    for _ in range(30):
        answer(model, True)
    state = model.skills["a"]
    assert state.mastered_at == NOW and state.last_practiced_at == NOW
    assert 0 < state.review_successes < 30
