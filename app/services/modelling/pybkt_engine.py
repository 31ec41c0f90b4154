"""How pyBKT's EM runs in this service: one EM loop, two E-steps, each fit routed to a correct one.

pyBKT 1.4.3's wheel is pure Python; its source distribution also compiles a C++ E-step (hundreds of times
faster) with its own EM loop. Measured against the pure build, the compiled one differs in four ways:

* its E-step reads class 0's learn/forget/guess/slip for every class, so ``multilearn``, ``multigs``,
  ``multiprior`` and ``multipair`` fits are wrong;
* it returns the log-likelihood truncated to an integer, and its loop stops at ``|dLL| < 1e-3`` on that
  integer (and picks the best restart by it), so even standard BKT ends at other parameters;
* its E-step ignores ``fixed`` guesses/slips/learns/forgets (it looks them up under other keys);
* it counts the answer of a student who answered a skill once; the pure E-step leaves that answer out.

Inside :func:`fit_options` a fit can also count those single answers (as the compiled build does: on logs
where most students answer a skill once they are most of the evidence for prior, guess and slip) and add
pseudo-counts from a prior (MAP-EM: shrinkage towards a pooled fit, ``fitting``).

So pyBKT's ``EM_fit`` (which ``Model.fit`` calls) is replaced, once per process, by :func:`em_fit`: the pure
build's loop (tolerance 0.005 on the float log-likelihood) around either the compiled E-step, for fits with
one class (standard BKT, ``forgets``), its outputs given the pure E-step's meaning, or a port of the
pure-Python E-step for everything else. Either way a fit gives the pure build's parameters (to rounding):
stored parameters do not depend on whether a compiler was there at install time. The route is decided per
call from the model's shape, with no shared switch, so it is safe in threads; joblib workers import this
module (hence install it) when they unpickle a fitting task. pyBKT is pinned exactly because this depends
on its internals; ``tests/services/test_fit_engines.py`` pins them.

pyBKT's own ``predict``/``evaluate`` on the compiled build still use its C++ E-step: right for one class,
wrong for class variants. The service never predicts with pyBKT (the tracker does).
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyBKT.fit.EM_fit as _pybkt_em  # the module whose EM_fit Model.fit calls at call time
from numpy.typing import NDArray
from pyBKT.fit import M_step
from pyBKT.util import check_data

try:  # present only in the C++ build
    from pyBKT.fit import E_step as _compiled_module
except ImportError:
    _compiled_module = None

COMPILED = "compiled"
PYTHON = "pure-Python"
# The pure build's EM_fit defaults (the compiled build's loop uses 1e-3 on a truncated log-likelihood).
TOLERANCE = 0.005
MAX_ITERATIONS = 100

Array = NDArray[np.float64]
SoftCounts = tuple[Array, Array, Array, float]  # transitions, emissions, initial, log-likelihood

_ORIGINAL_EM_FIT = _pybkt_em.EM_fit
_local = threading.local()


def compiled_e_step_available() -> bool:
    """True when pyBKT's C++ E-step imported (the source build with a compiler), else pure Python only."""
    return _compiled_module is not None


def pybkt_version() -> str:
    return importlib.metadata.version("pyBKT")


@contextmanager
def pure_python_e_step() -> Iterator[None]:
    """Every pyBKT fit started in this block, in this thread, uses the pure-Python E-step.

    Fits with classes take it anyway; this is for comparisons and benchmarks. Per thread: other threads
    (and joblib workers, other processes) keep the automatic routing.
    """
    previous = getattr(_local, "force_python", False)
    _local.force_python = True
    try:
        yield
    finally:
        _local.force_python = previous


@contextmanager
def fit_options(*, all_answers: bool = False, prior: Prior | None = None) -> Iterator[None]:
    """Every pyBKT fit started in this block, in this thread: ``all_answers`` counts the answer of a student
    who answered once in guess/slip (the pure build leaves it out); ``prior`` adds its pseudo-counts to the
    soft counts before each M-step (a Beta prior on each parameter: MAP instead of maximum likelihood)."""
    previous = getattr(_local, "options", None)
    _local.options = (all_answers, prior)
    try:
        yield
    finally:
        _local.options = previous


@dataclass(frozen=True)
class Prior:
    """Beta priors centred on ``params`` (prior, learn, guess, slip, forget), each worth ``strength``
    observations of what it governs (answers for guess/slip, opportunities for learn/forget, students for
    the prior)."""

    params: dict[str, float]
    strength: float

    def add_to(self, trans: Array, emission: Array, initial: Array) -> None:
        """Adds the pseudo-counts in place to soft counts laid out as pyBKT's M-step takes them."""
        m, p = self.strength, self.params
        # trans[class][to][from]; emission[class][state][observation]; initial[state][0]
        trans[:, 1, 0] += m * p["learn"]
        trans[:, 0, 0] += m * (1 - p["learn"])
        trans[:, 0, 1] += m * p["forget"]
        trans[:, 1, 1] += m * (1 - p["forget"])
        emission[:, 0, 1] += m * p["guess"]
        emission[:, 0, 0] += m * (1 - p["guess"])
        emission[:, 1, 0] += m * p["slip"]
        emission[:, 1, 1] += m * (1 - p["slip"])
        initial[1] += m * p["prior"]
        initial[0] += m * (1 - p["prior"])


@contextmanager
def e_steps_used() -> Iterator[set[str]]:
    """Collects which E-steps (``COMPILED``, ``PYTHON``) ran in this thread during the block."""
    outer = getattr(_local, "used", None)
    used: set[str] = set()
    _local.used = used
    try:
        yield used
    finally:
        _local.used = outer
        if outer is not None:
            outer.update(used)


def choose_e_step(num_resources: int, num_subparts: int) -> str:
    """The E-step a fit with this many learn classes (resources) and guess/slip classes (subparts) gets."""
    if getattr(_local, "force_python", False) or _compiled_module is None:
        return PYTHON
    return COMPILED if num_resources == 1 and num_subparts == 1 else PYTHON


def em_fit(
    model: dict[str, Any],
    data: dict[str, Any],
    tol: float = TOLERANCE,
    maxiter: int = MAX_ITERATIONS,
    parallel: bool = True,
    fixed: dict[str, Any] | None = None,
) -> tuple[dict[str, Any], Array]:
    """Drop-in for ``pyBKT.fit.EM_fit.EM_fit``: the pure build's EM loop with a routed E-step.

    ``parallel`` only lets the compiled E-step use OpenMP threads; the pure-Python one always runs in this
    process (pyBKT's own would start a process pool inside every E-step).
    """
    fixed = fixed if fixed is not None else {}
    check_data.check_data(data)
    num_subparts = int(data["data"].shape[0])
    num_resources = len(model["learns"])
    engine = choose_e_step(num_resources, num_subparts)
    used = getattr(_local, "used", None)
    if used is not None:
        used.add(engine)
    all_answers, prior = getattr(_local, "options", None) or (False, None)
    compiled = CompiledEStep(data, all_answers=all_answers) if engine == COMPILED else None
    log_likelihoods = np.zeros((maxiter, 1))
    i = 0
    for i in range(maxiter):
        if compiled is not None:
            trans, emission, initial, loglike = compiled(model, fixed, parallel)
        else:
            # 0/0 where a state cannot be reached: pyBKT turns those NaNs into 0 (nan_to_num) on purpose.
            with np.errstate(divide="ignore", invalid="ignore"):
                trans, emission, initial, loglike = python_e_step(data, model, fixed, all_answers=all_answers)
        log_likelihoods[i][0] = loglike
        if i > 1 and abs(log_likelihoods[i][0] - log_likelihoods[i - 1][0]) <= tol:
            break
        if prior is not None:
            prior.add_to(trans, emission, initial)
        model = M_step.run(model, trans, emission, initial, fixed=fixed)
    return model, log_likelihoods[: i + 1]


def install() -> None:
    """Make ``pyBKT.models.Model.fit`` use :func:`em_fit` in this process (idempotent)."""
    _pybkt_em.EM_fit = em_fit


def _effective_params(
    model: dict[str, Any], fixed: dict[str, Any]
) -> tuple[float, Array, Array, Array, Array]:
    """prior, learns, forgets, guesses, slips as pyBKT's pure E-step applies ``fixed`` (negative = free)."""
    prior, learns, forgets = model["prior"], model["learns"], model["forgets"]
    guesses, slips = model["guesses"], model["slips"]
    if "prior" in fixed:
        prior = fixed["prior"]
    if "learns" in fixed:
        learns = learns * (fixed["learns"] < 0) + fixed["learns"] * (fixed["learns"] >= 0)
    if "forgets" in fixed:
        forgets = forgets * (fixed["forgets"] < 0) + fixed["forgets"] * (fixed["forgets"] >= 0)
    # pyBKT holds a fixed guess/slip whatever its sign.
    if "guesses" in fixed:
        guesses = fixed["guesses"]
    if "slips" in fixed:
        slips = fixed["slips"]
    return prior, learns, forgets, guesses, slips


def _interleaved(first: Array, second: Array) -> Array:
    row = np.empty(2 * len(first))
    row[0::2], row[1::2] = first, second
    return row


def python_e_step(
    data: dict[str, Any], model: dict[str, Any], fixed: dict[str, Any], *, all_answers: bool = False
) -> SoftCounts:
    """pyBKT 1.4.3's pure-Python E-step (``fit/EM_fit.py``: ``run`` + ``inner``, one block), ported op for op.

    Same arithmetic in the same order, so results equal the pure build's bit for bit; the tests pin it
    against numbers from the pure wheel. Returns the soft counts as its ``EM_fit`` hands them to the M-step.
    ``all_answers``: a student's only answer is counted in the emissions too (as the compiled build does).
    """
    alldata, allresources = data["data"], data["resources"]
    starts, lengths = data["starts"], data["lengths"]
    num_subparts, num_resources = len(alldata), len(model["learns"])
    prior, learns, forgets, guesses, slips = _effective_params(model, fixed)
    initial_distn = np.empty((2,), dtype="float")
    initial_distn[0] = 1 - prior
    initial_distn[1] = prior
    As = np.empty((2, 2 * num_resources))  # pyBKT's names, to compare line by line
    As[0], As[1] = _interleaved(1 - learns, forgets.copy()), _interleaved(learns.copy(), 1 - forgets)
    Bn = np.empty((2, 2 * num_subparts))
    Bn[0], Bn[1] = _interleaved(1 - guesses, guesses.copy()), _interleaved(slips.copy(), 1 - slips)
    # pyBKT multiplies by np.where(sl == 0, 1, sl) at every step: the same factors, computed once.
    factors = np.where(Bn == 0, 1, Bn)

    trans = np.zeros((2, 2 * num_resources))
    emission = np.zeros((2, 2 * num_subparts))
    initial = np.zeros((2, 1))
    loglike = 0.0
    dot, log = np.dot, np.log
    for sequence_index in range(len(starts)):
        sequence_start = starts[sequence_index] - 1
        T = lengths[sequence_index]
        likelihoods = np.ones((2, T))
        alpha = np.empty((2, T))
        for t in range(T):
            for n in range(num_subparts):
                observed = alldata[n][sequence_start + t]
                if observed:
                    likelihoods[:, t] *= factors[:, 2 * n + int(observed == 2)]
        alpha[:, 0] = initial_distn * likelihoods[:, 0]
        norm = np.sum(alpha[:, 0])
        alpha[:, 0] /= norm
        loglike += log(norm)
        for t in range(1, T):
            k = 2 * (allresources[sequence_start + t - 1] - 1)
            alpha[:, t] = dot(As[0:2, k : k + 2], alpha[:, t - 1]) * likelihoods[:, t]
            norm = np.sum(alpha[:, t])
            alpha[:, t] /= norm
            loglike += log(norm)

        gamma = np.empty((2, T))
        gamma[:, T - 1] = alpha[:, T - 1].copy()
        first = True
        for t in range(T - 2, -1, -1):
            k = 2 * (allresources[sequence_start + t] - 1)
            A = As[0:2, k : k + 2]
            pair = A.copy()
            pair[0] *= alpha[:, t]
            pair[1] *= alpha[:, t]
            dotted, gamma_t = dot(A, alpha[:, t]), gamma[:, t + 1]
            pair[:, 0] = (pair[:, 0] * gamma_t) / dotted
            pair[:, 1] = (pair[:, 1] * gamma_t) / dotted
            np.nan_to_num(pair, copy=False)
            trans[0:2, k : k + 2] += pair
            gamma[:, t] = np.sum(pair, axis=0)
            for n in range(num_subparts):
                observed = alldata[n][sequence_start + t]
                if observed:
                    emission[:, 2 * n + int(observed == 2)] += gamma[:, t]
                if first:  # the last answer, counted here: never for a student with one answer
                    last = alldata[n][sequence_start + T - 1]
                    if last:
                        emission[:, 2 * n + int(last == 2)] += gamma[:, T - 1]
            first = False
        if T == 1 and all_answers:
            for n in range(num_subparts):
                observed = alldata[n][sequence_start]
                if observed:
                    emission[:, 2 * n + int(observed == 2)] += gamma[:, 0]
        initial += gamma[:, 0].reshape((2, 1))
    return _by_class(trans, num_resources), _by_class(emission, num_subparts), initial, float(loglike)


def _by_class(counts: Array, classes: int) -> Array:
    """(2, 2 * classes) soft counts -> (classes, 2, 2): [class][state][column], as pyBKT's M-step takes."""
    return np.ascontiguousarray(counts.reshape(2, classes, 2).transpose(1, 0, 2))


class CompiledEStep:
    """The C++ E-step on one data set with one class, its outputs given the pure E-step's meaning.

    Fixed parameters are applied here (the C++ code misses them); the log-likelihood is recomputed in floating
    point from the forward messages (it returns it truncated to an integer); and the last answer of one-answer
    students is taken back out of the emission counts (the pure E-step never counts it). What depends only on
    the data is worked out once, not at every EM iteration.
    """

    def __init__(self, data: dict[str, Any], *, all_answers: bool = False) -> None:
        assert _compiled_module is not None and data["data"].shape[0] == 1
        self.data = data
        observed = data["data"][0]
        self.starts = np.asarray(data["starts"], dtype=np.int64) - 1
        lengths = np.asarray(data["lengths"], dtype=np.int64)
        single = self.starts[(lengths == 1) & (observed[self.starts] != 0)]
        # incorrect, correct; none to take out when single answers count (``fit_options``)
        self.single = [single[observed[single] == kind + 1] for kind in (0, 1)] if not all_answers else []
        self.kind = np.clip(observed.astype(np.int64) - 1, 0, 1)
        self.unobserved = observed == 0

    def __call__(self, model: dict[str, Any], fixed: dict[str, Any], parallel: bool) -> SoftCounts:
        prior, learns, forgets, guesses, slips = _effective_params(model, fixed)
        start = float(np.asarray(prior).reshape(-1)[0])
        view = {"prior": start, "learns": learns, "forgets": forgets, "guesses": guesses, "slips": slips}
        result = _compiled_module.run(self.data, view, 1, int(parallel), {})
        # C++ fills column-major (2, 2 * classes) buffers that numpy reads as (classes, 2, 2): transposing
        # each class gives [state][column], as pyBKT's compiled EM_fit does.
        trans = np.ascontiguousarray(result["all_trans_softcounts"].transpose(0, 2, 1))
        emission = np.ascontiguousarray(result["all_emission_softcounts"].transpose(0, 2, 1))
        alpha = result["alpha"].reshape(-1).reshape(-1, 2).T  # likewise column-major (2, T)
        for kind, rows in enumerate(self.single):
            if len(rows):
                emission[0][:, kind] -= alpha[:, rows].sum(axis=1)

        learn, forget = float(learns[0]), float(forgets[0])
        known = np.empty(alpha.shape[1])  # P(L) before each answer, from the previous forward message
        known[1:] = learn * alpha[0, :-1] + (1 - forget) * alpha[1, :-1]
        known[self.starts] = start
        unknown = np.empty(alpha.shape[1])
        unknown[1:] = (1 - learn) * alpha[0, :-1] + forget * alpha[1, :-1]
        unknown[self.starts] = 1 - start
        guess, slip = float(guesses[0]), float(slips[0])
        # P(observation | state) as pyBKT uses it: a zero factor counts as 1, and so does no observation.
        emissions = np.array([[1 - guess, guess], [slip, 1 - slip]])
        factors = np.where(emissions == 0, 1, emissions)
        norm = unknown * factors[0, self.kind] + known * factors[1, self.kind]
        norm[self.unobserved] = 1.0
        return trans, emission, result["all_initial_softcounts"], float(np.log(norm).sum())
