"""Held-out evaluation of the tracker: fit on some students, predict the others with the online tracker;
or score a separate test log imported (for the time of the evaluation) under the trained parameters.

Every figure comes with the constant predictor's beside it (the training answers' mean correctness).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from sqlalchemy import Engine, case, func, select
from sqlalchemy.orm import Session

from app.domain.bkt import Belief, BktParams, belief_after, predict_from
from app.domain.logs import LogFormat
from app.domain.metrics import CalibrationBin, Scores, calibration_table, score
from app.domain.tracking import MasteryRules
from app.models import Response, ResponseSkill, SkillParameters, Student
from app.services.modelling.fitting import FitError, fit_frame, fits_as_params, response_frame
from app.services.people.accounts import create_school
from app.services.tutoring.content import read_snapshot

HOLDING_SCHOOL = "evaluation holding school"


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
    state: dict[tuple[str, str], Belief] = {}
    for i, (user, skill, correct) in enumerate(
        zip(ordered["user_id"], ordered["skill_name"], ordered["correct"], strict=True)
    ):
        skill_params = params[skill]
        belief = state.get((user, skill)) or Belief.of(skill_params.prior)
        p_state[i] = belief.known
        p_correct[i] = predict_from(belief, skill_params)
        state[(user, skill)] = belief_after(belief, bool(correct), skill_params)
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
    # the constant predictor (the training answers' mean correctness) on the same rows
    baseline: Scores | None = None
    constant: float = math.nan
    n_rows: int = 0  # held-out rows in all, scored or not
    # skill -> status / variant of its training fit (a split), or of its current version (a test log)
    status: dict[str, str] = field(default_factory=dict)

    @property
    def share_scored(self) -> float:
        return self.overall.n / self.n_rows if self.n_rows else math.nan

    @property
    def calibration_error(self) -> float:
        """Expected calibration error: the count-weighted mean |mean predicted - observed| over the bins."""
        return _calibration_error(self.calibration)

    @property
    def baseline_calibration_error(self) -> float:
        """The constant's: one bin, |constant - observed rate|."""
        if not self.calibration:
            return math.nan
        n = sum(b.count for b in self.calibration)
        observed = sum(b.observed_rate * b.count for b in self.calibration) / n
        return abs(self.constant - observed)


def _calibration_error(bins: list[CalibrationBin]) -> float:
    n = sum(b.count for b in bins)
    return sum(b.count * abs(b.mean_predicted - b.observed_rate) for b in bins) / n if n else math.nan


def _scores(y: np.ndarray, p: np.ndarray) -> Scores:
    return score(y, p) if len(y) else Scores(0, math.nan, math.nan, math.nan, math.nan)


def evaluate_model(
    session: Session,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    num_fits: int = 5,
    forgets: bool = False,
    n_jobs: int | None = None,
    like_pybkt: bool = False,
    choose_variant: bool = False,
) -> EvaluationReport:
    """Fit on the students outside a seeded ``test_fraction`` of them (as ``fit-params`` would, with its
    options), trace the held-out students' answers with the tracker and score its pre-answer predictions.
    Stores nothing."""
    frame = response_frame(session)
    if frame.empty:
        raise FitError("no responses to evaluate")
    users = list(frame["user_id"].unique())
    if len(users) < 2:
        raise FitError("need at least 2 students to hold some out")
    test_users = split_students(users, test_fraction, seed)
    test_mask = frame["user_id"].isin(test_users)
    train = frame[~test_mask]
    fits = fit_frame(
        train,
        forgets=forgets,
        num_fits=num_fits,
        seed=seed,
        n_jobs=n_jobs,
        like_pybkt=like_pybkt,
        choose_variant=choose_variant,
    )
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
    constant = float(train["correct"].mean())
    return EvaluationReport(
        n_train_students=len(users) - len(test_users),
        n_test_students=len(test_users),
        overall=_scores(y, p),
        per_skill=per_skill,
        calibration=calibration_table(y, p),
        unscored_skills={str(s): int(n) for s, n in unscored.items()},
        kept_current=sorted(rejected),
        params=params,
        baseline=_scores(y, np.full(len(y), constant)),
        constant=constant,
        n_rows=len(test),
        status={f.skill_id: f"{f.status}, {f.variant}" for f in fits if not f.problems},
    )


def evaluate_test_log(
    session: Session,
    path: str | Path,
    fmt: LogFormat,
    *,
    rules: MasteryRules,
    holding_school: str = HOLDING_SCHOOL,
) -> EvaluationReport:
    """Score the service on a separate test log, under the current (trained) parameters.

    The log is imported into ``holding_school`` (created if new; it must have no students) exactly as
    ``import-log`` would, so each answer is traced online and its pre-answer P(correct) stored; those
    predictions are scored against the credited answers. Rows of skills whose current parameters were
    not fitted (content or default values) are counted but not scored. The whole evaluation runs in one
    transaction on its own connection that is rolled back at the end: the import never stays (a later fit
    cannot learn from the test students), and the parameters are read, never written (checked).
    The constant predictor is the mean credited correctness of the rest of the log (the training data).
    """
    from app.services.modelling.imports import import_log  # imports the tutoring services: heavy

    bind = session.get_bind()
    assert isinstance(bind, Engine)
    with bind.connect() as connection:
        outer = connection.begin()
        holding = Session(bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False)
        try:
            before = _current_parameters(holding)
            school, _ = create_school(holding, holding_school)
            if holding.scalar(
                select(func.count()).select_from(Student).where(Student.school_id == school.id)
            ):
                raise FitError(f"the holding school {holding_school!r} has students: name an empty one")
            training = holding.execute(
                select(func.avg(case((Response.credited, 1.0), else_=0.0)), func.count())
                .select_from(Response)
                .join(ResponseSkill, ResponseSkill.response_id == Response.id)
            ).one()
            if not training[1]:
                raise FitError("no training answers in the log: fit before evaluating on a test log")
            n_train_students = int(
                holding.scalar(select(func.count(func.distinct(Response.student_id)))) or 0
            )
            import_log(holding, path, fmt, app_name="evaluation", school_name=holding_school, rules=rules)
            rows = holding.execute(
                select(
                    ResponseSkill.skill_id,
                    Response.credited,
                    ResponseSkill.p_correct,
                    SkillParameters.source,
                    Response.student_id,
                )
                .select_from(Response)
                .join(Student, Student.id == Response.student_id)
                .join(ResponseSkill, ResponseSkill.response_id == Response.id)
                .join(SkillParameters, SkillParameters.id == ResponseSkill.parameters_id)
                .where(Student.school_id == school.id)
                .order_by(Response.id, ResponseSkill.position)
            ).all()
            # Skills new in the test log got default parameters (rolled back with the rest); every trained
            # version is still current.
            if not set(before) <= set(_current_parameters(holding)):
                raise FitError("the parameters changed during the evaluation")  # never: nothing writes them
            status = _current_status(holding)
        finally:
            holding.close()
            outer.rollback()
    constant = float(training[0])
    scored = [r for r in rows if r[3] == "fitted"]
    y = np.array([int(bool(r[1])) for r in scored], dtype=int)
    p = np.array([float(r[2]) for r in scored], dtype=float)
    skills = np.array([str(r[0]) for r in scored], dtype=object)
    unscored = pd.Series([str(r[0]) for r in rows if r[3] != "fitted"], dtype=object).value_counts()
    per_skill = {
        str(skill): score(y[skills == skill], p[skills == skill]) for skill in sorted(set(skills.tolist()))
    }
    return EvaluationReport(
        n_train_students=n_train_students,
        n_test_students=len({r[4] for r in rows}),
        overall=_scores(y, p),
        per_skill=per_skill,
        calibration=calibration_table(y, p),
        unscored_skills={str(s): int(n) for s, n in unscored.items()},
        baseline=_scores(y, np.full(len(y), constant)),
        constant=constant,
        n_rows=len(rows),
        status={s: v for s, v in status.items() if s in per_skill},
    )


def _current_parameters(session: Session) -> list[tuple[object, ...]]:
    return [
        tuple(row)
        for row in session.execute(
            select(SkillParameters.id, SkillParameters.skill_id).where(SkillParameters.is_current)
        ).all()
    ]


def _current_status(session: Session) -> dict[str, str]:
    """skill -> "status, variant" as recorded by the fit run of its current (fitted) version."""
    from app.models import FitRun

    runs = {
        run.id: run.options
        for run in session.scalars(
            select(FitRun).where(
                FitRun.id.in_(select(SkillParameters.fit_run_id).where(SkillParameters.is_current))
            )
        )
    }
    status: dict[str, str] = {}
    for skill, run_id in session.execute(
        select(SkillParameters.skill_id, SkillParameters.fit_run_id).where(
            SkillParameters.is_current, SkillParameters.fit_run_id.is_not(None)
        )
    ):
        options = runs.get(run_id) if run_id is not None else None
        options = options or {}
        fit_status = (options.get("status") or {}).get(skill)
        if fit_status:
            status[skill] = f"{fit_status}, {(options.get('variant') or {}).get(skill, 'standard')}"
    return status
