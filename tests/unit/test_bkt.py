import math
from fractions import Fraction

import pytest

from app.domain.bkt import (
    Belief,
    BktParams,
    belief_after,
    is_mastered,
    posterior,
    predict_correct,
    predict_from,
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


def exact_predictions(outcomes: list[bool], params: BktParams) -> list[Fraction]:
    """The forward pass in exact rational arithmetic: the truth the floats approximate."""
    prior, learn, guess, slip = (Fraction(v) for v in (params.prior, params.learn, params.guess, params.slip))
    known, predictions = prior, []
    for correct in outcomes:
        predictions.append(known * (1 - slip) + (1 - known) * guess)
        hit = known * (1 - slip) if correct else known * slip
        miss = (1 - known) * guess if correct else (1 - known) * (1 - guess)
        known = hit / (hit + miss)
        known = known + (1 - known) * learn
    return predictions


def test_a_long_right_run_does_not_make_wrong_answers_powerless() -> None:
    # 30 right answers take P(not L) to ~1e-24: as one float P(L) is exactly 1.0 and 40 wrong answers
    # after it would all be predicted at 1 - slip. The belief keeps P(not L), as pyBKT's forward pass does.
    outcomes = [True] * 30 + [False] * 40
    steps = trace(outcomes, PARAMS)
    truth = exact_predictions(outcomes, PARAMS)
    assert max(abs(step.p_correct - float(t)) for step, t in zip(steps, truth, strict=True)) < 1e-12
    assert steps[30].p_mastery_before == 1.0  # the float P(L) saturates ...
    assert steps[-1].p_correct < 0.5  # ... and the wrong answers still bring the prediction down (from 0.9)
    state = PARAMS.prior
    for correct in outcomes:  # P(L) alone: stuck at 1 - slip
        state = update_mastery(state, correct, PARAMS)
    assert predict_correct(state, PARAMS) == pytest.approx(1 - PARAMS.slip)


def test_the_belief_update_is_the_float_update_while_both_are_precise() -> None:
    belief = Belief.of(PARAMS.prior)
    for correct in (True, False, False, True, True):
        p = belief.known
        belief = belief_after(belief, correct, PARAMS)
        assert belief.known == update_mastery(p, correct, PARAMS)
        assert belief.known + belief.unknown == pytest.approx(1.0, abs=1e-15)
        assert predict_from(belief, PARAMS) == pytest.approx(predict_correct(belief.known, PARAMS), abs=1e-15)
