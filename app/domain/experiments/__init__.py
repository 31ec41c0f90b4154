"""Randomized experiments between tutoring policies (issue 22): the pure statistical core.

``design``: arms, the plan, deterministic assignment. ``outcomes``: per-student records and the
outcomes computed from them. ``analysis``: the report (imports statsmodels, so it is not imported
here: the live path that only assigns arms does not load it). ``harness``: experiments in the
simulated world with a planted truth. See docs/EXPERIMENTS.md.
"""

from app.domain.experiments.design import Arm, ExperimentPlan, allocation_counts, assign, assign_roster
from app.domain.experiments.outcomes import (
    OUTCOMES,
    PracticeTotals,
    SkillPractice,
    StudentRecord,
    student_outcomes,
    total_practice,
)

__all__ = [
    "OUTCOMES",
    "Arm",
    "ExperimentPlan",
    "PracticeTotals",
    "SkillPractice",
    "StudentRecord",
    "allocation_counts",
    "assign",
    "assign_roster",
    "student_outcomes",
    "total_practice",
]
