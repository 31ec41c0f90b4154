"""Experiments between tutoring policies (issue 22): assignment, outcomes and the report, on small
planted data. The harness rates (A/A, power, naive vs cluster) are in test_experiments_harness.py."""

from __future__ import annotations

import csv
import io
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import stats
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower

from app.domain.experiments import (
    Arm,
    ExperimentPlan,
    PracticeTotals,
    SkillPractice,
    StudentRecord,
    assign,
    assign_roster,
    student_outcomes,
    total_practice,
)
from app.domain.experiments.analysis import ROW_FIELDS, analyse, estimate_difference, planned_power
from app.domain.experiments.harness import ExperimentWorld, SimulatedExperiment, simulate_experiment
from app.domain.fairness import FairnessConfig, benjamini_hochberg

ARMS = (Arm("default", "adaptive", is_control=True), Arm("new", "alosi_weighted"))
END = datetime(2025, 3, 1, tzinfo=UTC)


# --- assignment ------------------------------------------------------------------------------------


def test_assignment_is_a_pure_function_of_experiment_and_unit() -> None:
    arms = ["a", "b"]
    first = [assign("golden", f"u{i}", arms) for i in range(8)]
    # Pinned: a change of hash or of the arm walk would move students who are already in an arm. The
    # hash is SHA-256 of the ids (not Python's hash()), so every process and machine gets these values.
    assert first == ["a", "a", "b", "a", "a", "a", "b", "b"]
    assert [assign("golden", f"u{i}", arms) for i in range(8)] == first
    # The block does not move a hash-assigned student (a student who changes class keeps their arm).
    assert [assign("golden", f"u{i}", arms, block="7B") for i in range(8)] == first


def test_hash_assignment_respects_the_weights() -> None:
    arms, weights = ["a", "b", "c"], [1, 2, 5]
    n = 16000
    assigned = [assign("weights", f"student-{i}", arms, weights) for i in range(n)]
    counts = [assigned.count(a) for a in arms]
    expected = [n * w / sum(weights) for w in weights]
    assert stats.chisquare(counts, expected).pvalue > 0.01
    # Two experiments assign independently: a student's arm in one says nothing about the other.
    other = [assign("another", f"student-{i}", ["a", "b"]) for i in range(n)]
    first = [assign("weights", f"student-{i}", ["a", "b"]) for i in range(n)]
    agree = sum(x == y for x, y in zip(first, other, strict=True)) / n
    assert abs(agree - 0.5) < 3 * (0.25 / n) ** 0.5


def test_blocked_assignment_balances_every_block_at_every_moment() -> None:
    arms, weights = ["a", "b"], [1, 2]
    for block in ("7A", "7B", "8C"):
        seen = {"a": 0, "b": 0}
        for position in range(31):
            seen[assign("blocked", f"{block}-{position}", arms, weights, block=block, position=position)] += 1
            # Permuted blocks of 3: never more than one block away from the planned 1:2.
            assert abs(seen["a"] - (position + 1) / 3) <= 1
            if (position + 1) % 3 == 0:
                assert seen["b"] == 2 * seen["a"]
    # The deal differs between blocks and experiments (not one fixed pattern).
    deals = {
        (key, block): tuple(assign(key, "", arms, weights, block=block, position=p) for p in range(12))
        for key in ("x", "y")
        for block in ("7A", "7B")
    }
    assert len(set(deals.values())) > 1
    with pytest.raises(ValueError, match="whole-number"):
        assign("blocked", "u", arms, [0.5, 1.5], block="7A", position=0)


def test_roster_assignment_is_balanced_and_ignores_the_order_of_the_roster() -> None:
    classes = [f"class-{i}" for i in range(21)]
    roster = assign_roster("schools", classes, ["a", "b"])
    assert sorted(roster) == sorted(classes)
    counts = sorted(list(roster.values()).count(a) for a in ("a", "b"))
    assert counts == [10, 11]
    assert assign_roster("schools", classes[::-1], ["a", "b"]) == roster
    assert assign_roster("other-experiment", classes, ["a", "b"]) != roster


def test_a_plan_refuses_what_cannot_be_analysed() -> None:
    with pytest.raises(ValueError, match="two arms"):
        ExperimentPlan("k", ARMS[:1])
    with pytest.raises(ValueError, match="unknown outcome"):
        ExperimentPlan("k", ARMS, primary_outcome="happiness")
    with pytest.raises(ValueError, match="blocking"):
        ExperimentPlan("k", ARMS, unit="class", block_by="class")
    with pytest.raises(ValueError, match="unit must be"):
        ExperimentPlan("k", ARMS, unit="school")
    plan = ExperimentPlan("k", (Arm("x", "fixed_order"), Arm("y", "adaptive", is_control=True)))
    assert plan.control.name == "y"
    assert plan.assign("u7") == assign("k", "u7", ["x", "y"], [1.0, 1.0])


# --- outcomes --------------------------------------------------------------------------------------


def test_outcomes_follow_their_definitions() -> None:
    practice = total_practice(
        [
            SkillPractice(attempts=6, mastered_after=4, seconds_to_mastery=240, review_right=True),
            SkillPractice(attempts=9, mastered_after=8, seconds_to_mastery=600, review_right=False),
            SkillPractice(attempts=12),  # wheel-spinning: 10+ answers, never mastered
            SkillPractice(attempts=3),  # still learning
            SkillPractice(attempts=0),  # never practised: not counted
        ]
    )
    assert practice == PracticeTotals(4, 2, 12.0, 840.0, 2, 2, 1, 1)
    record = StudentRecord(
        "s1",
        "s1",
        "default",
        pre_right=2,
        pre_answered=5,
        post_right=3,
        post_answered=4,
        practice=practice,
        last_active=END - timedelta(days=3),
    )
    out = student_outcomes(record, END, 14.0)
    assert out == {
        "post_test": 0.75,
        "attempts_to_mastery": 6.0,
        "time_to_mastery": 7.0,  # minutes
        "retention": 0.5,
        "wheel_spinning": 0.25,
        "dropout": 0.0,
    }
    assert record.pre_test == 0.4
    gone = replace(record, last_active=END - timedelta(days=20), post_answered=0, post_right=0)
    assert student_outcomes(gone, END, 14.0)["dropout"] == 1.0
    assert student_outcomes(gone, END, 14.0)["post_test"] is None
    assert student_outcomes(StudentRecord("s2", "s2", "default"), END, 14.0)["attempts_to_mastery"] is None


# --- the estimator ---------------------------------------------------------------------------------


def test_block_effects_by_demeaning_equal_the_regression_on_block_dummies() -> None:
    rng = np.random.default_rng(3)
    blocks = np.repeat(np.arange(12), 30)
    treated = rng.integers(0, 2, len(blocks)).astype(float)
    pre = rng.normal(size=len(blocks))
    y = 0.3 * treated + pre + rng.normal(size=len(blocks)) + rng.normal(size=12)[blocks]
    labels = [str(b) for b in blocks]
    fit = estimate_difference(y, treated, pre, labels, labels)
    assert fit is not None and fit.clusters == 12 and fit.df == 11
    dummies = np.column_stack([treated, pre] + [(blocks == j).astype(float) for j in range(12)])
    full = sm.OLS(y, dummies).fit(cov_type="cluster", cov_kwds={"groups": blocks}, use_t=True)
    assert fit.difference == pytest.approx(full.params[0], rel=1e-9)
    assert fit.se == pytest.approx(full.bse[0], rel=1e-9)
    hc1 = estimate_difference(y, treated, pre, None, labels)
    assert hc1 is not None and hc1.se == pytest.approx(
        sm.OLS(y, dummies).fit(cov_type="HC1").bse[0], rel=1e-9
    )


def test_one_class_per_arm_cannot_be_estimated() -> None:
    y = np.linspace(0, 1, 40)
    treated = np.repeat([0.0, 1.0], 20)
    assert estimate_difference(y, treated, None, ["a"] * 20 + ["b"] * 20) is None


def test_power_is_statsmodels_power_at_the_planned_effect() -> None:
    # No clustering, no pre-test: the textbook two-sample case.
    assert planned_power(0.1, 0.2, 64) == pytest.approx(
        TTestIndPower().power(effect_size=0.5, nobs1=64, alpha=0.05, ratio=1.0), rel=1e-6
    )
    assert planned_power(0.1, 0.2, 64) == pytest.approx(0.80, abs=0.01)  # the classic 64 per arm
    # Classes of 25 with ICC 0.2 cost power; a pre-test explaining half the variance gives some back.
    assert planned_power(0.05, 0.17, 500, class_size=25, icc=0.2) < planned_power(0.05, 0.17, 500)
    assert planned_power(0.05, 0.17, 500, 25, 0.2, pre_test_r2=0.5) > planned_power(0.05, 0.17, 500, 25, 0.2)


# --- the report ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def experiment() -> SimulatedExperiment:
    world = ExperimentWorld(
        effect=0.6,
        secondary=("attempts_to_mastery", "time_to_mastery", "retention", "wheel_spinning", "dropout"),
    )
    return simulate_experiment(world, 7)


def test_the_report_states_the_effect_with_its_interval(experiment: SimulatedExperiment) -> None:
    report = experiment.analyse()
    assert report.horizon_reached
    (effect,) = report.primary
    assert effect.clusters == 40 and "cluster-robust" in effect.method and "pre-test" in effect.method
    assert effect.low is not None and effect.high is not None and effect.difference is not None
    assert effect.low < experiment.true_effect < effect.high
    assert effect.low < effect.difference < effect.high
    assert effect.power is not None and 0.5 < effect.power < 1
    assert report.sample_ratio.counts == {"control": 20, "treatment": 20}
    assert not report.sample_ratio.mismatch and not report.attrition.differential
    lines = report.summary()
    assert any("delayed post-test" in line and "95% interval" in line for line in lines)
    assert len(report.secondary) == 5


def test_secondary_outcomes_are_corrected_with_benjamini_hochberg(experiment: SimulatedExperiment) -> None:
    report = experiment.analyse()
    raw = [e.p_value for e in report.secondary]
    assert all(p is not None for p in raw)
    expected = multipletests(raw, alpha=0.05, method="fdr_bh")[1]
    assert [e.p_adjusted for e in report.secondary] == pytest.approx(list(expected))
    assert [e.significant for e in report.secondary] == [q <= 0.05 for q in expected]


def test_benjamini_hochberg_on_a_hand_checked_example() -> None:
    p = [0.01, 0.04, 0.03, 0.005, 0.30, 0.045]
    # By hand, m = 6, alpha = 0.05: sorted 0.005 <= 1/6 alpha, 0.01 <= 2/6 alpha, 0.03 > 3/6 alpha, ...
    # The largest rank passing is 2: reject 0.005 and 0.01 only. Adjusted p = min over ranks >= i of
    # p_(j) m / j: 0.03, 0.03, then 0.054 (0.045 * 6 / 5) for 0.03, 0.04, 0.045, then 0.30.
    reject, adjusted, _, _ = multipletests(p, alpha=0.05, method="fdr_bh")
    assert reject.tolist() == [True, False, False, True, False, False]
    assert adjusted.tolist() == pytest.approx([0.03, 0.054, 0.054, 0.03, 0.30, 0.054])
    assert benjamini_hochberg(p, 0.05) == reject.tolist()  # the bias checks' own implementation agrees


def test_no_verdict_before_the_planned_horizon(experiment: SimulatedExperiment) -> None:
    assert experiment.plan.ends_at is not None
    early = analyse(experiment.plan, experiment.records, as_of=experiment.plan.ends_at - timedelta(days=1))
    assert not early.horizon_reached
    for effect in (*early.primary, *early.secondary):
        assert effect.verdict == "no verdict before the horizon"
        assert effect.difference is None and effect.p_value is None and effect.significant is None
    assert early.groups == ()
    assert any("no result before the planned end" in line for line in early.summary())
    # The checks that do not look at the effect are there from the start.
    assert early.sample_ratio.p_value is not None and early.attrition.by_arm["control"] is not None
    unplanned = replace(experiment.plan, ends_at=None, planned_units=None)
    assert not analyse(unplanned, experiment.records).horizon_reached


def test_sample_ratio_mismatch_fires_on_lost_treatment_students() -> None:
    world = ExperimentWorld(unit="student", block_by_class=True, classes=40, class_size=50)
    exp = simulate_experiment(world, 3)
    assert not exp.analyse().sample_ratio.mismatch
    # Planted: a logging bug loses a fifth of the treatment arm's students.
    treatment = [r for r in exp.records if r.arm == "treatment"]
    lost = {r.student_id for r in treatment[::5]}
    kept = [r for r in exp.records if r.student_id not in lost]
    check = analyse(exp.plan, kept, as_of=exp.plan.ends_at).sample_ratio
    assert check.mismatch and check.p_value is not None and check.p_value < 0.001
    assert "Sample ratio mismatch" in check.message


def test_differential_attrition_is_reported() -> None:
    world = ExperimentWorld(dropout=0.1, dropout_ratio=3.0, group_shares=(("A", 1.0),))
    report = simulate_experiment(world, 11).analyse()
    assert report.attrition.differential
    by_arm = report.attrition.by_arm
    assert by_arm["treatment"] is not None and by_arm["control"] is not None
    assert by_arm["treatment"] > by_arm["control"] + 0.1
    assert "Attrition differs" in report.attrition.message


def test_not_enough_data_when_the_sample_cannot_detect_the_planned_effect() -> None:
    small = simulate_experiment(ExperimentWorld(classes=6, class_size=12, group_shares=(("A", 1.0),)), 5)
    (effect,) = small.analyse().primary
    assert effect.power is not None and effect.power < 0.3
    assert effect.verdict == "not enough data"
    assert any("not enough data" in line for line in small.analyse().summary())
    # The same data, planned for an effect it can detect (40 points), gets a verdict.
    generous = replace(small.plan, minimum_effect=0.4)
    (effect,) = analyse(generous, small.records, as_of=small.plan.ends_at).primary
    assert effect.power is not None and effect.power >= 0.8 and effect.verdict != "not enough data"


def test_small_groups_are_suppressed_with_the_bias_checks_rules(experiment: SimulatedExperiment) -> None:
    # Regroup: 14 students (7 or so per arm: suppressed), 50 (about 25 per arm: no verdict), the rest.
    records = [
        replace(r, groups={"language": "tiny" if i < 14 else "small" if i < 64 else "large"})
        for i, r in enumerate(sorted(experiment.records, key=lambda r: r.student_id))
    ]
    config = FairnessConfig()
    report = analyse(experiment.plan, records, as_of=experiment.plan.ends_at, groups=config)
    by_group = {g.group: g for g in report.groups}
    assert by_group["tiny"].status == "suppressed"
    assert by_group["tiny"].students is None and by_group["tiny"].effect is None
    assert by_group["small"].status == "insufficient data"
    small = by_group["small"].effect
    assert small is not None and small.significant is None and small.verdict == "shown without a verdict"
    assert by_group["large"].status == "reported"
    large = by_group["large"].effect
    assert large is not None and large.significant is not None and large.low is not None
    tiny_row = next(r for r in report.rows() if r["group"] == "tiny")
    assert tiny_row["difference"] == "" and tiny_row["students"] == "" and tiny_row["status"] == "suppressed"
    assert any("tiny" in line and "nothing is shown" in line for line in report.summary())
    # A stricter threshold suppresses the middle group too.
    stricter = analyse(
        experiment.plan, records, as_of=experiment.plan.ends_at, groups=replace(config, suppress_below=30)
    )
    assert {g.group: g.status for g in stricter.groups}["small"] == "suppressed"


def test_the_report_has_a_csv_form(experiment: SimulatedExperiment) -> None:
    report = experiment.analyse()
    rows = report.rows()
    assert [r["kind"] for r in rows[:6]] == ["primary"] + ["secondary"] * 5
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=ROW_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    parsed = list(csv.DictReader(io.StringIO(buffer.getvalue())))
    assert len(parsed) == len(rows)
    assert float(parsed[0]["difference"]) == pytest.approx(report.primary[0].difference)
    assert all(set(r) == set(ROW_FIELDS) for r in rows)


def test_a_unit_in_two_arms_is_refused() -> None:
    plan = ExperimentPlan("k", ARMS, unit="class", ends_at=END)
    records = [StudentRecord("s1", "7B", "default"), StudentRecord("s2", "7B", "new")]
    with pytest.raises(ValueError, match="two arms"):
        analyse(plan, records, as_of=END)
    with pytest.raises(ValueError, match="does not have"):
        analyse(plan, [StudentRecord("s1", "7B", "other")], as_of=END)


def test_opted_out_students_are_counted_in_the_summary(experiment: SimulatedExperiment) -> None:
    report = analyse(
        experiment.plan,
        experiment.records,
        as_of=experiment.plan.ends_at,
        excluded={"opted out of personalization": 3},
    )
    assert report.excluded == {"opted out of personalization": 3}
    assert any("3 (opted out of personalization)" in line for line in report.summary())


def test_several_treatment_arms_are_each_compared_with_the_control_under_holm() -> None:
    arms = (Arm("default", "adaptive", is_control=True), Arm("b", "fixed_order"), Arm("c", "random_order"))
    plan = ExperimentPlan("three", arms, ends_at=END)
    rng = np.random.default_rng(4)
    records = []
    for i in range(600):
        arm = plan.assign(f"s{i}")
        right = int(rng.binomial(10, 0.5 + (0.1 if arm == "c" else 0.0)))
        records.append(
            StudentRecord(
                f"s{i}",
                f"s{i}",
                arm,
                cluster=f"c{i % 20}",
                pre_right=int(rng.binomial(10, 0.3)),
                pre_answered=10,
                post_right=right,
                post_answered=10,
            )
        )
    report = analyse(plan, records, as_of=END)
    assert [e.arm for e in report.primary] == ["b", "c"]
    raw = [e.p_value for e in report.primary]
    assert [e.p_adjusted for e in report.primary] == pytest.approx(list(multipletests(raw, method="holm")[1]))
    b, c = report.primary
    assert c.significant and c.low is not None and c.low > 0  # the planted +10 points
    assert (
        report.sample_ratio.counts["default"]
        + report.sample_ratio.counts["b"]
        + report.sample_ratio.counts["c"]
        == 600
    )


def test_effects_by_group_find_an_effect_planted_in_one_group_only() -> None:
    world = ExperimentWorld(
        unit="student",
        block_by_class=True,
        effect=1.2,
        effect_groups=("B",),
        group_shares=(("A", 0.6), ("B", 0.4)),
    )
    exp = simulate_experiment(world, 2)
    by_group = {g.group: g.effect for g in exp.analyse().groups}
    a, b = by_group["A"], by_group["B"]
    assert a is not None and b is not None and a.low is not None and b.low is not None
    assert a.high is not None and b.difference is not None
    assert b.significant and b.low > 0 and b.difference > 0.05  # the planted group
    assert not a.significant and a.low < 0 < a.high  # the group without an effect
