"""An experiment in the simulated world, with a planted truth: the test bed of the analysis.

The students follow the hidden truth of issue 13 (``worlds.ForgettingWorld``: per-student speed and
prior knowledge, per-skill learn multipliers, guess and slip, exponential forgetting with a memory
strength that grows with spaced retrieval), simulated at the level the outcomes need and vectorised
with numpy, so hundreds of seeded experiments run in seconds. Added for experiments:

* classes: each class multiplies its students' learning speed by exp(N(0, class_spread)) (teacher,
  timetable) -- the reason class-level assignment needs cluster-aware analysis;
* two arms: the treatment multiplies learning speed by exp(effect) (``effect = 0``: an A/A test). The
  true effect on the post-test is computed exactly from both potential outcomes of every student
  (same random numbers in both arms), so a test can check the estimate against it;
* probes, the same for all arms and not chosen by any policy: ``probes`` skills drawn at random from
  the pool for the pre-test at the start and again for the delayed post-test ``gap_days`` after the
  last session;
* practice: ``attempts_per_skill`` answers per skill of the pool (a policy-free budget: the planted
  effect stands for "this policy teaches faster"); mastery is declared ``mastery_lag`` answers after
  the hidden state becomes known; a mastered skill is reviewed once, two days later;
* dropout: a student drops out with probability ``dropout`` (times ``dropout_ratio`` in the treatment
  arm), after a uniform share of the period, and takes no post-test.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
from scipy import stats

from app.domain.experiments.analysis import ExperimentReport, analyse
from app.domain.experiments.design import Arm, ExperimentPlan, assign, assign_roster
from app.domain.experiments.outcomes import PracticeTotals, StudentRecord
from app.domain.worlds import ForgettingWorld

START = datetime(2025, 1, 6, 8, 0, tzinfo=UTC)  # a Monday, as in simulation.py
ARMS = (Arm("control", "adaptive", is_control=True), Arm("treatment", "adaptive"))


@dataclass(frozen=True)
class ExperimentWorld:
    """One simulated experiment's world and design (probabilities in [0, 1], days, answers)."""

    world: ForgettingWorld = field(default_factory=ForgettingWorld)
    classes: int = 40
    class_size: int = 25
    class_spread: float = 0.5  # sd of the class's log speed multiplier
    skills: int = 20  # the pool practised (and probed) during the experiment
    attempts_per_skill: int = 12
    mastery_lag: int = 2
    probes: int = 10  # pre-test and post-test probes per student
    weeks: int = 4
    gap_days: float = 14.0  # last session to delayed post-test
    effect: float = 0.0  # planted: treatment multiplies learning speed by exp(effect)
    effect_groups: tuple[str, ...] = ()  # only students of these groups get the effect (empty: everyone)
    dropout: float = 0.1
    dropout_ratio: float = 1.0  # treatment's dropout probability relative to control's
    unit: str = "class"  # assignment unit: "class" | "student"
    block_by_class: bool = False  # student-level assignment balanced within each class
    group_shares: tuple[tuple[str, float], ...] = (("A", 0.7), ("B", 0.26), ("C", 0.04))
    minimum_effect: float = 0.05
    secondary: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.classes < 2 or self.class_size < 1 or self.skills < 1 or self.probes < 1:
            raise ValueError("classes >= 2, class_size, skills and probes >= 1 are needed")
        if self.unit not in ("class", "student"):
            raise ValueError(f"unit must be class or student, got {self.unit!r}")
        if not 0 <= self.dropout * max(1.0, self.dropout_ratio) <= 1:
            raise ValueError("dropout probabilities must be in [0, 1]")

    @property
    def horizon(self) -> datetime:
        return START + timedelta(weeks=self.weeks, days=self.gap_days + 1)

    def plan(self, key: str) -> ExperimentPlan:
        return ExperimentPlan(
            key=key,
            arms=ARMS,
            unit=self.unit,
            block_by="class" if self.unit == "student" and self.block_by_class else None,
            secondary_outcomes=self.secondary,
            starts_at=START,
            ends_at=self.horizon,
            minimum_effect=self.minimum_effect,
        )


@dataclass(frozen=True)
class SimulatedExperiment:
    plan: ExperimentPlan
    records: tuple[StudentRecord, ...]
    true_effect: float  # mean over students with a post-test of E[post | treatment] - E[post | control]

    def analyse(self) -> ExperimentReport:
        return analyse(self.plan, self.records, as_of=self.plan.ends_at)


def _assignments(world: ExperimentWorld, key: str, class_of: np.ndarray) -> np.ndarray:
    names = [a.name for a in ARMS]
    n = len(class_of)
    if world.unit == "class":
        by_class = assign_roster(key, [f"c{c}" for c in range(world.classes)], names)
        treated_class = np.array([by_class[f"c{c}"] == "treatment" for c in range(world.classes)])
        by_student: np.ndarray = treated_class[class_of]
        return by_student
    if world.block_by_class:
        position = np.zeros(world.classes, dtype=int)
        treated = np.zeros(n, dtype=bool)
        for i, c in enumerate(class_of):  # students arrive in index order within their class
            treated[i] = assign(key, f"s{i}", names, block=f"c{c}", position=int(position[c])) == "treatment"
            position[c] += 1
        return treated
    return np.array([assign(key, f"s{i}", names) == "treatment" for i in range(n)])


def _post_probability(
    world: ExperimentWorld, known_start: np.ndarray, learned_at: np.ndarray, budget: np.ndarray
) -> np.ndarray:
    """P(right) per (student, skill) at the delayed post-test, and of the rest of the state."""
    w = world.world
    learned = ~known_start & (learned_at <= budget[:, None])
    extra = np.clip(budget[:, None] - learned_at, 0, 3)
    strength = np.where(
        known_start, w.prior_strength_days, w.initial_strength_days * (1 + 0.5 * w.spacing_gain) ** extra
    )
    recall = np.exp(-world.gap_days / strength) * (known_start | learned)
    return recall * (1 - w.slip) + (1 - recall) * w.guess


def simulate_experiment(world: ExperimentWorld, seed: int) -> SimulatedExperiment:
    """One seeded experiment: its plan, the students' records, and the planted true effect."""
    w = world.world
    rng = np.random.default_rng(seed)
    n, k = world.classes * world.class_size, world.skills
    class_of = np.repeat(np.arange(world.classes), world.class_size)
    key = f"simulated-{seed}"
    treated = _assignments(world, key, class_of)
    # The hidden students (drawn whatever the arm: the same students in either arm).
    log_speed = rng.normal(0, w.speed_spread, n) + rng.normal(0, world.class_spread, world.classes)[class_of]
    prior_share = rng.beta(w.prior * w.prior_concentration, (1 - w.prior) * w.prior_concentration, n)
    skill_multiplier = np.exp(rng.normal(0, w.skill_spread, k))
    known_start = rng.random((n, k)) < prior_share[:, None]
    u_learn = rng.random((n, k))
    u_drop, u_when = rng.random(n), rng.random(n)
    pre_skills = np.argsort(rng.random((n, k)), axis=1)[:, : world.probes]
    post_skills = np.argsort(rng.random((n, k)), axis=1)[:, : world.probes]
    u_pre = rng.random((n, world.probes))
    u_post = rng.random((n, world.probes))
    u_review = rng.random((n, k))
    groups = rng.choice([g for g, _ in world.group_shares], size=n, p=[s for _, s in world.group_shares])

    drop_p = world.dropout * np.where(treated, world.dropout_ratio, 1.0)
    dropped = u_drop < drop_p
    budget = np.where(dropped, np.floor(u_when * world.attempts_per_skill), world.attempts_per_skill)

    responds = np.isin(groups, world.effect_groups) if world.effect_groups else np.ones(n)

    def learned_at(arm_effect: float) -> np.ndarray:
        # Attempts until the skill becomes known (inverse CDF of a geometric: same uniforms in both arms).
        rate = np.exp(log_speed + arm_effect * responds)[:, None] * skill_multiplier[None, :]
        p = 1 - (1 - w.learn) ** rate
        attempts: np.ndarray = np.ceil(np.log1p(-u_learn) / np.log1p(-np.clip(p, 1e-12, 1 - 1e-12)))
        return attempts

    at_control = learned_at(0.0)
    at_treatment = learned_at(world.effect) if world.effect else at_control
    rows = np.arange(n)[:, None]
    post_control = _post_probability(world, known_start, at_control, budget)[rows, post_skills].mean(axis=1)
    post_treatment = _post_probability(world, known_start, at_treatment, budget)[rows, post_skills]
    post_treatment = post_treatment.mean(axis=1)
    true_effect = float((post_treatment - post_control)[~dropped].mean())

    at = np.where(treated[:, None], at_treatment, at_control)
    p_post = _post_probability(world, known_start, at, budget)[rows, post_skills]
    post_right = (u_post < p_post).sum(axis=1)
    p_pre = np.where(known_start[rows, pre_skills], 1 - w.slip, w.guess)
    pre_right = (u_pre < p_pre).sum(axis=1)

    practised = ~known_start & (budget[:, None] > 0)
    mastered_after = at + world.mastery_lag
    mastered = practised & (mastered_after <= budget[:, None])
    spinning = practised & ~mastered & (budget[:, None] >= 10)
    review_strength = w.initial_strength_days * (1 + 0.5 * w.spacing_gain) ** np.clip(
        budget[:, None] - at, 0, 3
    )
    p_review = np.exp(-2.0 / review_strength) * (1 - w.slip) + (1 - np.exp(-2.0 / review_strength)) * w.guess
    review_right = mastered & (u_review < p_review)

    days = 7 * world.weeks
    # The post-test is activity too: a student who took it did not drop out.
    post_day = days - 3 + world.gap_days
    active_days = np.where(dropped, u_when * days, post_day).tolist()
    last_active = [START + timedelta(days=d) for d in active_days]
    attempts_sum = np.where(mastered, mastered_after, 0).sum(axis=1)
    # Plain Python values first: indexing numpy arrays element by element is what made this loop slow.
    columns = zip(
        practised.sum(axis=1).tolist(),
        mastered.sum(axis=1).tolist(),
        attempts_sum.tolist(),
        review_right.sum(axis=1).tolist(),
        spinning.sum(axis=1).tolist(),
        class_of.tolist(),
        treated.tolist(),
        groups.tolist(),
        pre_right.tolist(),
        np.where(dropped, 0, post_right).tolist(),
        dropped.tolist(),
        last_active,
        strict=True,
    )
    probes = world.probes
    records = []
    for i, (
        n_practised,
        n_mastered,
        attempts,
        right,
        n_spin,
        c,
        arm,
        group,
        pre,
        post,
        out,
        last,
    ) in enumerate(columns):
        totals = PracticeTotals(
            skills_practised=n_practised,
            skills_mastered=n_mastered,
            attempts_to_mastery=float(attempts),
            seconds_to_mastery=60.0 * attempts,  # one answer a minute
            timed_masteries=n_mastered,
            reviews=n_mastered,
            reviews_right=right,
            wheel_spinning_skills=n_spin,
        )
        cls = f"c{c}"
        records.append(
            StudentRecord(
                student_id=f"s{i}",
                unit_id=cls if world.unit == "class" else f"s{i}",
                arm="treatment" if arm else "control",
                cluster=cls,
                block=cls,
                groups={"group": group},
                pre_right=pre,
                pre_answered=probes,
                post_right=post,
                post_answered=0 if out else probes,
                practice=totals,
                last_active=last,
            )
        )
    return SimulatedExperiment(world.plan(key), tuple(records), true_effect)


def naive_t_test(experiment: SimulatedExperiment) -> float:
    """p-value of Student's two-sample t-test on the post-test, student by student: the analysis that
    ignores classes and the pre-test (what a spreadsheet would do). For comparison only."""
    control = [
        r.post_right / r.post_answered for r in experiment.records if r.post_answered and r.arm == "control"
    ]
    treatment = [
        r.post_right / r.post_answered for r in experiment.records if r.post_answered and r.arm == "treatment"
    ]
    return float(stats.ttest_ind(treatment, control).pvalue)


@dataclass(frozen=True)
class RunSummary:
    """Many seeded experiments of one world: how often the analysis flags, and what it claimed."""

    runs: int
    flagged: float  # share with a significant primary effect (cluster-robust ANCOVA)
    naive_flagged: float  # share with naive t-test p < alpha
    mean_claimed_power: float  # the report's power at the planned minimum effect, averaged
    mean_true_effect: float
    mean_estimate: float
    coverage: float  # share of 95% intervals that contain the true effect
    not_enough_data: float  # share of reports saying so

    @property
    def flagged_se(self) -> float:
        return math.sqrt(self.flagged * (1 - self.flagged) / self.runs)


def run_many(world: ExperimentWorld, seeds: Sequence[int]) -> RunSummary:
    """Simulate and analyse one experiment per seed."""
    flagged = naive = covered = short = 0
    powers, truths, estimates = [], [], []
    for seed in seeds:
        experiment = simulate_experiment(world, seed)
        report = experiment.analyse()
        effect = report.primary[0]
        if effect.low is None or effect.high is None or effect.difference is None:
            raise RuntimeError(f"seed {seed}: the primary effect could not be estimated")
        flagged += bool(effect.significant)
        naive += naive_t_test(experiment) < experiment.plan.alpha
        covered += effect.low <= experiment.true_effect <= effect.high
        short += effect.verdict == "not enough data"
        powers.append(effect.power or 0.0)
        truths.append(experiment.true_effect)
        estimates.append(effect.difference)
    runs = len(seeds)
    return RunSummary(
        runs,
        flagged / runs,
        naive / runs,
        float(np.mean(powers)),
        float(np.mean(truths)),
        float(np.mean(estimates)),
        covered / runs,
        short / runs,
    )
