"""The student model: per-skill BKT state plus the student's own pace, updated in O(1) per answer.

Two estimates are kept side by side:

* ``p_mastery`` -- standard BKT P(L) under the skill's parameters: exactly what pyBKT
  computes (``state_predictions``), kept for agreement with pyBKT and for reports.
* ``p_mastery_paced`` -- P(L) with the student's learning speed inferred from their own
  answers (individualized BKT): a small discrete posterior over speed factors k, each
  turning the skill's learn rate into ``1 - (1 - learn)^k`` (k opportunities' worth of
  learning). Per skill, P(L | k) is tracked for every k; each answer re-weights the
  speeds by its likelihood under each. Because k is one constant per student shared by
  all skills, this is exact Bayesian filtering of that mixture model. This estimate
  drives the mastered flag and the choice of exercise, so slow learners are not declared
  mastered early and fast learners are not held back. Pace never comes from group
  membership: only from answers.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from functools import lru_cache

from app.domain.bkt import BktParams, predict_correct, update_mastery

SPEEDS: tuple[float, ...] = (0.25, 0.5, 1.0, 2.0, 4.0)
# Most students learn near the fitted rate; a few at a quarter of it or four times it.
SPEED_PRIOR: tuple[float, ...] = (0.1, 0.2, 0.4, 0.2, 0.1)


def _probability(x: float) -> float:
    """A weighted average of probabilities, without the rounding that can put it at 1 + 2e-16."""
    return min(1.0, max(0.0, x))


@lru_cache(maxsize=4096)
def params_at_speed(params: BktParams, speed: float) -> BktParams:
    """The skill's parameters for a learner ``speed`` times as fast (learn rate only)."""
    if speed == 1.0:
        return params
    return replace(params, learn=1.0 - (1.0 - params.learn) ** speed)


@dataclass
class SkillState:
    p_mastery: float  # standard BKT P(L) before the next response
    p_by_speed: list[float]  # P(L | speed k) before the next response, one per SPEEDS
    attempts: int = 0
    correct_count: int = 0
    mastered_at: datetime | None = None  # first time p_mastery_paced reached the threshold
    attempts_at_mastery: int | None = None  # attempts on the skill at that moment
    last_practiced_at: datetime | None = None
    review_successes: int = 0  # correct answers given while already mastered

    @classmethod
    def fresh(cls, params: BktParams) -> SkillState:
        return cls(params.prior, [params.prior] * len(SPEEDS))


@dataclass
class StudentModel:
    speed_weights: list[float] = field(default_factory=lambda: list(SPEED_PRIOR))
    skills: dict[str, SkillState] = field(default_factory=dict)

    def state(self, skill_id: str, params: BktParams) -> SkillState:
        found = self.skills.get(skill_id)
        if found is None:
            found = self.skills[skill_id] = SkillState.fresh(params)
        return found

    def paced(self, skill_id: str, params: BktParams) -> float:
        """P(L) averaged over the student's speed posterior (the prior when never practised)."""
        found = self.skills.get(skill_id)
        if found is None:
            return params.prior
        return _probability(sum(w * p for w, p in zip(self.speed_weights, found.p_by_speed, strict=True)))

    def paced_correct(self, skill_id: str, params: BktParams) -> float:
        """Predicted P(correct) on the skill under the speed posterior."""
        found = self.skills.get(skill_id)
        p_by_speed = found.p_by_speed if found else [params.prior] * len(SPEEDS)
        return _probability(sum(
            w * predict_correct(p, params_at_speed(params, k))
            for w, p, k in zip(self.speed_weights, p_by_speed, SPEEDS, strict=True)
        ))

    def expected_gain(self, skill_id: str, params: BktParams) -> float:
        """Expected rise of paced P(L) from one more opportunity on the skill.

        The posterior is a martingale, so the gain is the learning transition alone:
        (1 - p) * learn - p * forget, averaged over speeds.
        """
        found = self.skills.get(skill_id)
        p_by_speed = found.p_by_speed if found else [params.prior] * len(SPEEDS)
        return sum(
            w * ((1 - p) * params_at_speed(params, k).learn - p * params.forget)
            for w, p, k in zip(self.speed_weights, p_by_speed, SPEEDS, strict=True)
        )

    @property
    def speed(self) -> float:
        """Posterior mean speed factor (1 = the fitted learn rates)."""
        return sum(w * k for w, k in zip(self.speed_weights, SPEEDS, strict=True))


@dataclass(frozen=True, slots=True)
class TraceStep:
    skill_id: str
    p_mastery_before: float
    p_correct: float  # standard BKT prediction before the answer (pyBKT's correct_predictions)
    p_mastery_after: float
    p_mastery_paced_after: float
    mastered: bool  # by the paced estimate, which drives decisions


def apply_answer(
    model: StudentModel,
    skill_ids: Sequence[str],
    correct: bool,
    params: Mapping[str, BktParams],
    *,
    now: datetime,
    threshold: float,
) -> list[TraceStep]:
    """Update the model with one answer to an exercise tagged with ``skill_ids``.

    Every tagged skill sees the same observation (as pyBKT does with one row per skill), so
    the answer's likelihood under a speed is the product over those per-skill observations.
    The speed posterior is updated first, using the states *before* the answer.
    """
    states = [model.state(s, params[s]) for s in skill_ids]
    likelihood = [1.0] * len(SPEEDS)
    for state, skill_id in zip(states, skill_ids, strict=True):
        for i, k in enumerate(SPEEDS):
            p_correct = predict_correct(state.p_by_speed[i], params_at_speed(params[skill_id], k))
            likelihood[i] *= p_correct if correct else 1.0 - p_correct
    weighted = [w * lk for w, lk in zip(model.speed_weights, likelihood, strict=True)]
    total = sum(weighted)
    if total > 0 and math.isfinite(total):
        model.speed_weights = [w / total for w in weighted]

    steps = []
    for state, skill_id in zip(states, skill_ids, strict=True):
        skill_params = params[skill_id]
        was_mastered = state.mastered_at is not None
        before = state.p_mastery
        state.p_mastery = update_mastery(before, correct, skill_params)
        state.p_by_speed = [
            update_mastery(p, correct, params_at_speed(skill_params, k))
            for p, k in zip(state.p_by_speed, SPEEDS, strict=True)
        ]
        state.attempts += 1
        state.correct_count += int(correct)
        state.last_practiced_at = now
        if was_mastered and correct:
            state.review_successes += 1
        paced = model.paced(skill_id, skill_params)
        if state.mastered_at is None and paced >= threshold:
            state.mastered_at, state.attempts_at_mastery = now, state.attempts
        steps.append(TraceStep(skill_id, before, predict_correct(before, skill_params),
                               state.p_mastery, paced, paced >= threshold))
    # A new speed estimate moves every skill's paced P(L): record mastery reached that way too.
    for skill_id, state in model.skills.items():
        if state.mastered_at is None and skill_id in params:
            if model.paced(skill_id, params[skill_id]) >= threshold:
                state.mastered_at, state.attempts_at_mastery = now, state.attempts
    return steps
