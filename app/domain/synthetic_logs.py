"""Response logs drawn from known BKT parameters: for checking that a fit recovers them and predicts well.

A sparse log is the hard case for fitting: most students answer a skill once or twice, so EM sees few
transitions per skill (an engineering-statics log with one skill per question looks like this). The
generator is seeded; the same arguments give the same log.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.domain.bkt import BktParams


@dataclass(frozen=True, slots=True)
class LogRow:
    order: int  # position in the whole log (answer order), from 1
    student: str
    skill: str
    correct: bool


@dataclass(frozen=True)
class SyntheticLog:
    rows: list[LogRow]
    truth: dict[str, BktParams]  # skill -> the parameters the answers were drawn from


def draw_skill_params(n_skills: int, seed: int, *, forget: float = 0.0) -> dict[str, BktParams]:
    """``n_skills`` skills named ``k000``, ... with parameters drawn from ranges typical of fitted tutors:
    prior 0.2-0.7, learn 0.05-0.3, guess 0.1-0.3, slip 0.05-0.2 (``forget`` for each)."""
    rng = np.random.default_rng(seed)
    return {
        f"k{i:03d}": BktParams(
            prior=float(rng.uniform(0.2, 0.7)),
            learn=float(rng.uniform(0.05, 0.3)),
            guess=float(rng.uniform(0.1, 0.3)),
            slip=float(rng.uniform(0.05, 0.2)),
            forget=forget,
        )
        for i in range(n_skills)
    }


def sparse_log(
    truth: dict[str, BktParams],
    *,
    n_students: int,
    skills_per_student: int,
    answers: Sequence[float] = (0.6, 0.25, 0.05, 0.05, 0.05),
    seed: int,
) -> SyntheticLog:
    """Each student practises ``skills_per_student`` skills (a random choice) and answers each of them
    ``n`` times, ``n`` drawn with probabilities ``answers`` for 1, 2, 3, ... (default: 60 % once, 25 %
    twice); a student's answers across skills come interleaved in a random order. Answers follow BKT with
    the skill's ``truth``: known with P(L), correct with 1 - slip if known and guess if not, then learning
    (and forgetting) between opportunities."""
    rng = np.random.default_rng(seed)
    skills = sorted(truth)
    weights = np.asarray(answers, dtype=float) / float(np.sum(answers))
    rows: list[LogRow] = []
    order = 0
    for s in range(n_students):
        student = f"s{s:05d}"
        chosen = rng.choice(len(skills), size=min(skills_per_student, len(skills)), replace=False)
        queue: list[str] = []
        for index in chosen:
            queue += [skills[int(index)]] * (1 + int(rng.choice(len(weights), p=weights)))
        known = {skills[int(i)]: bool(rng.random() < truth[skills[int(i)]].prior) for i in chosen}
        for position in rng.permutation(len(queue)):
            skill = queue[int(position)]
            params = truth[skill]
            correct = bool(rng.random() < (1.0 - params.slip if known[skill] else params.guess))
            order += 1
            rows.append(LogRow(order, student, skill, correct))
            if known[skill]:
                known[skill] = not rng.random() < params.forget
            else:
                known[skill] = bool(rng.random() < params.learn)
    return SyntheticLog(rows, truth)
