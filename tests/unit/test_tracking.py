from datetime import UTC, datetime, timedelta

import pytest

from app.domain.bkt import BktParams, update_mastery
from app.domain.tracking import (
    HYPOTHESES,
    HYPOTHESIS_PRIOR,
    SPEEDS,
    MasteryRules,
    MasteryStatus,
    SkillState,
    StudentModel,
    apply_answer,
    params_for,
    status_from,
)

NOW = datetime(2026, 1, 5, 9, tzinfo=UTC)
P = BktParams(prior=0.0, learn=0.11, guess=0.2, slip=0.2)
GENEROUS = BktParams(prior=0.45, learn=0.25, guess=0.1, slip=0.08)  # like the shipped defaults
PARAMS = {"a": P, "b": P, "g": GENEROUS}
RULES = MasteryRules()


def answer(
    model: StudentModel, correct: bool, skills=("a",), at: datetime = NOW, rules: MasteryRules = RULES
):
    return apply_answer(model, list(skills), correct, PARAMS, now=at, rules=rules)


def test_standard_estimate_is_plain_bkt() -> None:
    model, p = StudentModel(), P.prior
    for correct in (False, True, True, False, True):
        step = answer(model, correct)[0]
        assert step.p_mastery_before == p
        p = update_mastery(p, correct, P)
        assert step.p_mastery_after == pytest.approx(p, abs=1e-15)  # the tracker carries P(not L) too
        p = step.p_mastery_after


def test_a_hypothesis_scales_learning_and_prior_and_never_assumes_a_low_guess() -> None:
    assert params_for(P, 1.0, 1.0, 0.0) == P
    assert params_for(P, 2.0, 1.0, 0.0).learn == pytest.approx(1 - 0.89**2)
    assert params_for(P, 0.5, 1.0, 0.0).learn < P.learn < params_for(P, 4.0, 1.0, 0.0).learn
    half = params_for(GENEROUS, 1.0, 0.5, 0.2)
    assert half.prior == pytest.approx(0.225) and half.guess == 0.2 and half.slip == GENEROUS.slip
    assert len(HYPOTHESES) == len(HYPOTHESIS_PRIOR) and sum(HYPOTHESIS_PRIOR) == pytest.approx(1)
    # the speed grid is wide and symmetric in log speed, so no student is pinned to an edge
    assert SPEEDS[0] * SPEEDS[-1] == pytest.approx(1) and SPEEDS[-1] / SPEEDS[0] >= 32


def test_speed_posterior_follows_the_answers() -> None:
    slow, fast = StudentModel(), StudentModel()
    for _ in range(12):
        answer(slow, False)
    for _ in range(4):
        answer(fast, True)
    assert sum(slow.speed_weights) == pytest.approx(1) and sum(fast.speed_weights) == pytest.approx(1)
    assert slow.speed < 1.0 < fast.speed


def test_prior_knowledge_is_inferred_from_answers() -> None:
    knows, fresh = StudentModel(), StudentModel()
    for _ in range(3):
        answer(knows, True, skills=("g",))
        answer(fresh, False, skills=("g",))
    start = StudentModel().prior_knowledge
    assert fresh.prior_knowledge < start < knows.prior_knowledge


def test_paced_estimate_is_the_posterior_average() -> None:
    model = StudentModel()
    answer(model, True)
    state = model.skills["a"]
    assert model.paced("a", P) == pytest.approx(
        sum(w * p for w, p in zip(model.speed_weights, state.p_by_speed, strict=True))
    )
    assert model.paced("b", P) == P.prior  # never practised: the prior
    untouched = StudentModel()
    assert untouched.paced("g", GENEROUS) == pytest.approx(
        sum(w * GENEROUS.prior * a for w, (_, a, _) in zip(HYPOTHESIS_PRIOR, HYPOTHESES, strict=True))
    )


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
    # (the pace alone: without the guess floor, which is deliberately more cautious than the content)
    model = StudentModel()
    for correct in [False, True, True, True]:
        step = answer(model, correct, rules=MasteryRules(guess_floor=0.0))[0]
    assert step.p_mastery_paced_after > step.p_mastery_after + 0.01


def test_never_mastered_on_fewer_than_the_minimum_of_credited_answers() -> None:
    # The shipped-like defaults took 0.45 -> 0.897 -> 0.989 in two right answers.
    model = StudentModel()
    first, second = answer(model, True, skills=("g",))[0], answer(model, True, skills=("g",))[0]
    assert not first.mastered and not second.mastered and model.skills["g"].mastered_at is None
    third = answer(model, True, skills=("g",))[0]
    assert third.mastered and model.skills["g"].mastered_at == NOW
    # Without the rule, the estimate alone decides, as soon as it crosses the threshold.
    lenient, rules = StudentModel(), MasteryRules(min_correct=0)
    while lenient.skills.get("g") is None or lenient.skills["g"].mastered_at is None:
        step = answer(lenient, True, skills=("g",), rules=rules)[0]
        assert (lenient.skills["g"].mastered_at is not None) == (step.p_mastery_paced_after >= 0.95)


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
    one = [0.0] * len(HYPOTHESES)
    one[HYPOTHESES.index((1.0, 1.0, 1.0))] = 1.0
    model = StudentModel(speed_weights=one)
    answer(model, False)
    p = model.skills["a"].p_by_speed[HYPOTHESES.index((1.0, 1.0, 1.0))]
    assert model.expected_gain("a", P) == pytest.approx((1 - p) * P.learn)


def master(model: StudentModel, skill: str = "g", at: datetime = NOW) -> None:
    for i in range(6):
        answer(model, True, skills=(skill,), at=at + timedelta(minutes=i))
    assert model.skills[skill].mastered_at is not None


def test_mastery_decays_without_practice_and_the_status_follows() -> None:
    model = StudentModel()
    master(model)
    levels = [model.estimate("g", GENEROUS, NOW + timedelta(days=d)) for d in (0, 2, 5, 20, 400)]
    assert levels == sorted(levels, reverse=True) and levels[0] > 0.99 and levels[-1] < 0.6
    statuses = [model.status("g", GENEROUS, NOW + timedelta(days=d)) for d in (0, 5, 400)]
    assert statuses == [MasteryStatus.MASTERED, MasteryStatus.DUE_FOR_REVIEW, MasteryStatus.NEEDS_RELEARNING]
    # standard BKT P(L) (what pyBKT computes) is untouched by time
    assert model.skills["g"].p_mastery > 0.99


def test_spaced_success_strengthens_memory_more_than_massed_success() -> None:
    massed, spaced = StudentModel(), StudentModel()
    master(massed)
    master(spaced)
    start = massed.skills["g"].memory
    for i in range(10):  # ten more right answers in the same sitting
        answer(massed, True, skills=("g",), at=NOW + timedelta(minutes=10 + i))
    assert massed.skills["g"].memory == start  # massed answers do not inflate stability
    review_day = NOW + timedelta(days=6)
    assert spaced.status("g", GENEROUS, review_day) is MasteryStatus.DUE_FOR_REVIEW
    step = answer(spaced, True, skills=("g",), at=review_day)[0]
    memory = spaced.skills["g"].memory
    assert memory is not None and start is not None and memory.stability > 2 * start.stability
    assert step.estimate_after > step.estimate_before  # restored by spaced success...
    again = answer(spaced, True, skills=("g",), at=review_day + timedelta(minutes=1))[0]
    assert (
        again.mastered and spaced.skills["g"].memory == memory
    )  # ...and the second the same day is no review
    later = review_day + timedelta(days=6, minutes=1)
    assert spaced.estimate("g", GENEROUS, later) > massed.estimate("g", GENEROUS, NOW + timedelta(days=12))


def test_a_failed_review_weakens_memory_and_lowers_the_estimate() -> None:
    model = StudentModel()
    master(model)
    start = model.skills["g"].memory
    step = answer(model, False, skills=("g",), at=NOW + timedelta(days=10))[0]
    memory = model.skills["g"].memory
    assert memory is not None and start is not None
    assert memory.stability < start.stability and memory.lapses == 1
    assert step.estimate_after < step.estimate_before and not step.mastered


def test_forgetting_is_not_read_as_slow_learning() -> None:
    # The same lapse after a long gap says less about the student's speed than one the same day.
    gap, same_day = StudentModel(), StudentModel()
    for model in (gap, same_day):
        master(model)
        master(model, "a", at=NOW + timedelta(hours=1))
    speed = gap.speed
    answer(gap, False, skills=("g",), at=NOW + timedelta(days=60))
    answer(same_day, False, skills=("g",), at=NOW + timedelta(hours=2))
    assert speed - gap.speed < speed - same_day.speed


def test_status_rule() -> None:
    assert status_from(0, False, 0.99) is MasteryStatus.NOT_STARTED
    assert status_from(4, False, 0.99) is MasteryStatus.LEARNING
    assert status_from(4, True, 0.95) is MasteryStatus.MASTERED
    assert status_from(4, True, 0.8) is MasteryStatus.DUE_FOR_REVIEW
    assert status_from(4, True, 0.3) is MasteryStatus.NEEDS_RELEARNING
    fresh = SkillState.fresh(P)
    assert fresh.attempts == 0 and len(fresh.p_by_speed) == len(HYPOTHESES)


@pytest.mark.parametrize(
    "bad, named",
    [
        ({"threshold": 1.5}, "threshold"),
        ({"min_correct": -1}, "min_correct"),
        ({"review_level": 0.99}, "review_level"),
        ({"guess_floor": 0.6}, "guess_floor"),
        ({"memory_weights": (1.0,)}, "memory_weights"),
    ],
)
def test_rules_refuse_bad_values(bad, named) -> None:
    with pytest.raises(ValueError, match=named):
        MasteryRules(**bad)


def test_the_guess_floor_applies_to_content_guesses_not_to_fitted_parameters() -> None:
    content = BktParams(prior=0.3, learn=0.2, guess=0.05, slip=0.1)
    fitted = BktParams(prior=0.3, learn=0.2, guess=0.05, slip=0.1, fitted=True)
    assert params_for(content, 1.0, 1.0, 0.3).guess == 0.3
    assert params_for(fitted, 1.0, 1.0, 0.3).guess == 0.05
    # two right answers on a content guess say less than on a fitted one
    cautious, trusting = StudentModel(), StudentModel()
    for _ in range(2):
        apply_answer(cautious, ["s"], True, {"s": content}, now=NOW)
        apply_answer(trusting, ["s"], True, {"s": fitted}, now=NOW)
    assert cautious.paced("s", content) < trusting.paced("s", fitted)
    # standard BKT P(L) is the same either way: exactly pyBKT's
    assert cautious.skills["s"].p_mastery == trusting.skills["s"].p_mastery
