import math

import pytest

from app.domain.bkt import (
    BktParams,
    is_mastered,
    posterior,
    predict_correct,
    trace,
    transition,
    update_mastery,
)
from app.domain.errors import InvalidParameters

PARAMS = BktParams(prior=0.3, learn=0.2, guess=0.25, slip=0.1)


def test_predicted_correct_by_hand() -> None:
    # 0.3 * (1 - 0.1) + 0.7 * 0.25
    assert predict_correct(0.3, PARAMS) == pytest.approx(0.445, abs=1e-15)


def test_correct_answer_update_by_hand() -> None:
    # posterior = 0.27 / (0.27 + 0.175); then + (1 - posterior) * 0.2
    post = 0.27 / 0.445
    assert posterior(0.3, True, PARAMS) == pytest.approx(post, abs=1e-15)
    assert update_mastery(0.3, True, PARAMS) == pytest.approx(post + (1 - post) * 0.2, abs=1e-15)
    assert update_mastery(0.3, True, PARAMS) == pytest.approx(0.6853932584269663, abs=1e-12)


def test_incorrect_answer_update_by_hand() -> None:
    # posterior = 0.03 / (0.03 + 0.525)
    post = 0.03 / 0.555
    assert posterior(0.3, False, PARAMS) == pytest.approx(post, abs=1e-15)
    assert update_mastery(0.3, False, PARAMS) == pytest.approx(0.2432432432432432, abs=1e-12)


def test_forgetting_moves_known_students_back() -> None:
    forgetful = BktParams(prior=0.3, learn=0.2, guess=0.25, slip=0.1, forget=0.1)
    post = 0.27 / 0.445
    assert update_mastery(0.3, True, forgetful) == pytest.approx(post * 0.9 + (1 - post) * 0.2)
    assert transition(1.0, forgetful) == pytest.approx(0.9)
    assert transition(1.0, PARAMS) == 1.0


def test_trace_reports_state_before_each_response() -> None:
    steps = trace([True, False, True], PARAMS)
    assert steps[0].p_mastery_before == PARAMS.prior
    assert steps[0].p_correct == pytest.approx(0.445)
    assert steps[1].p_mastery_before == steps[0].p_mastery_after
    assert steps[2].p_mastery_before == steps[1].p_mastery_after
    assert steps[2].p_mastery_after == update_mastery(steps[1].p_mastery_after, True, PARAMS)


def test_mastery_rises_to_threshold_with_correct_answers() -> None:
    p, answers = PARAMS.prior, 0
    while not is_mastered(p):
        p = update_mastery(p, True, PARAMS)
        answers += 1
    assert answers == 3
    assert is_mastered(0.95) and not is_mastered(0.9499) and is_mastered(0.9, threshold=0.9)


@pytest.mark.parametrize(
    "values, message",
    [
        ({"guess": 0.5}, "guess must be below 0.5"),
        ({"slip": 0.7}, "slip must be below 0.5"),
        ({"prior": 1.2}, "prior must be a probability"),
        ({"learn": -0.1}, "learn must be a probability"),
        ({"forget": math.nan}, "forget must be a probability"),
    ],
)
def test_degenerate_or_out_of_range_parameters_are_refused(values: dict, message: str) -> None:
    base = {"prior": 0.3, "learn": 0.2, "guess": 0.2, "slip": 0.1, "forget": 0.0}
    with pytest.raises(InvalidParameters, match=message):
        BktParams(**{**base, **values})


def test_impossible_observation_keeps_belief() -> None:
    certain = BktParams(prior=1.0, learn=0.0, guess=0.0, slip=0.0)
    # A wrong answer from a student who surely knows the skill has probability 0.
    assert posterior(1.0, False, certain) == 1.0
