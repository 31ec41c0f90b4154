"""Bias-check statistics on synthetic students with known truth: planted gaps are found, null data is
quiet."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from app.domain.fairness import (
    DecisionData,
    FairnessConfig,
    PickData,
    ResponseData,
    abroca,
    audit,
    benjamini_hochberg,
    plain_summary,
    weighted_auc,
)

FAST = FairnessConfig(bootstrap=300, permutations=200, seed=1)


def synthetic(
    seed: int,
    *,
    n_a: int = 120,
    n_b: int = 120,
    slower_b: float = 1.0,
    overpredict_b: float = 0.0,
    noisier_b: float = 0.0,
    n_small: int = 0,
):
    """Students in groups A and B (and a small group C): answers with known P(correct), and decisions."""
    rng = np.random.default_rng(seed)
    groups = ["A"] * n_a + ["B"] * n_b + ["C"] * n_small
    rows_student, predicted, observed = [], [], []
    d_student, attempts, mastered, at_mastery, post_c, post_n = [], [], [], [], [], []
    for i, group in enumerate(groups):
        for _ in range(25):
            truth = rng.uniform(0.2, 0.9)
            guess = truth + rng.normal(0, 0.05 + (noisier_b if group == "B" else 0.0))
            guess += overpredict_b if group == "B" else 0.0
            rows_student.append(i)
            predicted.append(float(np.clip(guess, 0.01, 0.99)))
            observed.append(float(rng.random() < truth))
        for _ in range(4):
            need = rng.poisson(5 * (slower_b if group == "B" else 1.0)) + 2
            d_student.append(i)
            attempts.append(float(need + rng.integers(0, 3)))
            mastered.append(1.0)
            at_mastery.append(float(need))
            post_n.append(3.0)
            post_c.append(float(rng.binomial(3, 0.85)))
    responses = ResponseData(np.array(rows_student), np.array(predicted), np.array(observed))
    decisions = DecisionData(
        np.array(d_student),
        np.array(attempts),
        np.array(mastered),
        np.array(at_mastery),
        np.array(post_c),
        np.array(post_n),
    )
    picks = PickData(np.array(d_student), (rng.random(len(d_student)) < 0.1).astype(float))
    return groups, responses, decisions, picks


def test_weighted_auc_equals_scikit_learn_and_counts_weights_as_copies() -> None:
    rng = np.random.default_rng(3)
    scores = np.round(rng.random(300), 2)  # ties on purpose
    labels = (rng.random(300) < scores).astype(float)
    assert weighted_auc(scores, labels, np.ones((1, 300)))[0] == pytest.approx(roc_auc_score(labels, scores))
    counts = rng.integers(0, 3, 300).astype(float)
    repeated = np.repeat(np.arange(300), counts.astype(int))
    assert weighted_auc(scores, labels, counts[None, :])[0] == pytest.approx(
        roc_auc_score(labels[repeated], scores[repeated])
    )


def test_abroca_of_identical_groups_is_zero_and_of_different_ones_is_not() -> None:
    rng = np.random.default_rng(4)
    scores = rng.random(500)
    labels = (rng.random(500) < scores).astype(float)
    assert abroca(scores, labels, scores, labels) == pytest.approx(0.0)
    noisy = np.clip(scores + rng.normal(0, 0.4, 500), 0, 1)
    assert abroca(scores, labels, noisy, labels) > 0.05


def test_benjamini_hochberg_by_hand() -> None:
    # m = 4, alpha 0.05: the k-th smallest p is compared with 0.0125, 0.025, 0.0375, 0.05.
    assert benjamini_hochberg([0.01, 0.04, 0.02, 0.20], 0.05) == [True, False, True, False]
    # Step-up: 0.045 passes the 4th threshold, so all four are rejected though 0.03 > 0.025.
    assert benjamini_hochberg([0.01, 0.04, 0.03, 0.045], 0.05) == [True, True, True, True]
    assert benjamini_hochberg([0.2, float("nan")], 0.05) == [False, False]


def test_a_slower_group_is_flagged_on_attempts_to_mastery() -> None:
    groups, responses, decisions, picks = synthetic(0, slower_b=2.0)
    report = audit("group", groups, responses, decisions, picks, FAST)
    flagged = {(c.group, c.metric) for c in report.flagged}
    assert ("B", "attempts_to_mastery") in flagged
    assert ("B", "auc") not in flagged and ("B", "abroca") not in flagged
    b = next(g for g in report.groups if g.group == "B")
    estimate = b.metrics["attempts_to_mastery"]
    assert estimate.low < estimate.value < estimate.high and estimate.value > 9
    assert any(line.startswith("B: Review suggested:") for line in plain_summary(report))


def test_a_miscalibrated_and_noisier_group_is_flagged_on_predictions() -> None:
    groups, responses, decisions, picks = synthetic(1, overpredict_b=0.15, noisier_b=0.25)
    report = audit("group", groups, responses, decisions, picks, FAST)
    flagged = {(c.group, c.metric) for c in report.flagged}
    assert ("B", "calibration_gap") in flagged and ("B", "auc") in flagged and ("B", "abroca") in flagged


@pytest.mark.slow
def test_null_data_is_quiet() -> None:
    """No difference planted: over 20 seeds, hardly any group is flagged (false flags need significance AND
    a large effect, so the rate stays under the nominal 5%)."""
    flagged_reports = 0
    tests = 0
    for seed in range(20):
        groups, responses, decisions, picks = synthetic(100 + seed)
        report = audit(
            "group",
            groups,
            responses,
            decisions,
            picks,
            FairnessConfig(bootstrap=200, permutations=100, seed=seed),
        )
        tests += len(report.comparisons)
        flagged_reports += bool(report.flagged)
    assert tests >= 20 * 9
    assert flagged_reports <= 1  # at most 5% of reports


def test_small_groups_are_suppressed_and_cannot_be_backed_into() -> None:
    groups, responses, decisions, picks = synthetic(2, n_small=7)
    report = audit("group", groups, responses, decisions, picks, FAST)
    small = next(g for g in report.groups if g.group == "C")
    assert small.status == "suppressed" and small.students is None and small.metrics == {}
    assert all(c.group != "C" for c in report.comparisons)
    reported = [g for g in report.groups if g.status != "suppressed"]
    assert sum(g.students for g in reported) == 240  # totals leave the small group out
    assert "C: not enough data" in " ".join(plain_summary(report))
    groups, responses, decisions, picks = synthetic(3, n_b=20, slower_b=3.0)
    few = audit("group", groups, responses, decisions, picks, FAST)
    assert next(g for g in few.groups if g.group == "B").status == "insufficient data"
    assert few.flagged == []  # 10–29 students: shown, never flagged


def test_a_ratio_of_tiny_shares_is_not_a_large_difference() -> None:
    """0% vs 2% wheel-spinning is a ratio of 0 but not a concern: shares must also differ by 5 points."""
    groups, responses, decisions, picks = synthetic(6)
    n = len(decisions.attempts)
    reference_rows = decisions.student < 120  # group A
    attempts = np.where(reference_rows & (np.arange(n) % 50 == 0), 12.0, decisions.attempts)
    mastered = np.where(attempts == 12.0, 0.0, decisions.mastered)
    tweaked = DecisionData(
        decisions.student,
        attempts,
        mastered,
        np.where(mastered > 0, decisions.attempts_at_mastery, np.nan),
        decisions.post_mastery_correct,
        decisions.post_mastery_answers,
    )
    report = audit("group", groups, responses, tweaked, picks, FAST)
    spinning = next(c for c in report.comparisons if c.metric == "wheel_spinning")
    assert spinning.ratio < 0.8 and abs(spinning.difference) < 0.05  # outside the band, but tiny
    assert not spinning.large and not spinning.flagged


def test_premature_mastery_is_a_lower_accuracy_after_mastery() -> None:
    groups, responses, decisions, picks = synthetic(7)
    worse = np.where(
        decisions.student >= 120,
        np.minimum(decisions.post_mastery_correct, 1.0),
        decisions.post_mastery_correct,
    )  # group B: at most 1 of 3 right after mastery
    for post, expect in ((worse, True), (np.where(decisions.student >= 120, 3.0, 2.0), False)):
        tweaked = DecisionData(
            decisions.student,
            decisions.attempts,
            decisions.mastered,
            decisions.attempts_at_mastery,
            post,
            decisions.post_mastery_answers,
        )
        report = audit("group", groups, responses, tweaked, picks, FAST)
        found = next(c for c in report.comparisons if c.metric == "post_mastery_accuracy")
        assert found.flagged is expect, found  # better accuracy after mastery is no concern


def test_empty_answers_give_no_number_and_no_crash() -> None:
    """No answers (a group that did not practise in the window): NaN, not an IndexError from reduceat."""
    empty = np.array([], dtype=np.float64)
    assert np.isnan(weighted_auc(empty, empty, np.ones((3, 0)))).all()
    assert weighted_auc(empty, empty, np.ones((3, 0))).shape == (3,)
    rng = np.random.default_rng(8)
    scores = rng.random(50)
    labels = (rng.random(50) < scores).astype(float)
    assert np.isnan(abroca(empty, empty, scores, labels))
    assert np.isnan(abroca(empty, empty, empty, empty))


def test_a_group_without_answers_is_reported_as_such_and_never_compared() -> None:
    """Group C has 15 students (enough to show) but no answers: no numbers, no tests, and it never
    becomes the reference, whatever its size."""
    groups, responses, decisions, picks = synthetic(9, n_small=150)
    answered = responses.student < 240  # C's students (240..389) answered nothing
    picked = picks.student < 240
    d = decisions
    report = audit(
        "group",
        groups,
        ResponseData(
            responses.student[answered], responses.predicted[answered], responses.observed[answered]
        ),
        DecisionData(
            d.student[picked],
            d.attempts[picked],
            d.mastered[picked],
            d.attempts_at_mastery[picked],
            d.post_mastery_correct[picked],
            d.post_mastery_answers[picked],
        ),
        PickData(picks.student[picked], picks.remedial[picked]),
        FAST,
    )
    silent = next(g for g in report.groups if g.group == "C")
    assert silent.status == "no answers" and silent.students == 150 and silent.responses == 0
    assert silent.metrics == {}
    assert report.reference in ("A", "B")  # C is the largest group, but has nothing to compare
    assert all(c.group != "C" for c in report.comparisons) and report.comparisons
    assert "C: no answers in the window (150 students)" in plain_summary(report)


def test_no_answers_at_all_is_a_report_of_silent_groups() -> None:
    groups = ["A"] * 12 + ["B"] * 12
    nothing = np.array([], dtype=np.int64), np.array([], dtype=np.float64)
    report = audit(
        "group",
        groups,
        ResponseData(nothing[0], nothing[1], nothing[1]),
        DecisionData(nothing[0], *[nothing[1]] * 5),
        PickData(nothing[0], nothing[1]),
        FAST,
    )
    assert [g.status for g in report.groups] == ["no answers", "no answers"]
    assert report.comparisons == [] and report.auc_gap is None and report.reference == ""
