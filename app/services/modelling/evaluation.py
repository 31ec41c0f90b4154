"""Held-out evaluation of the tracker: fit on some students, predict the others with the online tracker."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from app.domain.bkt import BktParams, predict_correct, update_mastery
from app.domain.metrics import CalibrationBin, Scores, calibration_table, score
from app.services.modelling.fitting import FitError, fit_frame, fits_as_params, response_frame
from app.services.tutoring.content import read_snapshot


def split_students(users: list[str], test_fraction: float, seed: int) -> set[str]:
    """A seeded, reproducible choice of held-out students (whole students, never single rows)."""
    if not 0 < test_fraction < 1:
        raise FitError(f"test fraction must be between 0 and 1, got {test_fraction}")
    ordered = sorted(users)
    rng = np.random.default_rng(seed)
    n_test = max(1, round(len(ordered) * test_fraction))
    return {ordered[i] for i in rng.permutation(len(ordered))[:n_test]}


def predict_frame(frame: pd.DataFrame, params: dict[str, BktParams]) -> pd.DataFrame:
    """P(correct) and P(L) before each row, traced per (student, skill) in answer order."""
    ordered = frame[frame["skill_name"].isin(params)].sort_values(["order_id"], kind="mergesort")
    p_correct = np.empty(len(ordered))
    p_state = np.empty(len(ordered))
    state: dict[tuple[str, str], float] = {}
    for i, (user, skill, correct) in enumerate(
        zip(ordered["user_id"], ordered["skill_name"], ordered["correct"], strict=True)
    ):
        skill_params = params[skill]
        p = state.get((user, skill), skill_params.prior)
        p_state[i] = p
        p_correct[i] = predict_correct(p, skill_params)
        state[(user, skill)] = update_mastery(p, bool(correct), skill_params)
    return ordered.assign(correct_predictions=p_correct, state_predictions=p_state)


@dataclass
class EvaluationReport:
    n_train_students: int
    n_test_students: int
    overall: Scores
    per_skill: dict[str, Scores]
    calibration: list[CalibrationBin]
    # the parameters each scored skill was traced with
    params: dict[str, BktParams] = field(default_factory=dict)
    unscored_skills: dict[str, int] = field(default_factory=dict)
    # skills whose training fit was degenerate, scored with their current parameters
    kept_current: list[str] = field(default_factory=list)


def evaluate_model(
    session: Session,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    num_fits: int = 5,
    forgets: bool = False,
    n_jobs: int | None = None,
) -> EvaluationReport:
    frame = response_frame(session)
    if frame.empty:
        raise FitError("no responses to evaluate")
    users = list(frame["user_id"].unique())
    if len(users) < 2:
        raise FitError("need at least 2 students to hold some out")
    test_users = split_students(users, test_fraction, seed)
    test_mask = frame["user_id"].isin(test_users)
    fits = fit_frame(frame[~test_mask], forgets=forgets, num_fits=num_fits, seed=seed, n_jobs=n_jobs)
    # Like fit-params: a rejected (degenerate) fit leaves the skill on its current parameters.
    current = read_snapshot(session).params
    rejected = {f.skill_id for f in fits if f.problems}
    params = {
        **{s: current[s] for s in rejected if s in current},
        **fits_as_params([f for f in fits if not f.problems]),
    }
    test = frame[test_mask]
    predicted = predict_frame(test, params)
    unscored = test[~test["skill_name"].isin(params)]["skill_name"].value_counts()
    per_skill = {
        str(skill): score(rows["correct"].to_numpy(), rows["correct_predictions"].to_numpy())
        for skill, rows in predicted.groupby("skill_name", sort=True)
    }
    y, p = predicted["correct"].to_numpy(), predicted["correct_predictions"].to_numpy()
    return EvaluationReport(
        n_train_students=len(users) - len(test_users),
        n_test_students=len(test_users),
        overall=score(y, p) if len(y) else Scores(0, math.nan, math.nan, math.nan, math.nan),
        per_skill=per_skill,
        calibration=calibration_table(y, p),
        unscored_skills={str(s): int(n) for s, n in unscored.items()},
        kept_current=sorted(rejected),
        params=params,
    )
