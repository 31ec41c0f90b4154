"""What an experiment is, and which arm a unit is in.

An experiment compares tutoring policies (arms) on units -- students, or whole classes (cluster
randomization). Assignment is a pure function of the experiment's key and the unit's id: the same
answer in every process, on every machine, in every session, so a service may compute it at first
exposure and persist it; nothing here keeps state.

Two schemes:

* ``assign(key, unit, arms)`` without ``position``: a SHA-256 hash of (key, unit) read as a uniform
  number in [0, 1) picks an arm by cumulative weight. Stable and weight-respecting in expectation; with
  few units the split can be uneven (20 classes at 1:1 split 7:13 about one time in ten).
* Balanced (permuted blocks): when the service knows the unit's arrival order within its block (the
  k-th student of class 7B to be exposed), ``assign(..., block="7B", position=k)`` deals arms from a
  sequence of shuffled blocks of size sum(weights) (integer weights), each shuffle seeded by a hash of
  (key, block, block number). Every complete block holds exactly the planned counts, so at any moment a
  block's arms differ from the plan by less than one block. Stable as long as the position is the one
  persisted at first exposure (the service's job). ``assign_roster`` assigns a whole known roster at
  once (e.g. the classes of a school), ordering it by hash so the order in which ids are listed does
  not matter.
"""

from __future__ import annotations

import hashlib
import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from app.domain.experiments.outcomes import OUTCOMES

UNITS = ("student", "class")


@dataclass(frozen=True)
class Arm:
    """One condition: a policy (a name from ``selection.POLICIES``) and its settings."""

    name: str
    policy: str
    weight: float = 1.0  # allocation weight (> 0); balanced assignment needs whole numbers
    settings: Mapping[str, object] = field(default_factory=dict)
    is_control: bool = False  # today's default; effects are measured against it

    def __post_init__(self) -> None:
        if not self.name:
            raise ValueError("an arm needs a name")
        if not (self.weight > 0 and math.isfinite(self.weight)):
            raise ValueError(f"weight of arm {self.name!r} must be > 0, got {self.weight}")


@dataclass(frozen=True)
class ExperimentPlan:
    """Everything fixed before the experiment starts (a fixed-horizon design: see docs/EXPERIMENTS.md).

    ``minimum_effect`` is the smallest effect worth detecting, in the primary outcome's units (post-test
    share correct: 0.05 = 5 points); the report says "not enough data" when the sample's power to detect
    it at ``alpha`` is below ``minimum_power``.
    """

    key: str  # stable identifier hashed into every assignment; never reused
    arms: tuple[Arm, ...]
    unit: str = "student"  # "student" | "class"
    block_by: str | None = None  # e.g. "class": student-level assignment balanced within each class
    primary_outcome: str = "post_test"
    secondary_outcomes: tuple[str, ...] = ()
    starts_at: datetime | None = None
    ends_at: datetime | None = None  # the planned horizon: no significance verdict before it
    planned_units: int | None = None  # planned number of units (students or classes), all arms
    minimum_effect: float = 0.05
    minimum_power: float = 0.8
    alpha: float = 0.05
    dropout_after_days: float = 14.0  # no activity for this long before the horizon: dropped out

    def __post_init__(self) -> None:
        problems = []
        if len(self.arms) < 2:
            problems.append("an experiment needs at least two arms")
        names = [a.name for a in self.arms]
        if len(set(names)) != len(names):
            problems.append(f"arm names must be unique, got {names}")
        if sum(a.is_control for a in self.arms) > 1:
            problems.append("at most one arm is the control")
        if self.unit not in UNITS:
            problems.append(f"unit must be one of {list(UNITS)}, got {self.unit!r}")
        if self.block_by is not None and self.unit == "class":
            problems.append("blocking is for student-level assignment (a class cannot be blocked by class)")
        for outcome in (self.primary_outcome, *self.secondary_outcomes):
            if outcome not in OUTCOMES:
                problems.append(f"unknown outcome {outcome!r} (known: {sorted(OUTCOMES)})")
        if self.primary_outcome in self.secondary_outcomes:
            problems.append("the primary outcome cannot also be secondary")
        if not 0 < self.alpha < 1 or not 0 < self.minimum_power < 1:
            problems.append("alpha and minimum_power must be in (0, 1)")
        if not self.minimum_effect > 0:
            problems.append("minimum_effect must be > 0")
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            problems.append("ends_at must be after starts_at")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def control(self) -> Arm:
        """The arm effects are measured against: the one marked control, else the first."""
        return next((a for a in self.arms if a.is_control), self.arms[0])

    @property
    def weights(self) -> dict[str, float]:
        return {a.name: a.weight for a in self.arms}

    def assign(self, unit_id: str, *, block: str | None = None, position: int | None = None) -> str:
        """The arm name of ``unit_id`` in this experiment (see ``assign``)."""
        return assign(
            self.key,
            unit_id,
            [a.name for a in self.arms],
            [a.weight for a in self.arms],
            block=block,
            position=position,
        )


def _uniform(*parts: str) -> float:
    """A number in [0, 1) from a SHA-256 of the parts (independent of PYTHONHASHSEED and the process)."""
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def _check(arms: Sequence[str], weights: Sequence[float] | None) -> list[float]:
    if not arms:
        raise ValueError("no arms")
    if len(set(arms)) != len(arms):
        raise ValueError("arm names must be unique")
    chosen = [1.0] * len(arms) if weights is None else [float(w) for w in weights]
    if len(chosen) != len(arms) or not all(w > 0 and math.isfinite(w) for w in chosen):
        raise ValueError("one positive weight per arm is needed")
    return chosen


def _whole(weights: Sequence[float]) -> list[int]:
    whole = [int(w) for w in weights]
    if any(w != i for w, i in zip(weights, whole, strict=True)) or sum(whole) > 1000:
        raise ValueError(f"balanced assignment needs whole-number weights (sum at most 1000), got {weights}")
    return whole


def _block_sequence(
    key: str, block: str, number: int, arms: Sequence[str], whole: Sequence[int]
) -> list[str]:
    deck = [arm for arm, count in zip(arms, whole, strict=True) for _ in range(count)]
    random.Random(f"experiment-block:{key}\x1f{block}\x1f{number}").shuffle(deck)
    return deck


def assign(
    experiment_key: str,
    unit_id: str,
    arms: Sequence[str],
    weights: Sequence[float] | None = None,
    block: str | None = None,
    position: int | None = None,
) -> str:
    """The arm of ``unit_id``: deterministic, the same in every process and session.

    Without ``position``: by hash, arm i with probability weights[i] / sum(weights) (``block`` does not
    change the answer, so a student who moves class keeps their arm). With ``position`` (0-based arrival
    order of the unit within ``block``, persisted by the caller): permuted blocks, exactly balanced in
    every complete block of sum(weights) units; needs whole-number weights.
    """
    chosen = _check(arms, weights)
    if position is not None:
        if position < 0:
            raise ValueError("position must be >= 0")
        whole = _whole(chosen)
        size = sum(whole)
        deck = _block_sequence(experiment_key, block or "", position // size, arms, whole)
        return deck[position % size]
    u = _uniform("experiment", experiment_key, unit_id) * sum(chosen)
    total = 0.0
    for arm, weight in zip(arms, chosen, strict=True):
        total += weight
        if u < total:
            return arm
    return arms[-1]  # u * sum rounds up to the sum: the last arm


def assign_roster(
    experiment_key: str,
    unit_ids: Sequence[str],
    arms: Sequence[str],
    weights: Sequence[float] | None = None,
    block: str | None = None,
) -> dict[str, str]:
    """Balanced assignment of a whole known roster (the classes of a school, the students of a class).

    Units are put in the order of a hash of (key, block, id), then dealt by ``assign`` with that position:
    the result does not depend on the order of ``unit_ids``. Adding a unit later can move others, so a
    service assigns a roster once and persists it (late arrivals: ``assign`` with the next position).
    """
    if len(set(unit_ids)) != len(unit_ids):
        raise ValueError("unit ids must be unique")
    order = sorted(unit_ids, key=lambda u: (_uniform("roster", experiment_key, block or "", u), u))
    return {
        unit: assign(experiment_key, unit, arms, weights, block=block, position=i)
        for i, unit in enumerate(order)
    }


def allocation_counts(assigned: Mapping[str, str], arms: Sequence[str]) -> dict[str, int]:
    """How many units each arm has (arms without units at 0)."""
    counts = dict.fromkeys(arms, 0)
    for arm in assigned.values():
        counts[arm] = counts.get(arm, 0) + 1
    return counts
