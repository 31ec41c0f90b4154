"""Fitting BKT parameters with pyBKT from the response log (the only module that imports pyBKT).

Each skill is fitted by its own pyBKT ``Model`` seeded with the same seed, so a
skill's parameters do not depend on which other skills were fitted in the run,
and skills run in parallel (joblib; pyBKT's own ``parallel`` is off because in
pure Python it starts a process pool inside every E-step).
"""

from __future__ import annotations

import importlib.metadata
import math
import os
from collections.abc import Collection
from dataclasses import asdict, dataclass, field

import pandas as pd
from joblib import Parallel, delayed
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.bkt import BktParams, parameter_problems, predict_correct, update_mastery
from app.domain.errors import DomainError
from app.models import FitRun, Response, ResponseSkill, SkillParameters
from app.services.content import bump_revision
from app.services.mastery import RebuildReport, rebuild_mastery

FRAME_COLUMNS = ["order_id", "user_id", "skill_name", "correct"]
# A degenerate fit is retried with this many times the restarts, from other seeds...
RETRY_RESTARTS = 4
# ...and, if still degenerate, refitted with the offending guess/slip held at this value
# (the likelihood's best point inside the admissible region lies on its edge).
CONSTRAINED_LIMIT = 0.45


class FitError(DomainError):
    """The fit cannot run (e.g. no data)."""


def engine_name() -> str:
    return f"pyBKT {importlib.metadata.version('pyBKT')}"


def response_frame(session: Session, skills: Collection[str] | None = None) -> pd.DataFrame:
    """The log in pyBKT's ASSISTments layout: one row per (response, skill), in answer order."""
    query = (
        select(Response.id, Response.student_id, ResponseSkill.skill_id,
               Response.credited.label("correct"))
        .join(ResponseSkill, ResponseSkill.response_id == Response.id)
        .order_by(Response.id, ResponseSkill.position)
    )
    if skills is not None:
        query = query.where(ResponseSkill.skill_id.in_(list(skills)))
    frame = pd.DataFrame(session.execute(query).all(), columns=FRAME_COLUMNS)
    frame["correct"] = frame["correct"].astype(int)
    return frame


@dataclass(frozen=True)
class SkillFit:
    skill_id: str
    params: dict[str, float]
    n_students: int
    n_responses: int
    log_likelihood: float
    restarts: int
    constrained: tuple[str, ...] = ()  # parameters held at CONSTRAINED_LIMIT

    @property
    def problems(self) -> list[str]:
        return parameter_problems(self.params)


def log_likelihood(frame: pd.DataFrame, params: BktParams) -> float:
    """log P(observed responses) under BKT: the sum of log one-step predictions (forward algorithm)."""
    total = 0.0
    for _, answers in frame.groupby("user_id", sort=False)["correct"]:
        p = params.prior
        for correct in answers.to_numpy():
            p_correct = predict_correct(p, params)
            total += math.log(p_correct if correct else 1.0 - p_correct)
            p = update_mastery(p, bool(correct), params)
    return total


def _pybkt_fit(
    frame: pd.DataFrame, skill_id: str, *, forgets: bool, num_fits: int, seed: int,
    hold: dict[str, float] | None = None,
) -> dict[str, float]:
    """One pyBKT fit of one skill; ``hold`` pins parameters (e.g. {"guesses": 0.45})."""
    import numpy as np
    from pyBKT.models import Model  # imported here: heavy, and only needed in fitting processes

    model = Model(seed=seed, num_fits=num_fits, parallel=False)
    if hold:
        model.coef_ = {skill_id: {name: np.array([value]) for name, value in hold.items()}}
        model.fit(data=frame.copy(), forgets=forgets, fixed={skill_id: dict.fromkeys(hold, True)})
    else:
        model.fit(data=frame.copy(), forgets=forgets)  # fit() sorts its input in place
    fitted = model.fit_model[skill_id]
    return {
        "prior": float(fitted["prior"]),
        "learn": float(fitted["learns"][0]),
        "guess": float(fitted["guesses"][0]),
        "slip": float(fitted["slips"][0]),
        "forget": float(fitted["forgets"][0]),
    }


def fit_skill(
    skill_id: str, frame: pd.DataFrame, *, forgets: bool, num_fits: int, seed: int, repair: bool = True,
) -> SkillFit:
    """Fit one skill's rows with pyBKT (``num_fits`` restarts, best likelihood wins).

    EM often prefers guess or slip above 0.5 on real data. Then ``RETRY_RESTARTS`` x
    ``num_fits`` more single restarts are run from other seeds, and the most likely
    *admissible* one is kept; if none is admissible, the offending parameter is held at
    ``CONSTRAINED_LIMIT`` and the rest refitted (reported as constrained). Only if that
    still fails is the degenerate fit returned (and rejected by the caller).
    ``repair=False`` skips both steps (pyBKT's own fit, for like-for-like benchmarks).
    """
    ordered = frame.sort_values(["user_id", "order_id"], kind="mergesort")
    params = _pybkt_fit(frame, skill_id, forgets=forgets, num_fits=num_fits, seed=seed)
    restarts = num_fits
    if repair and parameter_problems(params):
        best: tuple[float, dict[str, float]] | None = None
        for offset in range(1, RETRY_RESTARTS * num_fits + 1):
            candidate = _pybkt_fit(frame, skill_id, forgets=forgets, num_fits=1, seed=seed + offset)
            restarts += 1
            if not parameter_problems(candidate):
                ll = log_likelihood(ordered, BktParams(**candidate))
                if best is None or ll > best[0]:
                    best = (ll, candidate)
        if best is not None:
            params = best[1]
    constrained: tuple[str, ...] = ()
    if repair and parameter_problems(params):
        constrained = tuple(n for n in ("guess", "slip") if params[n] >= 0.5)
        hold = {f"{n}es" if n == "guess" else f"{n}s": CONSTRAINED_LIMIT for n in constrained}
        candidate = _pybkt_fit(frame, skill_id, forgets=forgets, num_fits=num_fits, seed=seed, hold=hold)
        restarts += num_fits
        if not parameter_problems(candidate):
            params = candidate
        else:
            constrained = ()
    ll = math.nan if parameter_problems(params) else log_likelihood(ordered, BktParams(**params))
    return SkillFit(skill_id, params, int(frame["user_id"].nunique()), len(frame), ll, restarts, constrained)


def fit_frame(
    frame: pd.DataFrame, *, forgets: bool, num_fits: int, seed: int, n_jobs: int | None = None,
    repair: bool = True,
) -> list[SkillFit]:
    """Fit every skill of the frame, in parallel across skills."""
    groups = [(skill, rows) for skill, rows in frame.groupby("skill_name", sort=True)]
    jobs = n_jobs or min(len(groups), os.cpu_count() or 1) or 1
    if jobs == 1:
        return [fit_skill(str(s), rows, forgets=forgets, num_fits=num_fits, seed=seed, repair=repair)
                for s, rows in groups]
    fits: list[SkillFit] = Parallel(n_jobs=jobs)(
        delayed(fit_skill)(str(s), rows, forgets=forgets, num_fits=num_fits, seed=seed, repair=repair)
        for s, rows in groups
    )
    return fits


@dataclass
class FitReport:
    run_id: int | None = None
    n_responses: int = 0
    n_students: int = 0
    fitted: list[SkillFit] = field(default_factory=list)
    too_little_data: dict[str, int] = field(default_factory=dict)
    rejected: dict[str, str] = field(default_factory=dict)
    rebuild: RebuildReport | None = None
    restarts: int = 0  # EM restarts run in all, retries of degenerate fits included


def fit_parameters(
    session: Session,
    *,
    skills: Collection[str] | None = None,
    forgets: bool = False,
    min_responses: int = 50,
    num_fits: int = 5,
    seed: int = 42,
    n_jobs: int | None = None,
    threshold: float = 0.95,
    repair: bool = True,
) -> FitReport:
    """Fit, store a new parameter version per fitted skill, make it current and replay mastery.

    One transaction: either every new version is current and mastery equals a replay
    under it, or nothing changed. Skills with fewer than ``min_responses`` rows keep
    their parameters; degenerate fits (guess or slip >= 0.5) are reported, not stored.
    """
    frame = response_frame(session, skills)
    if frame.empty:
        raise FitError("no responses to fit" + (f" for skills {sorted(skills)}" if skills else ""))
    report = FitReport(n_responses=len(frame), n_students=int(frame["user_id"].nunique()))
    counts = frame["skill_name"].value_counts()
    report.too_little_data = {str(s): int(n) for s, n in counts.items() if n < min_responses}
    if skills is not None:
        report.too_little_data.update({s: 0 for s in skills if s not in counts.index})
    enough = frame[~frame["skill_name"].isin(report.too_little_data)]
    fits = []
    if len(enough):
        fits = fit_frame(enough, forgets=forgets, num_fits=num_fits, seed=seed, n_jobs=n_jobs, repair=repair)
    report.restarts = sum(f.restarts for f in fits)
    for fit in fits:
        if fit.problems:
            report.rejected[fit.skill_id] = "; ".join(fit.problems)
        else:
            report.fitted.append(fit)

    window = session.execute(
        select(func.min(Response.created_at), func.max(Response.created_at))
        .where(Response.id.in_(select(ResponseSkill.response_id).distinct()))
    ).one()
    run = FitRun(
        engine=engine_name(),
        options={"forgets": forgets, "min_responses": min_responses, "num_fits": num_fits, "seed": seed,
                 "skills": sorted(skills) if skills is not None else None},
        window_start=window[0], window_end=window[1],
        first_response_id=int(frame["order_id"].min()), last_response_id=int(frame["order_id"].max()),
        n_students=report.n_students, n_responses=report.n_responses,
        skipped={s: f"{n} responses (< {min_responses})" for s, n in report.too_little_data.items()},
        rejected=report.rejected,
    )
    session.add(run)
    session.flush()
    report.run_id = run.id
    if report.fitted:
        _make_current(session, run.id, report.fitted)
        bump_revision(session)
        report.rebuild = rebuild_mastery(session, threshold=threshold, commit=False)
    session.commit()
    return report


def _make_current(session: Session, run_id: int, fits: list[SkillFit]) -> None:
    skill_ids = [f.skill_id for f in fits]
    latest: dict[str, int] = dict(session.execute(
        select(SkillParameters.skill_id, func.max(SkillParameters.version))
        .where(SkillParameters.skill_id.in_(skill_ids))
        .group_by(SkillParameters.skill_id)
    ).all())
    for row in session.scalars(
        select(SkillParameters).where(SkillParameters.skill_id.in_(skill_ids), SkillParameters.is_current)
    ):
        row.is_current = False
    session.flush()  # the partial unique index allows one current row per skill
    session.add_all(
        SkillParameters(
            skill_id=fit.skill_id, version=latest.get(fit.skill_id, 0) + 1, source="fitted",
            is_current=True, fit_run_id=run_id, n_students=fit.n_students, n_responses=fit.n_responses,
            log_likelihood=fit.log_likelihood, **fit.params,
        )
        for fit in fits
    )
    session.flush()


def adopt_parameters(
    session: Session, params: dict[str, BktParams], *, engine: str, threshold: float = 0.95,
) -> int:
    """Make externally fitted parameters current (e.g. from another tool) and replay mastery.

    Returns the fit run id. One transaction, like ``fit_parameters``.
    """
    frame = response_frame(session, list(params))
    run = FitRun(engine=engine, options={"adopted": True}, n_students=int(frame["user_id"].nunique()),
                 n_responses=len(frame), skipped={}, rejected={})
    session.add(run)
    session.flush()
    fits = []
    for skill_id, skill_params in params.items():
        rows = frame[frame["skill_name"] == skill_id].sort_values(["user_id", "order_id"], kind="mergesort")
        fits.append(SkillFit(skill_id, asdict(skill_params), int(rows["user_id"].nunique()), len(rows),
                             log_likelihood(rows, skill_params), 0))
    _make_current(session, run.id, fits)
    bump_revision(session)
    rebuild_mastery(session, threshold=threshold, commit=False)
    session.commit()
    return run.id


def fits_as_params(fits: list[SkillFit]) -> dict[str, BktParams]:
    return {f.skill_id: BktParams(**f.params) for f in fits}



@dataclass(frozen=True)
class MultilearnDiagnostic:
    """pyBKT with one learn rate per group (``multilearn``) against one pooled model, on the same rows."""

    skill_id: str
    learn_by_group: dict[str, float]
    pooled_learn: float
    log_likelihood_gain: float  # grouped − pooled; large gains say the groups learn at different rates
    n_responses: int
    note: str = ""


def multilearn_diagnostic(frame: pd.DataFrame, skill_id: str, *, num_fits: int = 3,
                          seed: int = 0) -> MultilearnDiagnostic:
    """``frame``: one skill's rows in pyBKT's layout plus a ``group`` column (one group per student)."""
    from pyBKT.models import Model  # imported here: heavy, and only needed in fitting processes

    pooled = _pybkt_fit(frame, skill_id, forgets=False, num_fits=num_fits, seed=seed)
    model = Model(seed=seed, num_fits=num_fits, parallel=False)
    model.fit(data=frame.copy(), multilearn="group")
    fitted = model.fit_model[skill_id]
    learns = {str(name): float(fitted["learns"][index - 1])
              for name, index in fitted["resource_names"].items()}
    shared = {"prior": float(fitted["prior"]), "guess": float(fitted["guesses"][0]),
              "slip": float(fitted["slips"][0]), "forget": 0.0}
    ordered = frame.sort_values(["user_id", "order_id"], kind="mergesort")
    if parameter_problems({**shared, "learn": 0.1}) or parameter_problems(pooled):
        return MultilearnDiagnostic(skill_id, learns, pooled["learn"], math.nan, len(frame),
                                    "a degenerate fit (guess or slip ≥ 0.5): no likelihood comparison")
    grouped = sum(log_likelihood(ordered[ordered["group"] == group], BktParams(**shared, learn=learn))
                  for group, learn in learns.items())
    return MultilearnDiagnostic(skill_id, learns, pooled["learn"],
                                grouped - log_likelihood(ordered, BktParams(**pooled)), len(frame))
