"""Bayesian knowledge tracing: the per-answer update, in O(1).

Notation (all probabilities in [0, 1]):
    prior  P(L0)  probability the skill is known before the first opportunity
    learn  P(T)   probability of moving from unknown to known after an opportunity
    guess  P(G)   probability of a correct answer while the skill is unknown
    slip   P(S)   probability of an incorrect answer while the skill is known
    forget P(F)   probability of moving from known to unknown (0 in standard BKT)

``p`` is always P(L) *before* the next response, which is what pyBKT's
``predict()`` calls ``state_predictions``; the tracker stores that value so that
replaying a log reproduces pyBKT row for row.

A ``Belief`` carries P(L) and P(not L) as two numbers, as pyBKT's forward pass carries its two state
probabilities: with forget = 0 a long run of right answers takes P(not L) below 1e-16, where P(L) alone
rounds to exactly 1.0 and no wrong answer could move it again. Each side keeps its own precision.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

from app.domain.errors import InvalidParameters

DEFAULT_MASTERY_THRESHOLD = 0.95
PARAMETER_NAMES = ("prior", "learn", "guess", "slip", "forget")


@dataclass(frozen=True, slots=True)
class BktParams:
    prior: float
    learn: float
    guess: float
    slip: float
    forget: float = 0.0
    # Estimated from answers (fit-params), not a content author's guess: the decision model trusts its
    # guess rate instead of flooring it (tracking.MasteryRules.guess_floor).
    fitted: bool = False

    def values(self) -> dict[str, float]:
        """The five parameters by name (what pyBKT fits and the database stores)."""
        return {name: float(getattr(self, name)) for name in PARAMETER_NAMES}

    @classmethod
    def of(cls, values: Mapping[str, float], *, fitted: bool = False) -> BktParams:
        """From a mapping of the five parameter names (pyBKT's fits, stored rows)."""
        return cls(
            prior=float(values["prior"]),
            learn=float(values["learn"]),
            guess=float(values["guess"]),
            slip=float(values["slip"]),
            forget=float(values.get("forget", 0.0)),
            fitted=fitted,
        )

    def __post_init__(self) -> None:
        problems = parameter_problems({n: getattr(self, n) for n in PARAMETER_NAMES})
        if problems:
            raise InvalidParameters("; ".join(problems))


def parameter_problems(values: Mapping[str, object]) -> list[str]:
    """Why these parameters cannot drive a tracker (empty list when they can).

    Guess or slip at 0.5 or above makes a correct answer lower P(L) (or an
    incorrect one raise it): the model would punish right answers, so such
    parameters are refused rather than clamped.
    """
    problems = []
    for name in PARAMETER_NAMES:
        value = values.get(name, 0.0)
        if (
            isinstance(value, bool)
            or not isinstance(value, int | float)
            or math.isnan(value)
            or not 0.0 <= value <= 1.0
        ):
            problems.append(f"{name} must be a probability in [0, 1], got {value!r}")
    if problems:
        return problems
    for name in ("guess", "slip"):
        if values.get(name, 0.0) >= 0.5:  # type: ignore[operator]
            problems.append(
                f"{name} must be below 0.5 (got {values[name]}): a correct answer would lower mastery"
            )
    return problems


class Belief(NamedTuple):
    """P(L) and P(not L) before the next response (they sum to 1 but are kept apart: see the module)."""

    known: float
    unknown: float

    @classmethod
    def of(cls, p: float) -> Belief:
        return cls(p, 1.0 - p)


def predict_from(belief: Belief, params: BktParams) -> float:
    """P(correct) on the next response."""
    return belief.known * (1.0 - params.slip) + belief.unknown * params.guess


def belief_after(belief: Belief, correct: bool, params: BktParams) -> Belief:
    """The belief before the next response, given this one's outcome: the posterior, then the transition."""
    if correct:
        known = belief.known * (1.0 - params.slip)
        unknown = belief.unknown * params.guess
    else:
        known = belief.known * params.slip
        unknown = belief.unknown * (1.0 - params.guess)
    total = known + unknown
    if total == 0.0:  # guess or slip at 0 or 1 and an impossible observation: keep the belief
        known, unknown = belief
    else:
        known, unknown = known / total, unknown / total
    return Belief(
        known * (1.0 - params.forget) + unknown * params.learn,
        known * params.forget + unknown * (1.0 - params.learn),
    )


def predict_correct(p: float, params: BktParams) -> float:
    """P(correct) on the next response, given P(L) = ``p`` before it."""
    return p * (1.0 - params.slip) + (1.0 - p) * params.guess


def posterior(p: float, correct: bool, params: BktParams) -> float:
    """P(L) after observing one response, before the learning transition."""
    if correct:
        known = p * (1.0 - params.slip)
        unknown = (1.0 - p) * params.guess
    else:
        known = p * params.slip
        unknown = (1.0 - p) * (1.0 - params.guess)
    total = known + unknown
    # Only reachable with guess or slip at 0 or 1 and an impossible observation;
    # keep the prior belief instead of dividing by zero.
    return p if total == 0.0 else known / total


def transition(p: float, params: BktParams) -> float:
    """P(L) at the next opportunity, after learning (and forgetting) may happen."""
    return p * (1.0 - params.forget) + (1.0 - p) * params.learn


def update_mastery(p: float, correct: bool, params: BktParams) -> float:
    """P(L) before the next response, given P(L) = ``p`` before this one and its outcome (when P(not L) is
    1 - p to double precision; else carry a ``Belief``)."""
    return belief_after(Belief.of(p), correct, params).known


@dataclass(frozen=True, slots=True)
class TraceStep:
    """One replayed response: the predictions made *before* it, and the state after."""

    p_mastery_before: float
    p_correct: float
    p_mastery_after: float


def trace(outcomes: Iterable[bool], params: BktParams, p: float | None = None) -> list[TraceStep]:
    """Replay a sequence of outcomes on one skill, starting from ``p`` (default: the prior)."""
    state = Belief.of(params.prior if p is None else p)
    steps = []
    for correct in outcomes:
        after = belief_after(state, correct, params)
        steps.append(TraceStep(state.known, predict_from(state, params), after.known))
        state = after
    return steps


def is_mastered(p: float, threshold: float = DEFAULT_MASTERY_THRESHOLD) -> bool:
    return p >= threshold
