"""Fitting BKT parameters with pyBKT from the response log (with ``pybkt_engine``, the only pyBKT user).

Each skill is fitted by its own pyBKT ``Model`` seeded with the same seed, so a
skill's parameters do not depend on which other skills were fitted in the run,
and skills run in parallel (joblib; pyBKT's own ``parallel`` is off because in
pure Python it starts a process pool inside every E-step): in local processes, or on the workers of a Dask
cluster through joblib's dask backend (``cluster``, ``FIT_CLUSTER``), with the same results.
``pybkt_engine`` routes each fit to a correct E-step (compiled for one class, pure Python for class variants).
``fit_parameters`` streams the log in one pass ordered by skill and fits it in batches of whole
skills of at most ``FIT_BATCH_ROWS`` rows, so memory is bounded by the batch, not the log.

By default a fit uses every answer (a student's only answer on a skill is evidence for prior, guess and
slip, as in pyBKT's compiled build) and borrows strength across skills: a pooled fit of all the skills
(each student-skill sequence its own sequence) is the centre of a Beta prior worth ``PRIOR_STRENGTH``
observations per parameter, and every skill is fitted by MAP-EM under it. A large skill's own answers
outweigh the prior; a sparse one (most students answer it once or twice) lands near the pooled values
instead of EM's guess = slip = 0.5. Each fit says what decided it (``SkillFit.status``): ``fitted`` (its
own answers identify it), ``pooled`` (too few students answered it twice or more: mostly the prior),
``constrained`` (guess or slip held at ``CONSTRAINED_LIMIT``); skills left out for too little data keep
their parameters (``default``). ``like_pybkt`` fits exactly as pyBKT's pure build instead.
``choose_variant`` picks standard BKT or forgets per skill by held-out likelihood (folds of students).
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from itertools import groupby
from operator import itemgetter
from typing import Any

import numpy as np
import pandas as pd
import structlog
from joblib import Parallel, delayed
from sqlalchemy import Select, func, select
from sqlalchemy.orm import Session

from app.domain.bkt import Belief, BktParams, belief_after, parameter_problems, predict_from
from app.domain.errors import DomainError
from app.domain.tracking import MasteryRules
from app.models import FitRun, Response, ResponseSkill, SkillParameters
from app.services.modelling import pybkt_engine
from app.services.modelling.mastery import Progress, RebuildReport, begin_read_snapshot, replay_stale
from app.services.modelling.pybkt_engine import pure_python_e_step as pure_python_e_step  # re-exported
from app.services.tutoring.content import DEFAULT_PARAMS, bump_revision

# Every pyBKT fit in this process (and in joblib workers, which import this module) goes through the
# routed EM loop; see pybkt_engine.
pybkt_engine.install()

FRAME_COLUMNS = ["order_id", "user_id", "skill_name", "correct"]
# A degenerate fit is retried with this many times the restarts, from other seeds...
RETRY_RESTARTS = 4
# ...and, if still degenerate, refitted with the offending guess/slip held at this value
# (the likelihood's best point inside the admissible region lies on its edge).
CONSTRAINED_LIMIT = 0.45
# fit_parameters reads and fits the log in batches of whole skills of at most this many rows (a larger
# skill is a batch of its own), so memory stays bounded by the batch, not the log.
FIT_BATCH_ROWS = 250_000
STREAM_ROWS = 20_000  # rows fetched from the database at a time
LOG_COLUMNS = (Response.id, Response.student_id, ResponseSkill.skill_id, Response.credited.label("correct"))
# The pooled fit behind the prior: a skill's parameters count as its own ("fitted") from this many students
# with two answers or more on it; the prior weighs as this many observations of each parameter.
IDENTIFIED_MIN_STUDENTS = 20
PRIOR_STRENGTH = 20.0
POOL_ROWS = 250_000  # the pooled fit reads at most this many rows: the log's first, in answer order
POOLED_SKILL = "(pooled)"
# choose_variant: folds of students, and the fewest students a skill needs for a choice (else standard).
VARIANT_FOLDS = 3
VARIANT_MIN_STUDENTS = 30
STATUSES = ("fitted", "pooled", "constrained", "default")
# With the compiled E-step, fits of fewer row-fits (rows x restarts) than this run in this process.
PARALLEL_MIN_ROW_FITS = 1_000_000
# log_likelihood steps all students at once while at least this many have an answer left.
VECTOR_MIN_ROWS = 16
log = structlog.stdlib.get_logger(__name__)


class FitError(DomainError):
    """The fit cannot run (e.g. no data)."""


def engine_name(e_steps: Collection[str] = ()) -> str:
    """E.g. "pyBKT 1.4.3 (compiled E-step)": the E-steps that ran (default: the one a standard fit gets)."""
    used = sorted(e_steps) or [pybkt_engine.choose_e_step(1, 1)]
    return f"pyBKT {pybkt_engine.pybkt_version()} ({' + '.join(used)} E-step)"


def response_frame(session: Session, skills: Collection[str] | None = None) -> pd.DataFrame:
    """The log in pyBKT's ASSISTments layout: one row per (response, skill), in answer order."""
    session.flush()  # read on the session's connection (Core rows: the ORM's cost more than the query)
    query = _log_query(list(LOG_COLUMNS), skills).order_by(Response.id, ResponseSkill.position)
    return _frame(session.connection().execute(query).all())


def _frame(rows: Sequence[Any], strings: dict[str, str] | None = None) -> pd.DataFrame:
    """Rows (id, student, skill, correct) as a frame. ``strings`` keeps one object per distinct id across
    calls: a driver makes a new string for every row, and they would outweigh the rest of the row."""
    # Column by column: pandas' row-by-row constructor costs more than the query itself on a large log.
    ids, students, skill_ids, correct = ([row[i] for row in rows] for i in range(4))
    if strings is not None:
        students = [strings.setdefault(s, s) for s in students]
        skill_ids = [strings.setdefault(s, s) for s in skill_ids]
    return pd.DataFrame(
        {
            "order_id": np.array(ids, dtype=np.int64),
            "user_id": np.array(students, dtype=object),
            "skill_name": np.array(skill_ids, dtype=object),
            "correct": np.array(correct, dtype=int),
        },
        columns=FRAME_COLUMNS,
    )


def _log_query(columns: list[Any], skills: Collection[str] | None) -> Select[Any]:
    """``columns`` over the (response, skill) rows of the log, optionally of some skills only."""
    query = (
        select(*columns).select_from(Response).join(ResponseSkill, ResponseSkill.response_id == Response.id)
    )
    return query if skills is None else query.where(ResponseSkill.skill_id.in_(list(skills)))


def _skill_batches(
    session: Session, skills: Collection[str] | None, sizes: dict[str, int], limit: int
) -> Iterator[pd.DataFrame]:
    """The rows of the skills in ``sizes`` (skill -> rows), read in ONE pass over the log ordered by skill,
    as frames of whole skills of at most ``limit`` rows (a bigger skill alone). Other skills are skipped."""
    query = _log_query(list(LOG_COLUMNS), skills).order_by(
        ResponseSkill.skill_id, Response.id, ResponseSkill.position
    )
    batch: list[pd.DataFrame] = []  # compact column chunks, not the driver's row tuples
    rows_in_batch = 0
    strings: dict[str, str] = {}
    current = None
    for part in _driver_rows(session, query, STREAM_ROWS):
        for skill, rows in groupby(part, key=itemgetter(2)):
            if skill not in sizes:
                continue
            if skill != current:
                current = skill
                if rows_in_batch and rows_in_batch + sizes[skill] > limit:
                    yield pd.concat(batch, ignore_index=True)
                    batch, rows_in_batch = [], 0
            batch.append(_frame(list(rows), strings))
            rows_in_batch += len(batch[-1])
    if batch:
        yield pd.concat(batch, ignore_index=True)


@dataclass(frozen=True)
class SkillFit:
    skill_id: str
    params: dict[str, float]
    n_students: int
    n_responses: int
    log_likelihood: float
    restarts: int
    constrained: tuple[str, ...] = ()  # parameters held at CONSTRAINED_LIMIT
    e_steps: tuple[str, ...] = ()  # which pyBKT E-steps ran (pybkt_engine.COMPILED / PYTHON)
    status: str = "fitted"  # fitted, pooled or constrained (STATUSES)
    variant: str = "standard"  # standard or forgets: the model fitted
    # choose_variant: held-out log-likelihood per variant (summed over the folds)
    held_out: dict[str, float] = field(default_factory=dict)

    @property
    def problems(self) -> list[str]:
        return parameter_problems(self.params)


def log_likelihood(frame: pd.DataFrame, params: BktParams) -> float:
    """log P(observed responses) under BKT: the sum of log one-step predictions (forward algorithm).

    Each student's rows in frame order, traced with the tracker's update (``domain.bkt``) for all students
    at once: step t takes every student's t-th answer. The few long sequences left when fewer than
    ``VECTOR_MIN_ROWS`` students remain are finished one answer at a time (cheaper than tiny array steps).
    """
    if frame.empty:
        return 0.0
    student = pd.factorize(frame["user_id"])[0]
    step = frame.groupby(student, sort=False).cumcount().to_numpy()
    correct = frame["correct"].to_numpy().astype(bool)
    order = np.argsort(step, kind="stable")
    bounds = np.searchsorted(step[order], np.arange(step.max() + 2))
    # P(L) and P(not L) kept apart, as domain.bkt.Belief (one alone rounds to 1.0 after long right runs).
    p_known = np.full(student.max() + 1, params.prior)
    p_unknown = np.full(student.max() + 1, 1.0 - params.prior)
    logs = np.zeros(len(frame))
    t = 0
    while t < len(bounds) - 1 and bounds[t + 1] - bounds[t] >= VECTOR_MIN_ROWS:
        rows = order[bounds[t] : bounds[t + 1]]
        who, right = student[rows], correct[rows]
        p, q = p_known[who], p_unknown[who]
        p_correct = p * (1.0 - params.slip) + q * params.guess
        logs[rows] = np.log(np.where(right, p_correct, 1.0 - p_correct))
        known = np.where(right, p * (1.0 - params.slip), p * params.slip)
        unknown = np.where(right, q * params.guess, q * (1.0 - params.guess))
        total = known + unknown
        # As domain.bkt.belief_after: an impossible observation keeps the belief.
        known = np.divide(known, total, out=p.copy(), where=total != 0.0)
        unknown = np.divide(unknown, total, out=q.copy(), where=total != 0.0)
        p_known[who] = known * (1.0 - params.forget) + unknown * params.learn
        p_unknown[who] = known * params.forget + unknown * (1.0 - params.learn)
        t += 1
    state = {
        int(s): Belief(float(p_known[s]), float(p_unknown[s])) for s in np.unique(student[order[bounds[t] :]])
    }
    tail = 0.0
    for row in np.sort(order[bounds[t] :]):  # frame order, so each student's answers in sequence
        who, right = int(student[row]), bool(correct[row])
        p_correct = predict_from(state[who], params)
        tail += math.log(p_correct if right else 1.0 - p_correct)
        state[who] = belief_after(state[who], right, params)
    return float(logs.sum()) + tail


def _pybkt_fit(
    frame: pd.DataFrame,
    skill_id: str,
    *,
    forgets: bool,
    num_fits: int,
    seed: int,
    hold: dict[str, float] | None = None,
) -> dict[str, float]:
    """One pyBKT fit of one skill; ``hold`` pins parameters (e.g. {"guesses": 0.45})."""
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
    skill_id: str,
    frame: pd.DataFrame,
    *,
    forgets: bool,
    num_fits: int,
    seed: int,
    repair: bool = True,
    all_answers: bool = False,
    pooled: dict[str, float] | None = None,
    choose_variant: bool = False,
    prior_strength: float = PRIOR_STRENGTH,
) -> SkillFit:
    """Fit one skill's rows with pyBKT (``num_fits`` restarts, best likelihood wins).

    EM often prefers guess or slip above 0.5 on real data. Then ``RETRY_RESTARTS`` x
    ``num_fits`` more single restarts are run from other seeds, and the most likely
    *admissible* one is kept; if none is admissible, the offending parameter is held at
    ``CONSTRAINED_LIMIT`` and the rest refitted (reported as constrained). Only if that
    still fails is the degenerate fit returned (and rejected by the caller).
    ``repair=False`` skips both steps (pyBKT's own fit, for like-for-like benchmarks).
    ``all_answers`` counts one-answer students' answers; ``pooled`` (the pooled fit's parameters) makes it
    a MAP fit under a prior centred there (``PRIOR_STRENGTH``); ``choose_variant`` fits standard BKT or
    forgets, whichever predicts held-out students of the skill better (``forgets`` is then ignored).
    """
    prior = None if pooled is None or not prior_strength else pybkt_engine.Prior(pooled, prior_strength)
    options: dict[str, Any] = {
        "num_fits": num_fits,
        "seed": seed,
        "repair": repair,
        "pooled": pooled if prior is not None else None,
    }
    with pybkt_engine.e_steps_used() as used, pybkt_engine.fit_options(all_answers=all_answers, prior=prior):
        held_out: dict[str, float] = {}
        if choose_variant:
            held_out = _held_out_likelihoods(skill_id, frame, **options)
            forgets = bool(held_out) and held_out["forgets"] > held_out["standard"]
        fit = _repaired_fit(skill_id, frame, forgets=forgets, **options)
    status = "constrained" if fit.constrained else fit.status
    if prior is not None and status == "fitted" and _repeat_students(frame) < IDENTIFIED_MIN_STUDENTS:
        status = "pooled"
    return replace(
        fit,
        e_steps=tuple(sorted(used)),
        status=status,
        variant="forgets" if forgets else "standard",
        held_out=held_out,
    )


def _repeat_students(frame: pd.DataFrame) -> int:
    """Students with two answers or more in ``frame``."""
    return int((frame["user_id"].value_counts() >= 2).sum())


def _held_out_likelihoods(skill_id: str, frame: pd.DataFrame, **options: Any) -> dict[str, float]:
    """log-likelihood of each fold of students under standard BKT and forgets fitted on the other folds,
    summed over ``VARIANT_FOLDS`` folds ({} when the skill has too few students to choose)."""
    users = sorted(frame["user_id"].unique())
    if len(users) < VARIANT_MIN_STUDENTS:
        return {}
    folds = _folds(frame, users, options["seed"])
    totals = {"standard": 0.0, "forgets": 0.0}
    for k in range(VARIANT_FOLDS):
        train, test = frame[folds != k], frame[folds == k]
        ordered = test.sort_values(["user_id", "order_id"], kind="mergesort")
        for variant in totals:
            fit = _repaired_fit(skill_id, train, forgets=variant == "forgets", **options)
            if fit.problems:
                totals[variant] = -math.inf
            elif math.isfinite(totals[variant]):
                totals[variant] += log_likelihood(ordered, BktParams.of(fit.params))
    return totals


def _repaired_fit(
    skill_id: str,
    frame: pd.DataFrame,
    *,
    forgets: bool,
    num_fits: int,
    seed: int,
    repair: bool,
    pooled: dict[str, float] | None = None,
) -> SkillFit:
    """The fit, repaired when degenerate. Without ``pooled``: the most likely admissible retry, else the
    offending guess/slip held at ``CONSTRAINED_LIMIT``. With ``pooled`` (the pooled fit's parameters), the
    repairs (``REPAIRS``: that retry, that hold, the pooled parameters themselves) are compared on held-out
    students of the skill (``VARIANT_FOLDS`` folds) and the one that predicts them best is kept."""
    ordered = frame.sort_values(["user_id", "order_id"], kind="mergesort")
    options: dict[str, Any] = {"forgets": forgets, "num_fits": num_fits, "seed": seed}
    params = _pybkt_fit(frame, skill_id, **options)
    restarts = num_fits
    repaired = "fitted"
    if repair and parameter_problems(params):
        if pooled is not None:
            repaired = _best_repair(skill_id, frame, pooled, **options)
            params, used = _repair(repaired, skill_id, frame, pooled, **options)
        else:
            params, used = _repair("retry", skill_id, frame, pooled, **options)
            if parameter_problems(params):
                params, more = _repair("hold", skill_id, frame, pooled, **options)
                used += more
                repaired = "hold"
        restarts += used
    constrained: tuple[str, ...] = ()
    if repaired == "hold" and not parameter_problems(params):
        constrained = tuple(n for n in ("guess", "slip") if params[n] == CONSTRAINED_LIMIT)
    ll = math.nan if parameter_problems(params) else log_likelihood(ordered, BktParams.of(params))
    fit = SkillFit(skill_id, params, int(frame["user_id"].nunique()), len(frame), ll, restarts, constrained)
    return replace(fit, status="pooled") if repaired == "pooled" else fit


# The repairs of a degenerate fit that _best_repair compares on held-out students.
REPAIRS = ("retry", "hold", "pooled")


def _repair(
    how: str,
    skill_id: str,
    frame: pd.DataFrame,
    pooled: dict[str, float] | None,
    *,
    forgets: bool,
    num_fits: int,
    seed: int,
) -> tuple[dict[str, float], int]:
    """(parameters, EM restarts run) of one repair: "retry" (the most likely admissible of
    ``RETRY_RESTARTS`` x ``num_fits`` single restarts from other seeds, or the first fit's when none is),
    "hold" (the guess/slip at 0.5 or above held at ``CONSTRAINED_LIMIT``, the rest refitted) or "pooled"."""
    if how == "pooled":
        assert pooled is not None
        return dict(pooled), 0
    first = _pybkt_fit(frame, skill_id, forgets=forgets, num_fits=num_fits, seed=seed)
    if not parameter_problems(first):  # (a fold of a skill may not need the repair)
        return first, 0
    if how == "hold":
        held = tuple(n for n in ("guess", "slip") if first[n] >= 0.5)
        hold = {f"{n}es" if n == "guess" else f"{n}s": CONSTRAINED_LIMIT for n in held}
        return _pybkt_fit(frame, skill_id, forgets=forgets, num_fits=num_fits, seed=seed, hold=hold), num_fits
    ordered = frame.sort_values(["user_id", "order_id"], kind="mergesort")
    best: tuple[float, dict[str, float]] | None = None
    for offset in range(1, RETRY_RESTARTS * num_fits + 1):
        candidate = _pybkt_fit(frame, skill_id, forgets=forgets, num_fits=1, seed=seed + offset)
        if not parameter_problems(candidate):
            ll = log_likelihood(ordered, BktParams.of(candidate))
            if best is None or ll > best[0]:
                best = (ll, candidate)
    return (first if best is None else best[1]), RETRY_RESTARTS * num_fits


def _best_repair(skill_id: str, frame: pd.DataFrame, pooled: dict[str, float], **options: Any) -> str:
    """The repair (``REPAIRS``) whose parameters, fitted on the other folds of the skill's students,
    give the held-out folds the highest log-likelihood ("pooled" when the skill has too few students)."""
    users = sorted(frame["user_id"].unique())
    if len(users) < VARIANT_MIN_STUDENTS:
        return "pooled"
    folds = _folds(frame, users, options["seed"])
    totals = dict.fromkeys(REPAIRS, 0.0)
    for k in range(VARIANT_FOLDS):
        train, test = frame[folds != k], frame[folds == k]
        ordered = test.sort_values(["user_id", "order_id"], kind="mergesort")
        for how in REPAIRS:
            params, _ = _repair(how, skill_id, train, pooled, **options)
            if parameter_problems(params):
                totals[how] = -math.inf
            elif math.isfinite(totals[how]):
                totals[how] += log_likelihood(ordered, BktParams.of(params))
    return max(REPAIRS, key=lambda how: totals[how])  # ties: the first (retry, then hold)


def _folds(frame: pd.DataFrame, users: list[str], seed: int) -> np.ndarray:
    """Each row's fold (0 to ``VARIANT_FOLDS`` - 1), whole students to a fold, seeded."""
    rng = np.random.default_rng(seed)
    fold_of = dict(zip(users, rng.permutation(len(users)) % VARIANT_FOLDS, strict=True))
    return np.asarray(frame["user_id"].map(fold_of).to_numpy(), dtype=np.int64)


def default_jobs(rows: int, skills: int, num_fits: int) -> int:
    """Worker processes for fitting ``skills`` skills with ``rows`` rows in all: one per core, except that
    with the compiled E-step a small job stays in this process.

    Each worker imports the app and pyBKT (~2.5 s of CPU) before its first fit; compiled fits are so fast
    that this only pays off from about a million row-fits (408k rows x 5 restarts with repairs: 8.8 s on 2
    workers against 11.1 s in one process; x 1 restart: 3.9 s against 2.7 s; docs/PERFORMANCE.md). pyBKT's
    own OpenMP threads stay off (``parallel=False``: its C++ code then runs one thread), so workers never
    oversubscribe the cores.
    """
    cores = min(skills, os.cpu_count() or 1) or 1
    if pybkt_engine.compiled_e_step_available() and rows * num_fits < PARALLEL_MIN_ROW_FITS:
        return 1
    return cores


def fit_frame(
    frame: pd.DataFrame,
    *,
    forgets: bool,
    num_fits: int,
    seed: int,
    n_jobs: int | None = None,
    repair: bool = True,
    cluster: bool = False,
    like_pybkt: bool = False,
    pooled: dict[str, float] | None = None,
    choose_variant: bool = False,
    prior_strength: float = PRIOR_STRENGTH,
) -> list[SkillFit]:
    """Fit every skill of the frame, in parallel across skills (``n_jobs`` None: see ``default_jobs``).

    ``cluster`` (inside ``cluster.fits_on``): on the Dask cluster's workers, through joblib's dask backend,
    however small the job; the workers' threads decide how many fits run at once, not ``n_jobs``.
    Unless ``like_pybkt`` (pyBKT's pure build: one-answer students left out, no prior), every answer counts
    and each skill is fitted under the prior of ``pooled`` (default: ``pooled_fit`` of this frame) worth
    ``prior_strength`` observations (0: no prior, maximum likelihood on every answer).
    """
    if not like_pybkt and pooled is None and prior_strength:
        pooled = pooled_fit(frame, forgets=forgets, num_fits=num_fits, seed=seed)
    groups = [(skill, rows) for skill, rows in frame.groupby("skill_name", sort=True)]
    jobs = 0 if cluster else n_jobs or default_jobs(len(frame), len(groups), num_fits)
    options: dict[str, Any] = {
        "forgets": forgets,
        "num_fits": num_fits,
        "seed": seed,
        "repair": repair,
        "all_answers": not like_pybkt,
        "pooled": None if like_pybkt else pooled,
        "choose_variant": choose_variant,
        "prior_strength": prior_strength,
    }
    if jobs == 1:
        return [fit_skill(str(s), rows, **options) for s, rows in groups]
    # In parallel, the largest skills go first, so that a batch ends on short fits rather than one long fit
    # with the other workers idle; the results are put back in skill order.
    largest_first = sorted(range(len(groups)), key=lambda i: -len(groups[i][1]))
    tasks = (delayed(fit_skill)(str(s), rows, **options) for s, rows in (groups[i] for i in largest_first))
    # On a cluster, the backend is the one cluster.fits_on set, and its worker threads decide the jobs.
    fits: list[SkillFit] = Parallel(n_jobs=-1 if cluster else jobs)(tasks)
    by_group = dict(zip(largest_first, fits, strict=True))
    return [by_group[i] for i in range(len(groups))]


def pooled_fit(frame: pd.DataFrame, *, forgets: bool, num_fits: int, seed: int) -> dict[str, float]:
    """One fit of all the frame's skills as one skill (each student-skill sequence its own sequence), on
    the first ``POOL_ROWS`` rows in answer order, every answer counted; degenerate fits repaired as a
    skill's are. The centre of the prior that sparse skills borrow strength from."""
    ordered = frame.sort_values(["order_id"], kind="mergesort").head(POOL_ROWS)
    rows = pd.DataFrame(
        {
            "order_id": ordered["order_id"].to_numpy(),
            "user_id": (
                ordered["user_id"].astype(str) + "\x1f" + ordered["skill_name"].astype(str)
            ).to_numpy(),
            "skill_name": POOLED_SKILL,
            "correct": ordered["correct"].to_numpy(),
        },
        columns=FRAME_COLUMNS,
    )
    with pybkt_engine.fit_options(all_answers=True):
        fit = _repaired_fit(POOLED_SKILL, rows, forgets=forgets, num_fits=num_fits, seed=seed, repair=True)
    if fit.problems:  # even the pooled fit degenerate: fall back on the service-wide defaults
        return DEFAULT_PARAMS.values()
    return fit.params


def fit_batches(
    batches: Iterable[pd.DataFrame],
    *,
    forgets: bool,
    num_fits: int,
    seed: int,
    n_jobs: int | None = None,
    repair: bool = True,
    cluster: str | None = None,
    like_pybkt: bool = False,
    pooled: dict[str, float] | None = None,
    choose_variant: bool = False,
    prior_strength: float = PRIOR_STRENGTH,
) -> list[SkillFit]:
    """Fit the skills of each frame (frames of whole skills, e.g. ``_skill_batches``), a frame at a time.

    ``cluster``: the address of a Dask scheduler (``FIT_CLUSTER``) whose workers run the fits
    (``cluster.fits_on`` checks them first); None: this machine's processes (``n_jobs``).
    ``pooled``: the prior's centre for every batch (``fit_frame`` otherwise pools each batch by itself).
    """
    options: dict[str, Any] = {
        "forgets": forgets,
        "num_fits": num_fits,
        "seed": seed,
        "repair": repair,
        "like_pybkt": like_pybkt,
        "pooled": pooled,
        "choose_variant": choose_variant,
        "prior_strength": prior_strength,
    }
    if cluster is None:
        return [fit for frame in batches for fit in fit_frame(frame, n_jobs=n_jobs, **options)]
    try:
        from app.services.modelling.cluster import fits_on
    except ImportError as error:  # Dask is an optional extra
        raise FitError(f"fitting on a cluster needs Dask: pip install '.[cluster]' ({error})") from None
    with fits_on(cluster):
        return [fit for frame in batches for fit in fit_frame(frame, cluster=True, **options)]


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
    engine: str = ""  # as recorded in the fit run, e.g. "pyBKT 1.4.3 (compiled E-step)"
    versions: dict[str, int] = field(default_factory=dict)  # skill -> the parameter version made current
    pooled: dict[str, float] | None = None  # the pooled fit behind the prior (None: like_pybkt)

    @property
    def status(self) -> dict[str, str]:
        """skill -> fitted, pooled, constrained or default (kept its parameters: too little data)."""
        return {
            **{s: "default" for s in self.too_little_data},
            **{f.skill_id: f.status for f in self.fitted},
        }

    @property
    def status_counts(self) -> dict[str, int]:
        counts = dict.fromkeys(STATUSES, 0)
        for status in self.status.values():
            counts[status] += 1
        return counts


def fit_parameters(
    session: Session,
    *,
    skills: Collection[str] | None = None,
    forgets: bool = False,
    min_responses: int = 50,
    num_fits: int = 5,
    seed: int = 42,
    n_jobs: int | None = None,
    rules: MasteryRules,  # the configured ones: no default that could disagree
    repair: bool = True,
    batch_rows: int = FIT_BATCH_ROWS,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
    cluster: str | None = None,  # a Dask scheduler's address (FIT_CLUSTER); None: this machine's processes
    like_pybkt: bool = False,
    choose_variant: bool = False,
    prior_strength: float = PRIOR_STRENGTH,
) -> FitReport:
    """Fit, store a new parameter version per fitted skill, make it current, then replay mastery in chunks.

    The versions, the current pointers and the revision that marks every student behind commit together
    (one short transaction): either every new version is current or nothing changed. The replay follows
    (``mastery.replay_stale``, chunks of students, each its own short transaction; ``progress(done, total)``
    after each, ``cancelled()`` before each): until a student's chunk commits, their next answer replays
    them first and readers see them replayed, so no one sees a mix of old and new parameters. A replay
    stopped (cancelled, crashed) is finished by those answers or by ``flask rebuild-mastery --stale-only``.
    Skills with fewer than ``min_responses`` rows keep their parameters; degenerate fits (guess or slip
    >= 0.5) are reported, not stored. The log is never held whole: counts come from SQL, and the rows are
    streamed in one pass and fitted ``batch_rows`` (whole skills) at a time.

    Called outside a transaction (the CLI, a job), the log is read and fitted in a read-only snapshot that
    answers never wait for. Answers recorded during the fit are in the replay, not in the fit.
    Every answer counts and skills borrow strength from a pooled fit of the first ``POOL_ROWS`` rows of
    the fitted skills (module docstring), unless ``like_pybkt``; ``choose_variant``: standard or forgets
    per skill by held-out likelihood. Each skill's status and variant are recorded in the run's options.
    """
    started = time.perf_counter()
    wanted = sorted(skills) if skills is not None else "all"
    log.info(
        "fit.started",
        skills=wanted,
        forgets=forgets,
        min_responses=min_responses,
        num_fits=num_fits,
        cluster=cluster,  # the Dask scheduler's address, or None: this machine
    )
    read_only = not session.in_transaction()
    if read_only:
        begin_read_snapshot(session)
    n_rows, n_students, first_id, last_id = session.execute(
        _log_query(
            [
                func.count(),
                func.count(func.distinct(Response.student_id)),
                func.min(Response.id),
                func.max(Response.id),
            ],
            skills,
        )
    ).one()
    if not n_rows:
        log.warning("fit.failed", skills=wanted, reason="no responses", duration_ms=_ms_since(started))
        raise FitError("no responses to fit" + (f" for skills {sorted(skills)}" if skills else ""))
    report = FitReport(n_responses=int(n_rows), n_students=int(n_students))
    counts = {
        str(skill): int(n)
        for skill, n in session.execute(
            _log_query([ResponseSkill.skill_id, func.count()], skills).group_by(ResponseSkill.skill_id)
        )
    }
    report.too_little_data = {
        s: n for s, n in sorted(counts.items(), key=lambda c: (-c[1], c[0])) if n < min_responses
    }
    if skills is not None:
        report.too_little_data.update({s: 0 for s in skills if s not in counts})
    fits: list[SkillFit] = []
    sizes = {s: n for s, n in counts.items() if s not in report.too_little_data}
    if not like_pybkt and prior_strength and sizes:
        sample = _log_query(list(LOG_COLUMNS), sorted(sizes)).order_by(Response.id, ResponseSkill.position)
        rows = [row for part in _driver_rows(session, sample.limit(POOL_ROWS), STREAM_ROWS) for row in part]
        report.pooled = pooled_fit(_frame(rows), forgets=forgets, num_fits=num_fits, seed=seed)
        del rows
    fits += fit_batches(
        _skill_batches(session, skills, sizes, batch_rows),
        forgets=forgets,
        num_fits=num_fits,
        seed=seed,
        n_jobs=n_jobs,
        repair=repair,
        cluster=cluster,
        like_pybkt=like_pybkt,
        pooled=report.pooled,
        choose_variant=choose_variant,
        prior_strength=prior_strength,
    )
    fits.sort(key=lambda fit: fit.skill_id)  # the database's collation may order skills otherwise
    report.restarts = sum(f.restarts for f in fits)
    for fit in fits:
        if fit.problems:
            report.rejected[fit.skill_id] = "; ".join(fit.problems)
        else:
            report.fitted.append(fit)

    window = session.execute(
        select(func.min(Response.created_at), func.max(Response.created_at)).where(
            Response.id.in_(select(ResponseSkill.response_id).distinct())
        )
    ).one()
    if read_only:
        session.rollback()  # end the snapshot: the writes below take a transaction of their own
    report.engine = engine_name({e for f in fits for e in f.e_steps})
    run = FitRun(
        engine=report.engine,
        options={
            "forgets": forgets,
            "min_responses": min_responses,
            "num_fits": num_fits,
            "seed": seed,
            "skills": sorted(skills) if skills is not None else None,
            "like_pybkt": like_pybkt,
            "choose_variant": choose_variant,
            "prior_strength": prior_strength,
            "pooled": report.pooled,
            # per skill: what decided its parameters, and the model fitted (kept with the versions' run)
            "status": report.status,
            "variant": {f.skill_id: f.variant for f in report.fitted},
        },
        window_start=window[0],
        window_end=window[1],
        first_response_id=int(first_id),
        last_response_id=int(last_id),
        n_students=report.n_students,
        n_responses=report.n_responses,
        skipped={s: f"{n} responses (< {min_responses})" for s, n in report.too_little_data.items()},
        rejected=report.rejected,
    )
    session.add(run)
    session.flush()
    report.run_id = run.id
    if report.fitted:
        report.versions = _make_current(session, run.id, report.fitted)
        bump_revision(session, replay=True)
    session.commit()
    log.info(  # the versions are current from here; the replay logs its own line (replay.finished)
        "fit.finished",
        fit_run_id=report.run_id,
        skills=wanted,
        parameter_versions=report.versions,  # skill -> version, of the skills whose parameters changed
        rejected=sorted(report.rejected),
        too_little_data=sorted(report.too_little_data),
        n_responses=report.n_responses,
        n_students=report.n_students,
        restarts=report.restarts,
        engine=report.engine,
        status=report.status_counts,
        duration_ms=_ms_since(started),
    )
    if report.fitted:
        report.rebuild = replay_stale(session, rules=rules, progress=progress, cancelled=cancelled)
    return report


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _driver_rows(session: Session, query: Select[Any], size: int) -> Iterator[list[tuple[Any, ...]]]:
    """``query``'s rows as plain tuples straight from the database driver, ``size`` at a time.

    SQLAlchemy's result rows cost about as much again as the query on a large log (408k rows: 1.9 s against
    1.0 s), and a fit reads the whole log; so this one read takes a driver cursor on the session's connection
    (inside its transaction). On PostgreSQL it is a named (server-side) cursor, so rows stream there too.
    Values come unconverted: booleans may be 0/1.
    """
    session.flush()
    connection = session.connection()
    compiled = query.compile(dialect=connection.dialect, compile_kwargs={"render_postcompile": True})
    params: Any = compiled.params
    if compiled.positiontup is not None:  # qmark/format drivers (SQLite) take a sequence
        params = tuple(compiled.params[name] for name in compiled.positiontup)
    driver = connection.connection.driver_connection
    assert driver is not None
    server_side = connection.dialect.name == "postgresql"
    cursor = driver.cursor(name="tutor_fit_log") if server_side else driver.cursor()
    try:
        cursor.execute(str(compiled), params)
        while part := cursor.fetchmany(size):
            yield part
    finally:
        cursor.close()


def _make_current(session: Session, run_id: int, fits: list[SkillFit]) -> dict[str, int]:
    """Store each fit as its skill's next parameter version and make it current; skill -> version."""
    skill_ids = [f.skill_id for f in fits]
    latest: dict[str, int] = dict(
        session.execute(
            select(SkillParameters.skill_id, func.max(SkillParameters.version))
            .where(SkillParameters.skill_id.in_(skill_ids))
            .group_by(SkillParameters.skill_id)
        ).all()
    )
    for row in session.scalars(
        select(SkillParameters).where(SkillParameters.skill_id.in_(skill_ids), SkillParameters.is_current)
    ):
        row.is_current = False
    session.flush()  # the partial unique index allows one current row per skill
    versions = {fit.skill_id: latest.get(fit.skill_id, 0) + 1 for fit in fits}
    session.add_all(
        SkillParameters(
            skill_id=fit.skill_id,
            version=versions[fit.skill_id],
            source="fitted",
            is_current=True,
            fit_run_id=run_id,
            n_students=fit.n_students,
            n_responses=fit.n_responses,
            log_likelihood=fit.log_likelihood,
            **fit.params,
        )
        for fit in fits
    )
    session.flush()
    return versions


def adopt_parameters(
    session: Session,
    params: dict[str, BktParams],
    *,
    engine: str,
    rules: MasteryRules,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> int:
    """Make externally fitted parameters current (e.g. from another tool) and replay mastery.

    Returns the fit run id. Like ``fit_parameters``: the log is read in a read-only snapshot when called
    outside a transaction, the versions commit at once, and the replay follows in chunks (``progress``,
    ``cancelled``: as there).
    """
    read_only = not session.in_transaction()
    if read_only:
        begin_read_snapshot(session)
    frame = response_frame(session, list(params))
    fits = []
    for skill_id, skill_params in params.items():
        rows = frame[frame["skill_name"] == skill_id].sort_values(["user_id", "order_id"], kind="mergesort")
        fits.append(
            SkillFit(
                skill_id,
                skill_params.values(),
                int(rows["user_id"].nunique()),
                len(rows),
                log_likelihood(rows, skill_params),
                0,
            )
        )
    n_students, n_responses = int(frame["user_id"].nunique()), len(frame)
    del frame
    if read_only:
        session.rollback()  # end the snapshot: the writes below take a transaction of their own
    run = FitRun(
        engine=engine,
        options={"adopted": True},
        n_students=n_students,
        n_responses=n_responses,
        skipped={},
        rejected={},
    )
    session.add(run)
    session.flush()
    run_id = run.id
    versions = _make_current(session, run_id, fits)
    bump_revision(session, replay=True)
    session.commit()
    log.info("fit.adopted", fit_run_id=run_id, engine=engine, parameter_versions=versions)
    replay_stale(session, rules=rules, progress=progress, cancelled=cancelled)
    return run_id


def fits_as_params(fits: list[SkillFit]) -> dict[str, BktParams]:
    return {f.skill_id: BktParams.of(f.params, fitted=True) for f in fits}


@dataclass(frozen=True)
class MultilearnDiagnostic:
    """pyBKT with one learn rate per group (``multilearn``) against one pooled model, on the same rows."""

    skill_id: str
    learn_by_group: dict[str, float]
    pooled_learn: float
    log_likelihood_gain: float  # grouped − pooled; large gains say the groups learn at different rates
    n_responses: int
    note: str = ""


def multilearn_diagnostic(
    frame: pd.DataFrame, skill_id: str, *, num_fits: int = 3, seed: int = 0
) -> MultilearnDiagnostic:
    """``frame``: one skill's rows in pyBKT's layout plus a ``group`` column (one group per student)."""
    from pyBKT.models import Model  # imported here: heavy, and only needed in fitting processes

    pooled = _pybkt_fit(frame, skill_id, forgets=False, num_fits=num_fits, seed=seed)
    model = Model(seed=seed, num_fits=num_fits, parallel=False)
    model.fit(data=frame.copy(), multilearn="group")
    fitted = model.fit_model[skill_id]
    learns = {
        str(name): float(fitted["learns"][index - 1]) for name, index in fitted["resource_names"].items()
    }
    shared = {
        "prior": float(fitted["prior"]),
        "guess": float(fitted["guesses"][0]),
        "slip": float(fitted["slips"][0]),
        "forget": 0.0,
    }
    ordered = frame.sort_values(["user_id", "order_id"], kind="mergesort")
    if parameter_problems({**shared, "learn": 0.1}) or parameter_problems(pooled):
        return MultilearnDiagnostic(
            skill_id,
            learns,
            pooled["learn"],
            math.nan,
            len(frame),
            "a degenerate fit (guess or slip ≥ 0.5): no likelihood comparison",
        )
    grouped = sum(
        log_likelihood(ordered[ordered["group"] == group], BktParams.of({**shared, "learn": learn}))
        for group, learn in learns.items()
    )
    return MultilearnDiagnostic(
        skill_id, learns, pooled["learn"], grouped - log_likelihood(ordered, BktParams.of(pooled)), len(frame)
    )
