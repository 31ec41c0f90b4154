"""Outcomes of an experiment, computed from per-student records the policy cannot game.

The policies under test choose the exercises, so their own answers and mastery declarations are not
a fair yardstick (Papoušek, Stanislav & Pelánek 2016): a policy that serves easy items looks accurate.
The primary outcome is therefore the delayed post-test on **probe items**: a small share of exercises,
the same for all arms, drawn at random from the skill pool and kept out of the selection's credit. The
pre-test probes at the start are the covariate. The other outcomes are secondary and, except dropout,
depend on the arm's own mastery rule -- read them as "cost" measures, not as proof of learning.

Definitions (per student; ``None`` = not measured, e.g. no probe answered, nothing mastered):

==================== ===================================================================== =========
outcome              definition                                                            units
==================== ===================================================================== =========
post_test            share of delayed post-test probes answered right                       [0, 1]
attempts_to_mastery  mean answers per skill mastered, over skills mastered                  answers
time_to_mastery      mean minutes of practice per skill mastered                            minutes
retention            share right at the first review of a mastered skill (a day or more on) [0, 1]
wheel_spinning       share of practised skills with >= 10 answers and no mastery            [0, 1]
dropout              1 if no activity in the last ``dropout_after_days`` before the horizon {0, 1}
==================== ===================================================================== =========
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

# name -> (plain words, higher is better)
OUTCOMES: dict[str, tuple[str, bool]] = {
    "post_test": ("delayed post-test score (probe items)", True),
    "attempts_to_mastery": ("answers needed to master a skill", False),
    "time_to_mastery": ("minutes of practice to master a skill", False),
    "retention": ("share right at the first review of a mastered skill", True),
    "wheel_spinning": ("share of skills practised 10+ times without mastery", False),
    "dropout": ("share of students who stopped practising", False),
}
SHARE_OUTCOMES = frozenset({"post_test", "retention", "wheel_spinning", "dropout"})
WHEEL_SPIN_ATTEMPTS = 10  # Beck & Gong 2013, as in simulation.py and fairness.py


@dataclass(frozen=True)
class SkillPractice:
    """One practised skill of one student (from the responses table; probes left out)."""

    attempts: int
    mastered_after: int | None = None  # answers until mastery was first declared; None = not mastered
    seconds_to_mastery: float | None = None  # practice time until then
    review_right: bool | None = None  # first review of the mastered skill, >= 1 day later; None = none


@dataclass(frozen=True)
class PracticeTotals:
    """What the outcomes need from a student's practice, summed over skills (a service may sum in SQL)."""

    skills_practised: int = 0
    skills_mastered: int = 0
    attempts_to_mastery: float = 0.0  # summed over mastered skills
    seconds_to_mastery: float = 0.0  # summed over mastered skills with a time
    timed_masteries: int = 0
    reviews: int = 0
    reviews_right: int = 0
    wheel_spinning_skills: int = 0


def total_practice(skills: Iterable[SkillPractice]) -> PracticeTotals:
    """Sum a student's per-skill practice into ``PracticeTotals``."""
    practised = mastered = timed = reviews = right = spinning = 0
    attempts = seconds = 0.0
    for s in skills:
        if s.attempts <= 0:
            continue
        practised += 1
        if s.mastered_after is not None:
            mastered += 1
            attempts += s.mastered_after
            if s.seconds_to_mastery is not None:
                timed += 1
                seconds += s.seconds_to_mastery
            if s.review_right is not None:
                reviews += 1
                right += int(s.review_right)
        elif s.attempts >= WHEEL_SPIN_ATTEMPTS:
            spinning += 1
    return PracticeTotals(practised, mastered, attempts, seconds, timed, reviews, right, spinning)


@dataclass(frozen=True)
class StudentRecord:
    """One assigned student, as the service reads them at analysis time.

    ``arm`` is the arm ASSIGNED (intention to treat), whatever the student was actually served.
    ``unit_id`` is the unit of assignment: the student's id, or their class id under cluster
    randomization. ``cluster`` is the class the student practised in (None if unknown): the analysis
    clusters on it whenever it is known, since classmates share a teacher and a timetable.
    ``groups`` holds consented group attributes (attribute -> group) for effects by group.
    """

    student_id: str
    unit_id: str
    arm: str
    cluster: str | None = None
    block: str | None = None
    groups: Mapping[str, str] = field(default_factory=dict)
    pre_right: int = 0  # pre-test probes answered right / answered
    pre_answered: int = 0
    post_right: int = 0  # delayed post-test probes
    post_answered: int = 0
    practice: PracticeTotals = field(default_factory=PracticeTotals)
    last_active: datetime | None = None

    @property
    def pre_test(self) -> float | None:
        return self.pre_right / self.pre_answered if self.pre_answered else None


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def student_outcomes(
    record: StudentRecord,
    horizon: datetime | None,
    dropout_after_days: float,
    names: Collection[str] | None = None,
) -> dict[str, float | None]:
    """The outcomes ``names`` (default: every one of ``OUTCOMES``) of one student (units: module table)."""
    if names is not None and set(names) <= {"post_test"}:  # the common case, kept cheap
        return {"post_test": _ratio(record.post_right, record.post_answered)}
    p = record.practice
    if record.last_active is None:
        dropped: float | None = 1.0
    elif horizon is None:
        dropped = None  # no horizon, no notion of "stopped early"
    else:
        dropped = float(horizon - record.last_active > timedelta(days=dropout_after_days))
    minutes = _ratio(p.seconds_to_mastery / 60.0, p.timed_masteries)
    outcomes = {
        "post_test": _ratio(record.post_right, record.post_answered),
        "attempts_to_mastery": _ratio(p.attempts_to_mastery, p.skills_mastered),
        "time_to_mastery": minutes,
        "retention": _ratio(p.reviews_right, p.reviews),
        "wheel_spinning": _ratio(p.wheel_spinning_skills, p.skills_practised),
        "dropout": dropped,
    }
    wanted = OUTCOMES if names is None else names
    return {k: (v if v is None or math.isfinite(v) else None) for k, v in outcomes.items() if k in wanted}
