"""A harder simulated world: hidden students who forget, over school weeks, then a delayed post-test.

The world of issue 4 (``simulation.py``) has students who never forget. Here the truth is a
memory-strength model of its own, deliberately unlike the tutor's (BKT + FSRS), so that the
tutor is judged on the phenomena, not on its own assumptions:

Per student i (drawn once, the same under every policy):
  speed v_i = exp(N(0, speed_spread))                 continuous, median 1
  prior share f_i ~ Beta(mean prior, prior_concentration)
  guess g_i ~ Beta(mean guess, answer_concentration), slip s_i likewise around slip
Per skill k (the same for every student): learn multiplier m_k = exp(N(0, skill_spread)).
Prior knowledge: walking the curriculum in order, skill k is already known at the start with
  probability f_i if every prerequisite is, else f_i * prior_without_prerequisites; a skill
  known at the start has memory strength prior_strength_days.
Recall of a learned skill Delta days after its last successful retrieval, strength S (days):
  exponential  r = exp(-Delta / S)      or      power  r = (1 + Delta / S)^-1
  "truly known at time t" = r(t) for a learned skill, 0 otherwise (an expectation: the
  coin is tossed only when the skill is used).
An attempt on exercise e (difficulty d in [0, 1], delta = difficulty_effect):
  slip_e = s_i (1 + delta (2d - 1)), guess_e = g_i (1 - delta (2d - 1))   (harder: both lower success)
  each tagged skill: a learned skill is retrieved with probability r; retrieved -> right
  with 1 - slip_e, else (not learned or not retrieved) right with guess_e; the exercise is
  right when every tagged skill's part is.
  A retrieval strengthens memory by the spacing effect:
      S <- S (1 + spacing_gain (1 - r) + massed_gain)
  (a retrieval in the same sitting, r ~ 1, adds only massed_gain; one after a long gap a lot).
  A failed retrieval makes the skill unknown again (its strength is kept for relearning).
  An unknown skill is learned from the attempt (with feedback) with probability
      1 - (1 - learn)^(v_i m_k q x),   q = prerequisite_factor + (1 - prerequisite_factor) * mean
                                           recall of the skill's prerequisites (1 without any),
                                      x = relearn_boost for a skill learned before (savings), else 1;
  learned now: S = initial_strength_days (relearned: max(that, lapse_factor * old S)).
Sessions: Monday to Friday, one sitting a day of ``answers_per_session`` answers one minute
apart (fewer when the policy has nothing to give), weekends off, for ``weeks`` weeks; then a
post-test ``post_test_days`` after the last session: every practicable skill once, from the
hidden state at that time, with no learning from the test.

What the tutor sees is only the answers, exactly as in the service: the policy chooses from a
``StudentView`` built as ``services/tutoring/next_exercise._view`` builds it, and ``tracking.apply_answer``
updates the ``StudentModel`` at the simulated time under the tutor's parameters (the content
defaults, or pooled values), which the truth's prior, guess and learn rate need not match.

Randomness: common random numbers as in ``simulation.py`` -- the k-th attempt of student i at
skill k uses the same three uniforms (retrieval, answer, learning) under every policy; every
stream has a string seed, so a report is the same for any PYTHONHASHSEED and any number of
worker processes.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import fmean
from typing import Any

from app.domain.bkt import BktParams
from app.domain.content import ContentGraph, Exercise
from app.domain.selection import POLICIES, Policy, PolicyConfig, Recommendation
from app.domain.simulation import (
    _SHARED,
    SIMULATION_POLICIES,
    START,
    build_view,
    choose_policies,
    map_tasks,
    model_parameters,
)
from app.domain.tracking import MasteryRules, MasteryStatus, StudentModel, apply_answer

DAY = 86400.0
CURVES = ("exponential", "power")
DEFAULT_POLICIES: tuple[str, ...] = (*POLICIES, "spaced_repetition")
TERCILES = ("slow", "middle", "fast")


def _beta(rng: random.Random, mean: float, concentration: float) -> float:
    """A Beta draw with this mean (0 and 1 are exact: no draw needed)."""
    if mean <= 0.0 or mean >= 1.0:
        return min(1.0, max(0.0, mean))
    return rng.betavariate(mean * concentration, (1.0 - mean) * concentration)


@dataclass(frozen=True)
class ForgettingWorld:
    """The hidden truth (see the module docstring for the equations). Probabilities in [0, 1]."""

    prior: float = 0.1  # mean share of skills a student already knows
    prior_concentration: float = 4.0  # of the Beta over students (lower: more spread)
    prior_without_prerequisites: float = 0.25  # prior knowledge of a skill whose prerequisites are unknown
    prior_strength_days: float = 10.0
    guess: float = 0.2
    slip: float = 0.1
    answer_concentration: float = 30.0  # of the Beta over students for guess and slip
    learn: float = 0.12  # per attempt at speed 1, prerequisites recalled
    speed_spread: float = 0.7  # sd of log speed (0.7: the middle 50% within about x0.6 to x1.6)
    skill_spread: float = 0.3  # sd of log learn multiplier per skill
    prerequisite_factor: float = 0.25  # learning speed while no prerequisite is recalled
    difficulty_effect: float = 0.5  # guess and slip scale by 1 -/+ this at difficulty 0 and 1
    initial_strength_days: float = 3.0  # recall after a day: exp(-1/3) = 0.72
    spacing_gain: float = 2.0
    massed_gain: float = 0.05
    lapse_factor: float = 0.5
    relearn_boost: float = 2.0
    curve: str = "exponential"

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be in [0, 1], got {getattr(self, name)}"
            for name in (
                "prior",
                "prior_without_prerequisites",
                "guess",
                "slip",
                "learn",
                "prerequisite_factor",
                "difficulty_effect",
                "lapse_factor",
            )
            if not 0.0 <= getattr(self, name) <= 1.0
        ]
        problems += [
            f"{name} must be > 0, got {getattr(self, name)}"
            for name in (
                "prior_concentration",
                "answer_concentration",
                "prior_strength_days",
                "initial_strength_days",
                "relearn_boost",
            )
            if not getattr(self, name) > 0.0
        ]
        problems += [
            f"{name} must be >= 0, got {getattr(self, name)}"
            for name in ("speed_spread", "skill_spread", "spacing_gain", "massed_gain")
            if not getattr(self, name) >= 0.0
        ]
        if self.curve not in CURVES:
            problems.append(f"curve must be one of {list(CURVES)}, got {self.curve!r}")
        if problems:
            raise ValueError("; ".join(problems))

    def recall(self, days: float, strength: float) -> float:
        """Probability in [0, 1] of retrieving a learned skill ``days`` after the last retrieval."""
        days = max(days, 0.0)
        if self.curve == "power":
            return 1.0 / (1.0 + days / strength)
        return math.exp(-days / strength)


@dataclass(frozen=True)
class ForgettingConfig:
    """One run of the forgetting world."""

    students: int = 30
    weeks: int = 4
    answers_per_session: int = 30
    post_test_days: int = 14
    world: ForgettingWorld = field(default_factory=ForgettingWorld)
    # What the tracker is given for every skill; None = each skill's content parameters.
    model_params: BktParams | None = None
    policy: PolicyConfig = field(default_factory=PolicyConfig)  # its ``rules`` decide "earned" and claims
    # Policies whose claims come from the tracker's status (earned, memory); the others from
    # standard BKT P(L) >= the policy's mastery threshold.
    paced_policies: frozenset[str] = frozenset({"adaptive"})
    speed_check_after: int = 200  # answers after which the pace estimate is compared with the truth
    start: datetime = START  # a Monday; sessions start at its time of day
    seed: int | str = 0

    def __post_init__(self) -> None:
        problems = []
        for name in ("students", "weeks", "answers_per_session", "speed_check_after"):
            if getattr(self, name) < 1:
                problems.append(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.post_test_days < 0:
            problems.append(f"post_test_days must be >= 0, got {self.post_test_days}")
        if self.answers_per_session > 600:
            problems.append("answers_per_session must be at most 600 (one a minute, within the day)")
        if self.start.tzinfo is None:
            problems.append("start must be timezone-aware")
        elif self.start.weekday() != 0:
            problems.append(f"start must be a Monday, got {self.start:%A}")
        if problems:
            raise ValueError("; ".join(problems))

    def session_days(self) -> list[datetime]:
        """The start of every session: Monday to Friday of each week."""
        return [self.start + timedelta(weeks=w, days=d) for w in range(self.weeks) for d in range(5)]

    def answer_time(self, session: datetime, k: int) -> datetime:
        """When the k-th answer (from 0) of a session is given."""
        return session + timedelta(minutes=k)

    def post_test_time(self) -> datetime:
        return self.session_days()[-1] + timedelta(days=self.post_test_days)


# --- the hidden student --------------------------------------------------------------------------


class _Memory:
    """Hidden state of one skill of one student, with its own random stream."""

    __slots__ = ("known", "strength", "last", "ever", "rng")

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.known = False
        self.ever = False  # learned at some point (relearning is faster: savings)
        self.strength = 0.0  # days
        self.last: datetime | None = None  # last successful retrieval (or learning)


class HiddenStudent:
    """A student of the forgetting world; the tutor never reads anything here but the answers."""

    def __init__(self, graph: ContentGraph, config: ForgettingConfig, index: int) -> None:
        world = self.world = config.world
        self.graph = graph
        stem = f"{config.seed}:{index}"
        rng = random.Random(f"world:{stem}")
        self.speed = math.exp(rng.gauss(0.0, world.speed_spread)) if world.speed_spread else 1.0
        self.prior_share = _beta(rng, world.prior, world.prior_concentration)
        self.guess = _beta(rng, world.guess, world.answer_concentration)
        self.slip = _beta(rng, world.slip, world.answer_concentration)
        self.skill_rate = {
            s: math.exp(random.Random(f"world-skill:{config.seed}:{s}").gauss(0.0, world.skill_spread))
            if world.skill_spread
            else 1.0
            for s in graph.skill_order
        }
        self.memory: dict[str, _Memory] = {}
        self._stem = stem
        for skill_id in graph.skill_order:
            share = self.prior_share
            prerequisites = graph.skills[skill_id].prerequisites
            if not all(self.memory[p].known for p in prerequisites if p in self.memory):
                share *= world.prior_without_prerequisites
            state = self._state(skill_id)
            if rng.random() < share:
                state.known = state.ever = True
                state.strength, state.last = world.prior_strength_days, config.start

    def _state(self, skill_id: str) -> _Memory:
        found = self.memory.get(skill_id)
        if found is None:
            found = self.memory[skill_id] = _Memory(random.Random(f"student:{self._stem}:{skill_id}"))
        return found

    def truth(self, skill_id: str, now: datetime) -> float:
        """Probability in [0, 1] that the skill is known (would be retrieved) at ``now``."""
        state = self.memory.get(skill_id)
        if state is None or not state.known or state.last is None:
            return 0.0
        return self.world.recall((now - state.last).total_seconds() / DAY, state.strength)

    def _prerequisite_recall(self, skill_id: str, now: datetime) -> float:
        prerequisites = self.graph.skills[skill_id].prerequisites
        if not prerequisites:
            return 1.0
        return fmean(self.truth(p, now) for p in prerequisites)

    def answer(self, exercise: Exercise, now: datetime) -> bool:
        """Answer ``exercise`` at ``now`` (right or wrong), then learn or forget from the attempt."""
        world = self.world
        shift = world.difficulty_effect * (2.0 * exercise.difficulty - 1.0)
        slip = min(1.0, self.slip * (1.0 + shift))
        guess = min(1.0, max(0.0, self.guess * (1.0 - shift)))
        # Learning conditions are read before any tagged skill changes.
        readiness = {s: self._prerequisite_recall(s, now) for s in exercise.skill_ids}
        correct = True
        for skill_id in exercise.skill_ids:
            state = self._state(skill_id)
            # Three draws on every attempt, used or not: the k-th attempt at a skill sees the same
            # numbers under every policy (common random numbers).
            u_recall, u_answer, u_learn = state.rng.random(), state.rng.random(), state.rng.random()
            r = self.truth(skill_id, now)
            if state.known and u_recall < r:
                correct &= u_answer < 1.0 - slip
                state.strength *= 1.0 + world.spacing_gain * (1.0 - r) + world.massed_gain
                state.last = now
                continue
            correct &= u_answer < guess
            relearning = state.ever
            state.known = False  # a failed retrieval: unknown again until relearned
            q = world.prerequisite_factor + (1.0 - world.prerequisite_factor) * readiness[skill_id]
            savings = world.relearn_boost if relearning else 1.0
            exponent = self.speed * self.skill_rate[skill_id] * q * savings
            if u_learn < 1.0 - (1.0 - world.learn) ** exponent:
                state.known = state.ever = True
                state.strength = (
                    max(world.initial_strength_days, world.lapse_factor * state.strength)
                    if relearning
                    else world.initial_strength_days
                )
                state.last = now
        return correct

    def post_test(self, skill_ids: Sequence[str], now: datetime) -> tuple[float, int]:
        """The delayed post-test: (expected number of skills recalled, number answered right).

        Each skill once, on an item of middle difficulty, from the hidden state at ``now``, from
        a stream of its own (no learning, and nothing drawn from the practice streams).
        """
        expected, right = 0.0, 0
        for skill_id in skill_ids:
            r = self.truth(skill_id, now)
            rng = random.Random(f"post-test:{self._stem}:{skill_id}")
            u_recall, u_answer = rng.random(), rng.random()
            expected += r
            right += u_answer < ((1.0 - self.slip) if u_recall < r else self.guess)
        return expected, right


# --- one student under one policy ------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    """One answer of a run (kept when ``trace=True``)."""

    at: datetime
    exercise_id: str
    skill_id: str | None
    reason: str
    correct: bool


@dataclass(frozen=True)
class ForgettingResult:
    """One hidden student under one policy. Sums of truths are expected counts of known skills."""

    policy: str
    index: int
    speed: float  # hidden
    answers: int
    reasons: tuple[tuple[str, int], ...]  # recommendation reason -> answers
    declarations: int  # skills declared earned (first time)
    declared_truth: float  # sum over those of the truth at that moment
    session_claims: tuple[tuple[int, float], ...]  # per session end: (skills claimed, sum of truth)
    post_claims: int  # claimed at the post-test
    post_claims_truth: float
    retained: float  # expected skills recalled at the post-test
    post_test_right: int
    n_skills: int
    skills_practised: int
    practice_days: int  # sum over practised skills of the distinct days it was practised
    speed_estimate: float | None  # model.speed after speed_check_after answers (None: fewer answers)
    steps: tuple[Step, ...] = ()


def claimed(
    model: StudentModel,
    skill_id: str,
    params: BktParams,
    now: datetime,
    paced: bool,
    rules: MasteryRules,
    threshold: float,
) -> bool:
    """Shown as mastered and not due for review: the tracker's status, or standard P(L) for a baseline."""
    if paced:
        return model.status(skill_id, params, now, rules) == MasteryStatus.MASTERED
    state = model.skills.get(skill_id)
    return (state.p_mastery if state else params.prior) >= threshold


def run_student(
    graph: ContentGraph,
    policy_name: str,
    index: int,
    config: ForgettingConfig,
    policy: Policy | None = None,
    *,
    params: Mapping[str, BktParams] | None = None,
    seed_for: Callable[[int], int] | None = None,
    trace: bool = False,
) -> ForgettingResult:
    """Run hidden student ``index`` under one policy through every session, then the post-test.

    ``params``: the tutor's parameters (default: from ``config.model_params``); ``seed_for``:
    the policy's seed given the number of answers so far (default: a stream keyed by run seed,
    policy and student; the service derives it from the student and their latest answer);
    ``trace``: keep every answer in ``steps``.
    """
    policy = policy or SIMULATION_POLICIES[policy_name]
    params = dict(params) if params is not None else model_parameters(graph, model_params=config.model_params)
    paced = policy_name in config.paced_policies
    rules, threshold = config.policy.rules, config.policy.mastery_threshold
    practicable = [s for s in graph.skill_order if graph.exercises_by_skill.get(s)]
    window = max(config.policy.recent_window, 10)

    student = HiddenStudent(graph, config, index)
    model = StudentModel()
    stream = random.Random(f"policy:{config.seed}:{policy_name}:{index}")
    exercises: list[str] = []
    outcomes: list[bool] = []
    times: list[datetime] = []
    last: Recommendation | None = None
    reasons: dict[str, int] = {}
    days: dict[str, set[Any]] = {}
    declared: set[str] = set()
    declared_truth = 0.0
    session_claims: list[tuple[int, float]] = []
    speed_estimate: float | None = None
    steps: list[Step] = []

    def claims_at(now: datetime) -> tuple[int, float]:
        shown = [s for s in practicable if claimed(model, s, params[s], now, paced, rules, threshold)]
        return len(shown), sum(student.truth(s, now) for s in shown)

    for session in config.session_days():
        for k in range(config.answers_per_session):
            now = config.answer_time(session, k)
            view = build_view(graph, model, now, exercises, outcomes, times, last, window)
            seed = seed_for(len(exercises)) if seed_for is not None else stream.getrandbits(63)
            rec = policy(graph, params, view, config.policy, seed)
            if rec.exercise_id is None:
                break  # nothing to give today: the sitting ends early
            exercise = graph.exercises[rec.exercise_id]
            correct = student.answer(exercise, now)
            outcome = apply_answer(model, exercise.skill_ids, correct, params, now=now, rules=rules)
            if paced:
                fresh = [s for s, state in model.skills.items() if s not in declared and state.mastered_at]
            else:
                fresh = [
                    step.skill_id
                    for step in outcome
                    if step.skill_id not in declared and step.p_mastery_after >= threshold
                ]
            for skill_id in fresh:
                declared.add(skill_id)
                declared_truth += student.truth(skill_id, now)
            reasons[rec.reason] = reasons.get(rec.reason, 0) + 1
            for skill_id in exercise.skill_ids:
                days.setdefault(skill_id, set()).add(now.date())
            exercises.append(rec.exercise_id)
            outcomes.append(correct)
            times.append(now)
            last = rec
            if len(exercises) == config.speed_check_after:
                speed_estimate = model.speed
            if trace:
                steps.append(Step(now, rec.exercise_id, rec.skill_id, rec.reason, correct))
        session_claims.append(claims_at(config.answer_time(session, config.answers_per_session)))

    post = config.post_test_time()
    post_claims, post_truth = claims_at(post)
    retained, right = student.post_test(practicable, post)
    return ForgettingResult(
        policy=policy_name,
        index=index,
        speed=student.speed,
        answers=len(exercises),
        reasons=tuple(sorted(reasons.items())),
        declarations=len(declared),
        declared_truth=declared_truth,
        session_claims=tuple(session_claims),
        post_claims=post_claims,
        post_claims_truth=post_truth,
        retained=retained,
        post_test_right=right,
        n_skills=len(practicable),
        skills_practised=len(days),
        practice_days=sum(len(d) for d in days.values()),
        speed_estimate=speed_estimate,
        steps=tuple(steps),
    )


# --- the comparison ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    """A value with a 95% interval (NaN when undefined, e.g. no claims)."""

    value: float
    low: float
    high: float


NAN = Estimate(math.nan, math.nan, math.nan)


def mean_ci(values: Sequence[float]) -> Estimate:
    """Mean with a normal 95% interval over students."""
    if not values:
        return NAN
    mean = fmean(values)
    if len(values) < 2:
        return Estimate(mean, math.nan, math.nan)
    sd = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1))
    half = 1.96 * sd / math.sqrt(len(values))
    return Estimate(mean, mean - half, mean + half)


def ratio_ci(
    numerators: Sequence[float], denominators: Sequence[float], label: str, resamples: int = 1000
) -> Estimate:
    """sum(num) / sum(den) with a percentile bootstrap 95% interval over students (seeded by ``label``)."""
    total = sum(denominators)
    if total <= 0:
        return NAN
    value = sum(numerators) / total
    n = len(numerators)
    rng = random.Random(f"bootstrap:{label}")
    draws = []
    for _ in range(resamples):
        picks = [rng.randrange(n) for _ in range(n)]
        den = sum(denominators[i] for i in picks)
        if den > 0:
            draws.append(sum(numerators[i] for i in picks) / den)
    if len(draws) < resamples // 2:
        return Estimate(value, math.nan, math.nan)
    draws.sort()
    low, high = draws[int(0.025 * len(draws))], draws[min(len(draws) - 1, int(0.975 * len(draws)))]
    return Estimate(value, low, high)


@dataclass(frozen=True)
class TercileSummary:
    policy: str
    tercile: str
    students: int
    speed_range: tuple[float, float]  # hidden speeds in the tercile
    retention: Estimate  # expected share of skills recalled at the post-test
    post_test_score: Estimate  # share answered right at the post-test (guessing included)
    answers_per_retained: Estimate  # answers / skills retained
    declared_truly_known: Estimate  # of the skills declared earned, share truly known then
    declarations: int
    honesty_min: float  # lowest share truly known of the claims at any session end
    honesty_min_session: int  # which session (1-based), 0 when no claims
    honesty_mean: Estimate  # pooled over every session end
    honesty_post: Estimate  # at the post-test
    claims_post: float  # skills shown mastered per student at the post-test
    known_post: float  # of those, truly known per student
    practice_days: float  # distinct days a practised skill was practised
    answers: float  # per student


@dataclass(frozen=True)
class ForgettingReport:
    config: ForgettingConfig
    policies: tuple[str, ...]
    n_skills: int
    n_exercises: int
    model_means: tuple[float, float, float]  # the tutor's mean prior, guess, learn over skills
    params_source: str  # where the tutor's parameters came from, in words
    rows: tuple[TercileSummary, ...]
    students: tuple[ForgettingResult, ...]

    def row(self, policy: str, tercile: str) -> TercileSummary:
        for found in self.rows:
            if found.policy == policy and found.tercile == tercile:
                return found
        raise KeyError((policy, tercile))

    def results(self, policy: str) -> list[ForgettingResult]:
        return [r for r in self.students if r.policy == policy]

    def reason_shares(self, policy: str) -> dict[str, float]:
        counts: dict[str, int] = {}
        for result in self.results(policy):
            for reason, n in result.reasons:
                counts[reason] = counts.get(reason, 0) + n
        total = sum(counts.values())
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])
        return {reason: n / total for reason, n in ranked} if total else {}


def terciles(speeds: Mapping[int, float]) -> dict[int, str]:
    """Student index -> "slow" / "middle" / "fast" by hidden speed (ties by index)."""
    ranked = sorted(speeds, key=lambda i: (speeds[i], i))
    n = len(ranked)
    return {i: TERCILES[min(2, rank * 3 // n)] for rank, i in enumerate(ranked)}


def summarize_tercile(
    policy: str, tercile: str, results: Sequence[ForgettingResult], seed: int | str
) -> TercileSummary:
    label = f"{seed}:{policy}:{tercile}"
    n_sessions = max((len(r.session_claims) for r in results), default=0)
    honesty_min, honesty_min_session = math.nan, 0
    for k in range(n_sessions):
        count = sum(r.session_claims[k][0] for r in results)
        if count:
            share = sum(r.session_claims[k][1] for r in results) / count
            if math.isnan(honesty_min) or share < honesty_min:
                honesty_min, honesty_min_session = share, k + 1
    speeds = [r.speed for r in results]
    return TercileSummary(
        policy=policy,
        tercile=tercile,
        students=len(results),
        speed_range=(min(speeds), max(speeds)),
        retention=mean_ci([r.retained / r.n_skills for r in results]),
        post_test_score=mean_ci([r.post_test_right / r.n_skills for r in results]),
        answers_per_retained=ratio_ci(
            [r.answers for r in results], [r.retained for r in results], label + ":answers"
        ),
        declared_truly_known=ratio_ci(
            [r.declared_truth for r in results], [r.declarations for r in results], label + ":declared"
        ),
        declarations=sum(r.declarations for r in results),
        honesty_min=honesty_min,
        honesty_min_session=honesty_min_session,
        honesty_mean=ratio_ci(
            [sum(t for _, t in r.session_claims) for r in results],
            [sum(c for c, _ in r.session_claims) for r in results],
            label + ":honesty",
        ),
        honesty_post=ratio_ci(
            [r.post_claims_truth for r in results], [r.post_claims for r in results], label + ":post"
        ),
        claims_post=fmean(r.post_claims for r in results),
        known_post=fmean(r.post_claims_truth for r in results),
        practice_days=(
            sum(r.practice_days for r in results) / practised
            if (practised := sum(r.skills_practised for r in results))
            else math.nan
        ),
        answers=fmean(r.answers for r in results),
    )


def _run_task(task: tuple[str, int, int]) -> list[ForgettingResult]:
    policy_name, start, stop = task
    graph, config, policies = _SHARED["graph"], _SHARED["config"], _SHARED["policies"]
    return [
        run_student(graph, policy_name, i, config, policies[policy_name], params=_SHARED["params"])
        for i in range(start, stop)
    ]


def run_forgetting(
    graph: ContentGraph,
    config: ForgettingConfig = ForgettingConfig(),
    policies: Mapping[str, Policy] | Sequence[str] | None = None,
    *,
    processes: int | None = None,
    params: Mapping[str, BktParams] | None = None,
) -> ForgettingReport:
    """Run every policy on the same hidden students; rows are policy-major, terciles slow to fast.

    ``policies``: names from ``simulation.SIMULATION_POLICIES`` or a name -> policy mapping
    (default: the five of ``selection.POLICIES`` and the spaced-repetition scheduler).
    ``processes``: worker processes (None = one per CPU); the report is identical for any value.
    ``params``: the tutor's parameters per skill, e.g. the service's current ones (default: from
    ``config.model_params``).
    """
    chosen = choose_policies(policies, default={p: SIMULATION_POLICIES[p] for p in DEFAULT_POLICIES})
    chunk = 3  # students per task: balances the slower policies over the workers
    tasks = [
        (p, start, min(start + chunk, config.students))
        for p in chosen
        for start in range(0, config.students, chunk)
    ]
    parts = map_tasks(_run_task, tasks, processes, graph=graph, config=config, policies=chosen, params=params)
    students = tuple(r for part in parts for r in part)
    groups = terciles({r.index: r.speed for r in students})
    rows = tuple(
        summarize_tercile(p, t, [r for r in students if r.policy == p and groups[r.index] == t], config.seed)
        for p in chosen
        for t in TERCILES
        if any(groups[r.index] == t for r in students if r.policy == p)
    )
    m = config.model_params
    source = (
        "each skill's own parameters, as given"
        if params is not None
        else "each skill's content parameters"
        if m is None
        else f"every skill prior {m.prior:g}, learn {m.learn:g}, guess {m.guess:g}, slip {m.slip:g}"
    )
    if params is None:
        params = model_parameters(graph, model_params=m)
    practicable = [s for s in graph.skill_order if graph.exercises_by_skill.get(s)]
    prior, guess, learn = (
        fmean(getattr(params[s], name) for s in practicable) for name in ("prior", "guess", "learn")
    )
    return ForgettingReport(
        config,
        tuple(chosen),
        len(practicable),
        len(graph.exercises),
        (prior, guess, learn),
        source,
        rows,
        students,
    )


# --- pace recovery and targets --------------------------------------------------------------------


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=lambda i: values[i])
    ranks = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1  # ties share their mean rank
        i = j + 1
    return ranks


def spearman(xs: Sequence[float], ys: Sequence[float]) -> float:
    """Spearman's rank correlation (Pearson on mid-ranks); NaN with fewer than 3 pairs or no spread."""
    if len(xs) != len(ys):
        raise ValueError("spearman needs two sequences of the same length")
    if len(xs) < 3:
        return math.nan
    rx, ry = _ranks(xs), _ranks(ys)
    mx, my = fmean(rx), fmean(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx, syy = sum((a - mx) ** 2 for a in rx), sum((b - my) ** 2 for b in ry)
    return sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else math.nan


def pace_recovery(report: ForgettingReport, policy: str) -> tuple[Estimate, int]:
    """Spearman's rho between the pace estimate after ``speed_check_after`` answers and the hidden
    speed, with a Fisher-z 95% interval; and how many students reached that many answers."""
    pairs = [(r.speed_estimate, r.speed) for r in report.results(policy) if r.speed_estimate is not None]
    rho = spearman([p[0] for p in pairs], [p[1] for p in pairs])
    n = len(pairs)
    if math.isnan(rho) or n < 4:
        return Estimate(rho, math.nan, math.nan), n
    z, half = math.atanh(max(-0.999999, min(0.999999, rho))), 1.96 / math.sqrt(n - 3)
    return Estimate(rho, math.tanh(z - half), math.tanh(z + half)), n


@dataclass(frozen=True)
class Target:
    name: str
    met: bool | None  # None: not measured by this run
    detail: str


def _pct(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}%"


def _points(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:+.1f}"


def truth_differs(report: ForgettingReport) -> list[str]:
    """Which of prior, guess, learn rate the hidden students' truth sets apart from the tutor's means."""
    world = report.config.world
    prior, guess, learn = report.model_means
    out = []
    for name, truth, model in (
        ("prior", world.prior, prior),
        ("guess", world.guess, guess),
        ("learn", world.learn, learn),
    ):
        if abs(truth - model) > 0.02:
            out.append(f"{name} {truth:g} vs {model:.3g}")
    return out


def check_targets(
    report: ForgettingReport, ours: str = "adaptive", random_name: str = "random"
) -> list[Target]:
    """Issue 17's targets (item 7, and item 4's pace recovery) on a report of the forgetting world."""
    if ours not in report.policies:
        return []
    mine = {r.index: r.retained / r.n_skills for r in report.results(ours)}
    targets = []
    baselines = [p for p in report.policies if p != ours]
    differences = {}
    for base in baselines:
        theirs = {r.index: r.retained / r.n_skills for r in report.results(base)}
        differences[base] = mean_ci([mine[i] - theirs[i] for i in mine if i in theirs])
    if baselines:
        worst = min(baselines, key=lambda b: differences[b].value)
        listed = "; ".join(
            f"{b} {_points(d.value)} [{_points(d.low)}, {_points(d.high)}]" for b, d in differences.items()
        )
        targets.append(
            Target(
                "post-test retention above every baseline",
                all(d.value > 0 for d in differences.values()),
                f"ours {_pct(fmean(mine.values()))}; difference in points (paired 95% CI): "
                f"{listed}; closest: {worst}",
            )
        )
    if random_name in differences:
        d = differences[random_name]
        targets.append(
            Target(
                "post-test retention >= 5 points above random order",
                d.value >= 0.05,
                f"{_points(d.value)} points [{_points(d.low)}, {_points(d.high)}]",
            )
        )
    rows = [r for r in report.rows if r.policy == ours]
    # No claim at a moment is no false claim; a run that never claims anything shows nothing.
    shares = [v for r in rows for v in (r.honesty_min, r.honesty_post.value) if not math.isnan(v)]
    detail = "; ".join(
        f"{r.tercile}: lowest at a session end {_pct(r.honesty_min)} (session "
        f"{r.honesty_min_session}), post-test {_pct(r.honesty_post.value)} "
        f"({r.claims_post:.1f} shown per student)"
        for r in rows
    )
    targets.append(
        Target(
            ">= 90% of skills shown mastered (not due) truly known, at every session end and "
            "the post-test, every speed tercile",
            bool(shares) and all(v >= 0.9 for v in shares),
            detail,
        )
    )
    declared = [r.declared_truly_known.value for r in rows]
    differs = truth_differs(report)
    targets.append(
        Target(
            "true mastery at declaration >= 95% in every speed tercile",
            bool(declared) and all(v >= 0.95 for v in declared),
            "; ".join(f"{r.tercile} {_pct(r.declared_truly_known.value)}" for r in rows)
            + (
                f" (truth differs from the tutor's parameters: {', '.join(differs)})"
                if differs
                else " (truth matches the tutor's mean prior, guess and learn: run with --truth-* to differ)"
            ),
        )
    )
    rho, n = pace_recovery(report, ours)
    targets.append(
        Target(
            f"pace recovery: Spearman rho >= 0.8 after {report.config.speed_check_after} answers "
            "(issue 17 item 4)",
            not math.isnan(rho.value) and rho.value >= 0.8,
            f"rho {rho.value:.2f} [{rho.low:.2f}, {rho.high:.2f}], {n} students",
        )
    )
    targets.append(
        Target(
            "issue 4's targets on the world without forgetting",
            None,
            "not measured here: run `flask simulate` without --world",
        )
    )
    return targets


# --- text ----------------------------------------------------------------------------------------------


def _ci(e: Estimate, pct: bool = True) -> str:
    if math.isnan(e.value):
        return "n/a"
    if pct:
        return f"{100 * e.value:.1f}% [{_bound(e.low)}, {_bound(e.high)}]"
    return f"{e.value:.1f} [{e.low:.1f}, {e.high:.1f}]" if not math.isnan(e.low) else f"{e.value:.1f}"


def _bound(x: float) -> str:
    return "n/a" if math.isnan(x) else f"{100 * x:.1f}"


def align(lines: Sequence[Sequence[str]], left: int = 2) -> str:
    """Columns padded to one width; the first ``left`` columns left-aligned, the rest right-aligned."""
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    text = [
        "  ".join(
            cell.ljust(w) if i < left else cell.rjust(w)
            for i, (cell, w) in enumerate(zip(line, widths, strict=True))
        ).rstrip()
        for line in lines
    ]
    text.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(text)


def format_forgetting(report: ForgettingReport) -> str:
    """The tables: per policy x tercile, reasons and pace per policy, then the setup."""
    c, w = report.config, report.config.world
    main = [
        (
            "policy",
            "tercile",
            "speed",
            "retention (95% CI)",
            "answers/skill retained",
            "true at declaration",
            "claims true: min",
            "mean",
            "post-test",
            "shown/known at post-test",
            "days/skill",
            "answers",
        )
    ]
    for r in report.rows:
        main.append(
            (
                r.policy,
                r.tercile,
                f"{r.speed_range[0]:.2f}-{r.speed_range[1]:.2f}",
                _ci(r.retention),
                _ci(r.answers_per_retained, pct=False),
                _ci(r.declared_truly_known),
                _pct(r.honesty_min),
                _ci(r.honesty_mean),
                _ci(r.honesty_post),
                f"{r.claims_post:.1f} / {r.known_post:.1f}",
                "n/a" if math.isnan(r.practice_days) else f"{r.practice_days:.1f}",
                f"{r.answers:.0f}",
            )
        )
    reasons = [("policy", "picks by reason", f"pace rho after {c.speed_check_after} (95% CI)")]
    for policy in report.policies:
        shares = ", ".join(f"{k} {100 * v:.1f}%" for k, v in report.reason_shares(policy).items())
        rho, n = pace_recovery(report, policy)
        pace = "n/a" if math.isnan(rho.value) else f"{rho.value:.2f} [{rho.low:.2f}, {rho.high:.2f}] (n={n})"
        reasons.append((policy, shares, pace))
    prior, guess, learn = report.model_means
    model = f"{report.params_source} (means: prior {prior:.3g}, guess {guess:.3g}, learn {learn:.3g})"
    setup = (
        f"{report.n_skills} skills, {report.n_exercises} exercises; {c.students} students; {c.weeks} school "
        f"weeks of {c.answers_per_session} answers a day (Mon-Fri), post-test {c.post_test_days} days after "
        f"the last session; seed {c.seed}.\n"
        f"Hidden truth: prior {w.prior:g}, guess {w.guess:g}, slip {w.slip:g}, learn {w.learn:g} x speed "
        f"(log sd {w.speed_spread:g}) x skill (log sd {w.skill_spread:g}); forgetting {w.curve}, initial "
        f"strength {w.initial_strength_days:g} d, spacing gain {w.spacing_gain:g}, massed gain "
        f"{w.massed_gain:g}; prerequisite factor {w.prerequisite_factor:g}; difficulty effect "
        f"{w.difficulty_effect:g}.\n"
        f"Tutor: {model}; earned at {c.policy.rules.threshold:g} with >= {c.policy.rules.min_correct} "
        "credited answers "
        f"(baselines: standard P(L) >= {c.policy.mastery_threshold:g}).\n"
        "retention: expected share of skills recalled at the post-test; claims true: of the skills shown as "
        "mastered and not due (baselines: standard P(L) >= threshold), the share truly known, at the lowest "
        "session end, pooled over session ends, and at the post-test; [95% CI]: normal over students for "
        "retention, percentile bootstrap over students for ratios."
    )
    return "\n\n".join([align(main), align(reasons, left=2), setup])


def format_targets(targets: Sequence[Target]) -> str:
    lines = [("target", "result", "numbers")]
    for t in targets:
        lines.append((t.name, "not measured" if t.met is None else ("met" if t.met else "NOT met"), t.detail))
    return align(lines, left=3)
