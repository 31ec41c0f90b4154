"""The student model: per-skill BKT state, the student's own pace and prior knowledge, and the
memory of each learned skill, updated in O(1) per answer.

Three quantities are kept per skill:

* ``p_mastery`` -- standard BKT P(L) under the skill's parameters: exactly what pyBKT
  computes (``state_predictions``), kept for agreement with pyBKT and published beside the
  estimate below as ``p_mastery`` ("standard BKT").
* ``p_by_speed`` -- P(L) under each student *hypothesis* h = (learning speed k, prior
  knowledge scale a, memory scale c) of ``HYPOTHESES``: the skill's learn rate becomes
  ``1 - (1 - learn)^k`` (k opportunities' worth of learning), its prior ``a * prior``
  (pyBKT's per-student prior, as a scale so one number serves every skill), its memory
  stability ``c * S`` (a student who forgets faster or slower than FSRS's defaults, fitted
  on flashcards, predict; most weight on forgetting fast, the costly mistake being a claim of
  mastery the student no longer has), and its guess at least
  ``MasteryRules.guess_floor`` (content defaults are guesses; a guess set too low makes two
  lucky answers look like knowledge). Each answer re-weights the hypotheses by its
  likelihood under each (``speed_weights``, one posterior per student shared by all skills):
  exact Bayesian filtering of that mixture. The average over the posterior is the paced
  P(L).
* ``memory`` -- from the first right answer, the skill's FSRS memory (``app.domain.memory``):
  predicted recall falls with the days since the last review and is restored by spaced
  success. Before the skill is earned only right answers count as reviews (a wrong one says
  "not learned yet", which BKT already reads); afterwards a wrong one is a lapse.

The **mastery estimate** = P(L) x predicted recall, averaged over the posterior. It is the one
number every screen shows and the one that decides: a skill is *earned* the first time the estimate reaches
``threshold`` with at least ``min_correct`` credited (right, unhinted) answers; an earned
skill is then ``mastered`` while the estimate stays at or above ``review_level``, ``due for
review`` below that, and ``needs relearning`` below ``relearn_level``. Forgetting enters the
filter too: before each answer the hypotheses' P(L) are multiplied by the recall predicted
for that moment, so a wrong answer after a long gap reads as forgetting, not as a slow
learner. Pace and prior knowledge never come from group membership: only from answers.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from functools import lru_cache
from operator import mul

from app.domain import memory as memory_model
from app.domain.bkt import Belief, BktParams, belief_after, predict_correct, predict_from, update_mastery
from app.domain.memory import DEFAULT_WEIGHTS, Memory

SPEEDS: tuple[float, ...] = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
# A broad prior, symmetric in log speed: most students near the fitted rate, none pinned to an edge.
_SPEED_PRIOR: tuple[float, ...] = (0.05, 0.1, 0.18, 0.34, 0.18, 0.1, 0.05)
# The student's prior knowledge as a share of each skill's prior: none (starts from scratch), half, as set.
PRIOR_SCALES: tuple[float, ...] = (0.0, 0.5, 1.0)
_PRIOR_SCALE_PRIOR: tuple[float, ...] = (0.3, 0.3, 0.4)
# The student's memory stability as a share of FSRS's prediction (flashcard-fitted defaults).
MEMORY_SCALES: tuple[float, ...] = (0.05, 0.25, 1.0)
_MEMORY_SCALE_PRIOR: tuple[float, ...] = (0.35, 0.35, 0.3)
HYPOTHESES: tuple[tuple[float, float, float], ...] = tuple(
    (k, a, c) for c in MEMORY_SCALES for a in PRIOR_SCALES for k in SPEEDS
)
HYPOTHESIS_PRIOR: tuple[float, ...] = tuple(
    ws * wa * wc for wc in _MEMORY_SCALE_PRIOR for wa in _PRIOR_SCALE_PRIOR for ws in _SPEED_PRIOR
)


class MasteryStatus(StrEnum):
    NOT_STARTED = "not_started"
    LEARNING = "learning"
    MASTERED = "mastered"
    DUE_FOR_REVIEW = "due_for_review"
    NEEDS_RELEARNING = "needs_relearning"


@dataclass(frozen=True)
class MasteryRules:
    """When the tutor says "mastered". Probabilities in [0, 1]."""

    threshold: float = 0.95  # the estimate at which a skill is first earned
    min_correct: int = 3  # ... with at least this many credited (right, unhinted) answers
    # an earned skill below this estimate is due for review (default: 0.02 below the threshold)
    review_level: float = math.nan
    relearn_level: float = 0.6  # ... below this it needs relearning
    guess_floor: float = 0.3  # the decision model never assumes a lower guess rate than content gives
    # Memory from the first right answer (knowledge not yet declared fades too), or only once earned.
    memory_before_mastery: bool = True
    memory_weights: tuple[float, ...] = DEFAULT_WEIGHTS  # FSRS parameters

    def __post_init__(self) -> None:
        if math.isnan(self.review_level):
            object.__setattr__(self, "review_level", round(self.threshold - 0.02, 6))
        problems = [
            f"{name} must be in [0, 1], got {value}"
            for name, value in (
                ("threshold", self.threshold),
                ("review_level", self.review_level),
                ("relearn_level", self.relearn_level),
                ("guess_floor", self.guess_floor),
            )
            if not 0.0 <= value <= 1.0
        ]
        if self.min_correct < 0:
            problems.append(f"min_correct must be >= 0, got {self.min_correct}")
        if not self.relearn_level <= self.review_level <= self.threshold:
            problems.append("relearn_level <= review_level <= threshold must hold")
        if self.guess_floor >= 0.5:
            problems.append("guess_floor must be below 0.5 (a right answer would lower mastery)")
        try:
            memory_model.check_weights(tuple(self.memory_weights))
        except ValueError as error:
            problems.append(f"memory_weights: {error}")
        if problems:
            raise ValueError("; ".join(problems))


DEFAULT_RULES = MasteryRules()


def _probability(x: float) -> float:
    """A weighted average of probabilities, without the rounding that can put it at 1 + 2e-16."""
    return min(1.0, max(0.0, x))


@lru_cache(maxsize=8192)
def params_for(params: BktParams, speed: float, prior_scale: float, guess_floor: float) -> BktParams:
    """The skill's parameters under one hypothesis (speed, prior scale) of the decision model."""
    learn = params.learn if speed == 1.0 else 1.0 - (1.0 - params.learn) ** speed
    guess = params.guess if params.fitted else max(params.guess, guess_floor)
    return replace(params, learn=learn, prior=params.prior * prior_scale, guess=guess)


@lru_cache(maxsize=8192)
def _hypothesis_params_cached(params: BktParams, guess_floor: float) -> tuple[BktParams, ...]:
    return tuple(params_for(params, k, a, guess_floor) for k, a, _ in HYPOTHESES)


def _hypothesis_params(params: BktParams, rules: MasteryRules) -> tuple[BktParams, ...]:
    return _hypothesis_params_cached(params, rules.guess_floor)


_NO_DECAY: tuple[float, ...] = (1.0,) * len(HYPOTHESES)


@lru_cache(maxsize=16384)
def _recall_levels(memory: Memory, day: datetime, weights: tuple[float, ...]) -> tuple[float, ...]:
    by_scale = {c: memory_model.recall(memory, day, weights, c) for c in MEMORY_SCALES}
    return tuple(by_scale[c] for _, _, c in HYPOTHESES)


def recall_by_hypothesis(
    memory: Memory | None, now: datetime, rules: MasteryRules = DEFAULT_RULES
) -> tuple[float, ...]:
    """Predicted recall at ``now`` under each hypothesis's memory scale (all 1 before any memory)."""
    if memory is None or now <= memory.last_review_at:
        return _NO_DECAY
    # FSRS counts whole days elapsed, so recall is cached per memory and whole day since its last review.
    day = memory.last_review_at + timedelta(days=(now - memory.last_review_at).days)
    return _recall_levels(memory, day, tuple(rules.memory_weights))


@dataclass
class SkillState:
    p_mastery: float  # standard BKT P(L) before the next response
    p_by_speed: list[float]  # P(L | hypothesis) before the next response, one per HYPOTHESES
    attempts: int = 0
    correct_count: int = 0  # credited answers: right and unhinted
    mastered_at: datetime | None = None  # first time the skill was earned
    attempts_at_mastery: int | None = None  # attempts on the skill at that moment
    last_practiced_at: datetime | None = None
    review_successes: int = 0  # right answers given while earned
    memory: Memory | None = None  # from the moment the skill is earned
    # The student's pace drift at which a new posterior could first earn this skill with no answer on it
    # (``StudentModel.pace_drift``); None: not worked out yet. An index, not knowledge: it decides nothing.
    pace_check_at: float | None = field(default=None, compare=False)
    # Standard BKT P(not L), kept apart from 1 - p_mastery (bkt.Belief); None: 1 - p_mastery (rows stored
    # before it was kept).
    p_not_mastered: float | None = None

    @classmethod
    def fresh(cls, params: BktParams) -> SkillState:
        return cls(
            params.prior, [params.prior * a for _, a, _ in HYPOTHESES], p_not_mastered=1.0 - params.prior
        )

    @property
    def belief(self) -> Belief:
        """Standard BKT's belief before the next response."""
        unknown = 1.0 - self.p_mastery if self.p_not_mastered is None else self.p_not_mastered
        return Belief(self.p_mastery, unknown)


# A pace drift no student reaches: it grows by at most 1 per answer.
NEVER = 1e9


def pace_slack(
    state: SkillState, weights: Sequence[float], now: datetime, rules: MasteryRules = DEFAULT_RULES
) -> float:
    """How much pace drift (total variation of the posterior) a skill that is not answered can take before
    it might be earned.

    The estimate is sum_h w_h a_h with a_h = P(L | h) x recall_h(now) in [0, 1]. Until the skill's next
    answer its P(L | h) stay and recall only falls, so under any later posterior w' the estimate is at most
    sum_h w'_h a_h <= estimate + TV(w, w') x (max a - min a): it cannot reach the threshold before the drift
    has covered (threshold - estimate) / (max a - min a), and never when max a is below it. One earned
    already, or short of credited answers (only an answer of its own adds one), never is. 1e-12: rounding.
    """
    if state.mastered_at is not None or state.correct_count < rules.min_correct:
        return NEVER
    levels = recall_by_hypothesis(state.memory, now, rules)
    reach: list[float] = [p * r for p, r in zip(state.p_by_speed, levels, strict=True)]
    highest = max(reach, default=0.0)
    if highest < rules.threshold - 1e-12:
        return NEVER  # no posterior can bring it there
    estimate = math.fsum(w * a for w, a in zip(weights, reach, strict=True))
    spread = highest - min(reach)
    if spread <= 0.0:
        return 0.0 if estimate >= rules.threshold - 1e-12 else NEVER
    return max(0.0, (rules.threshold - 1e-12 - estimate) / spread)


@dataclass
class StudentModel:
    speed_weights: list[float] = field(default_factory=lambda: list(HYPOTHESIS_PRIOR))
    skills: dict[str, SkillState] = field(default_factory=dict)
    # Total variation the posterior has moved through, answer by answer: with each skill's
    # ``pace_check_at``, the index that lets an answer check only the skills a new posterior could earn.
    pace_drift: float = field(default=0.0, compare=False)
    # (pace_check_at, skill) of every checked skill, for ``apply_answer``; built from ``skills`` on first use.
    _checks: list[tuple[float, str]] | None = field(default=None, init=False, repr=False, compare=False)

    def index_pace_checks(self) -> None:
        """Build the index from the skills' stored levels, once per model (a skill without one is due at
        once); from then on ``apply_answer`` keeps it."""
        if self._checks is None:
            self._checks = [
                (-math.inf if s.pace_check_at is None else s.pace_check_at, skill_id)
                for skill_id, s in self.skills.items()
                if s.pace_check_at is None or s.pace_check_at < NEVER
            ]
            heapq.heapify(self._checks)

    def due_pace_checks(self) -> list[str]:
        """The skills whose ``pace_check_at`` the drift has reached, or that have none yet, taken off the
        index (``apply_answer`` puts them back with their new level)."""
        self.index_pace_checks()
        checks, due = self._checks or [], []
        while checks and checks[0][0] <= self.pace_drift:
            level, skill_id = heapq.heappop(checks)
            state = self.skills.get(skill_id)
            if state is not None and state.pace_check_at in (None, level):  # else a stale entry
                due.append(skill_id)
        return due

    def set_pace_check(self, skill_id: str, slack: float) -> None:
        state = self.skills[skill_id]
        state.pace_check_at = NEVER if slack >= NEVER else self.pace_drift + slack
        if self._checks is not None and state.pace_check_at < NEVER:
            heapq.heappush(self._checks, (state.pace_check_at, skill_id))

    def state(self, skill_id: str, params: BktParams) -> SkillState:
        found = self.skills.get(skill_id)
        if found is None:
            found = self.skills[skill_id] = SkillState.fresh(params)
        return found

    def _p_by_hypothesis(self, skill_id: str, params: BktParams) -> list[float]:
        found = self.skills.get(skill_id)
        return found.p_by_speed if found else [params.prior * a for _, a, _ in HYPOTHESES]

    def paced(self, skill_id: str, params: BktParams) -> float:
        """P(L) averaged over the student's hypothesis posterior, as of the last answer (no forgetting)."""
        found = self.skills.get(skill_id)
        if found is None:  # never practised: the prior, scaled by the student's prior knowledge
            return _probability(params.prior * self.prior_knowledge)
        return _probability(sum(map(mul, self.speed_weights, found.p_by_speed)))

    def recall(self, skill_id: str, now: datetime, rules: MasteryRules = DEFAULT_RULES) -> float:
        """Predicted recall of the skill at ``now``, averaged over the posterior (1 before any memory)."""
        found = self.skills.get(skill_id)
        if found is None or found.memory is None:
            return 1.0
        levels = recall_by_hypothesis(found.memory, now, rules)
        return _probability(sum(w * r for w, r in zip(self.speed_weights, levels, strict=True)))

    def estimate(
        self, skill_id: str, params: BktParams, now: datetime, rules: MasteryRules = DEFAULT_RULES
    ) -> float:
        """The mastery estimate at ``now``: paced P(L) x predicted recall. It decides and is shown."""
        found = self.skills.get(skill_id)
        if found is None:  # never practised: the prior, scaled by the student's prior knowledge
            return _probability(params.prior * self.prior_knowledge)
        return estimate_of(
            self.speed_weights,
            self._p_by_hypothesis(skill_id, params),
            found.memory if found else None,
            now,
            rules,
        )

    def status(
        self, skill_id: str, params: BktParams, now: datetime, rules: MasteryRules = DEFAULT_RULES
    ) -> MasteryStatus:
        return status_of(self.skills.get(skill_id), self.estimate(skill_id, params, now, rules), rules)

    def _levels(self, skill_id: str, now: datetime | None, rules: MasteryRules) -> tuple[float, ...]:
        found = self.skills.get(skill_id)
        if now is None or found is None:
            return _NO_DECAY
        return recall_by_hypothesis(found.memory, now, rules)

    def paced_correct(
        self,
        skill_id: str,
        params: BktParams,
        now: datetime | None = None,
        rules: MasteryRules = DEFAULT_RULES,
    ) -> float:
        """Predicted P(correct) on the skill under the posterior (with forgetting up to ``now``)."""
        p = self._p_by_hypothesis(skill_id, params)
        return _probability(
            sum(
                w * predict_correct(x * r, hp)
                for w, x, r, hp in zip(
                    self.speed_weights,
                    p,
                    self._levels(skill_id, now, rules),
                    _hypothesis_params(params, rules),
                    strict=True,
                )
            )
        )

    def expected_gain(
        self,
        skill_id: str,
        params: BktParams,
        now: datetime | None = None,
        rules: MasteryRules = DEFAULT_RULES,
    ) -> float:
        """Expected rise of the estimate from one more opportunity on the skill.

        The posterior is a martingale, so the gain is the learning transition alone,
        (1 - p) * learn - p * forget per hypothesis, plus, for a skill whose recall has
        fallen, what the review restores (recall back to 1).
        """
        p = self._p_by_hypothesis(skill_id, params)
        gain = 0.0
        for w, x, r, hp in zip(
            self.speed_weights,
            p,
            self._levels(skill_id, now, rules),
            _hypothesis_params(params, rules),
            strict=True,
        ):
            decayed = x * r
            gain += w * ((1 - decayed) * hp.learn - decayed * hp.forget + (x - decayed))
        return gain

    def _mean(self, axis: int) -> float:
        return sum(w * h[axis] for w, h in zip(self.speed_weights, HYPOTHESES, strict=True))

    @property
    def speed(self) -> float:
        """Posterior mean speed factor (1 = the fitted learn rates)."""
        return self._mean(0)

    @property
    def prior_knowledge(self) -> float:
        """Posterior mean prior-knowledge scale (1 = the skills' priors, 0 = starting from scratch)."""
        return self._mean(1)

    @property
    def memory_scale(self) -> float:
        """Posterior mean memory scale (1 = as FSRS's defaults predict; below 1: forgets faster)."""
        return self._mean(2)


def estimate_of(
    weights: Sequence[float],
    p_by_hypothesis: Sequence[float],
    memory: Memory | None,
    now: datetime,
    rules: MasteryRules = DEFAULT_RULES,
) -> float:
    """The mastery estimate in [0, 1] from its stored parts: P(L) x predicted recall at ``now``, averaged
    over the hypotheses."""
    if len(p_by_hypothesis) != len(weights):
        raise ValueError("p_by_hypothesis and weights differ in length")
    if memory is None:
        return _probability(sum(map(mul, weights, p_by_hypothesis)))
    levels = recall_by_hypothesis(memory, now, rules)
    return _probability(sum(map(mul, map(mul, weights, levels), p_by_hypothesis)))


def status_of(
    state: SkillState | None, estimate: float, rules: MasteryRules = DEFAULT_RULES
) -> MasteryStatus:
    """The one rule for a skill's status, from its state and its mastery estimate now."""
    return status_from(
        state.attempts if state else 0, state is not None and state.mastered_at is not None, estimate, rules
    )


def status_from(
    attempts: int, earned: bool, estimate: float, rules: MasteryRules = DEFAULT_RULES
) -> MasteryStatus:
    """``status_of`` from plain numbers (reports read them from SQL rows)."""
    if attempts == 0:
        return MasteryStatus.NOT_STARTED
    if not earned:
        return MasteryStatus.LEARNING
    if estimate >= rules.review_level:
        return MasteryStatus.MASTERED
    if estimate >= rules.relearn_level:
        return MasteryStatus.DUE_FOR_REVIEW
    return MasteryStatus.NEEDS_RELEARNING


@dataclass(frozen=True, slots=True)
class TraceStep:
    skill_id: str
    p_mastery_before: float  # standard BKT
    p_correct: float  # standard BKT prediction before the answer (pyBKT's correct_predictions)
    p_mastery_after: float  # standard BKT
    p_mastery_paced_after: float  # paced P(L) after the answer
    mastered: bool  # status "mastered" right after the answer
    estimate_before: float = 0.0  # the mastery estimate just before the answer (what the screen showed)
    estimate_after: float = 0.0  # ... and right after it


def _earn(state: SkillState, estimate: float, now: datetime, rules: MasteryRules) -> None:
    if state.mastered_at is None and estimate >= rules.threshold and state.correct_count >= rules.min_correct:
        state.mastered_at, state.attempts_at_mastery = now, state.attempts
        if state.memory is None:
            state.memory = memory_model.start_memory(now, rules.memory_weights)


def total_variation(a: Sequence[float], b: Sequence[float]) -> float:
    """Total variation distance between two posteriors over the hypotheses."""
    return 0.5 * sum(abs(x - y) for x, y in zip(a, b, strict=True))


def posterior_after(
    model: StudentModel,
    skill_ids: Sequence[str],
    correct: bool,
    params: Mapping[str, BktParams],
    *,
    now: datetime,
    rules: MasteryRules = DEFAULT_RULES,
) -> list[float] | None:
    """The hypothesis posterior after this answer (None: no hypothesis explains it, the posterior stays).
    Changes nothing, and needs only the answered skills' states: an answer's caller can work out the pace
    drift (``total_variation``) before reading any other skill."""
    likelihood = [1.0] * len(HYPOTHESES)
    for skill_id in skill_ids:
        skill_params = params[skill_id]
        p_by_hypothesis = model._p_by_hypothesis(skill_id, skill_params)
        found = model.skills.get(skill_id)
        if found is not None and found.memory is not None:  # forgetting since the last review first
            levels = recall_by_hypothesis(found.memory, now, rules)
            p_by_hypothesis = [p * r for p, r in zip(p_by_hypothesis, levels, strict=True)]
        for i, hp in enumerate(_hypothesis_params(skill_params, rules)):
            p_correct = predict_correct(p_by_hypothesis[i], hp)
            likelihood[i] *= p_correct if correct else 1.0 - p_correct
    weighted = [w * lk for w, lk in zip(model.speed_weights, likelihood, strict=True)]
    total = sum(weighted)
    if total > 0 and math.isfinite(total):
        return [w / total for w in weighted]
    return None


def apply_answer(
    model: StudentModel,
    skill_ids: Sequence[str],
    correct: bool,
    params: Mapping[str, BktParams],
    *,
    now: datetime,
    rules: MasteryRules = DEFAULT_RULES,
) -> list[TraceStep]:
    """Update the model with one answer to an exercise tagged with ``skill_ids``.

    ``correct`` is the answer as evidence (a right answer after a hint counts as wrong).
    Every tagged skill sees the same observation (as pyBKT does with one row per skill), so
    the answer's likelihood under a hypothesis is the product over those per-skill
    observations. Forgetting since the last review is applied first, then the posterior
    over hypotheses is updated with the states before the answer, then each state.
    """
    model.index_pace_checks()  # from the levels before this answer's skills change (a no-op after)
    posterior = posterior_after(model, skill_ids, correct, params, now=now, rules=rules)
    states = [model.state(s, params[s]) for s in skill_ids]
    before = [model.estimate(s, params[s], now, rules) for s in skill_ids]
    hypothesis_params = [_hypothesis_params(params[s], rules) for s in skill_ids]
    for state in states:
        if state.memory is not None:
            levels = recall_by_hypothesis(state.memory, now, rules)
            state.p_by_speed = [p * r for p, r in zip(state.p_by_speed, levels, strict=True)]
    if posterior is not None:
        model.pace_drift += total_variation(posterior, model.speed_weights)
        model.speed_weights = posterior

    steps = []
    for state, skill_id, hps, shown in zip(states, skill_ids, hypothesis_params, before, strict=True):
        skill_params = params[skill_id]
        standard_before = state.belief
        state.p_mastery, state.p_not_mastered = belief_after(standard_before, correct, skill_params)
        state.p_by_speed = [
            update_mastery(p, correct, hp) for p, hp in zip(state.p_by_speed, hps, strict=True)
        ]
        state.attempts += 1
        state.correct_count += int(correct)
        state.last_practiced_at = now
        if state.mastered_at is not None:
            if correct:
                state.review_successes += 1
            if state.memory is not None:
                state.memory = memory_model.review(state.memory, correct, now, rules.memory_weights)
        elif rules.memory_before_mastery and correct:
            # Before the skill is earned a wrong answer is not a lapse of a memory (BKT reads it as not
            # learned yet); a right one is a retrieval.
            state.memory = (
                memory_model.start_memory(now, rules.memory_weights)
                if state.memory is None
                else memory_model.review(state.memory, True, now, rules.memory_weights)
            )
        paced = model.paced(skill_id, skill_params)
        _earn(state, model.estimate(skill_id, skill_params, now, rules), now, rules)
        after = model.estimate(skill_id, skill_params, now, rules)
        steps.append(
            TraceStep(
                skill_id,
                standard_before.known,
                predict_from(standard_before, skill_params),
                state.p_mastery,
                paced,
                status_of(state, after, rules) == MasteryStatus.MASTERED,
                shown,
                after,
            )
        )
    for step, state in zip(steps, states, strict=True):
        model.set_pace_check(step.skill_id, pace_slack(state, model.speed_weights, now, rules))
    # A new posterior moves every skill's estimate: record skills earned that way too (on the estimate now:
    # old evidence of a skill not practised since has faded). Only the skills the posterior's drift may have
    # brought to the threshold are looked at (``pace_slack``): an answer's cost does not grow with the skills.
    for skill_id in model.due_pace_checks():
        if skill_id not in params:
            continue
        state = model.skills[skill_id]
        _earn(state, model.estimate(skill_id, params[skill_id], now, rules), now, rules)
        model.set_pace_check(skill_id, pace_slack(state, model.speed_weights, now, rules))
    return steps
