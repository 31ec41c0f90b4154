"""pyBKT's builds under the service's routing: the compiled E-step where it is right, pure Python elsewhere.

PURE_BUILD holds what pyBKT 1.4.3's pure-Python wheel gives on these frames (Model(seed=7, num_fits=1,
parallel=False).fit, rounded to 12 decimals): every path of the service must reproduce it, whichever build
is installed. Under CI=true the compiled build must be there (scripts/_venv.sh builds it); elsewhere the
tests that need it skip when no C++ compiler exists.
"""

from __future__ import annotations

import importlib.metadata
import math
import os
import threading
from typing import Any

import numpy as np
import pandas as pd
import pyBKT.fit.EM_fit
import pytest
import sqlalchemy as sa
from pyBKT.models import Model
from pyBKT.util import data_helper

from app.domain.bkt import Belief, BktParams, belief_after, predict_from
from app.extensions import db
from app.models import FitRun, SkillParameters
from app.services.modelling import fitting, pybkt_engine
from app.services.modelling.imports import import_log
from app.services.operations import doctor
from app.settings import current_settings
from tests.conftest import DATA_DIR, make_app

BOX, TABLE = "Box and Whisker", "Table"
PURE_BUILD: dict[str, dict[str, list[float]]] = {
    # first 150 students, one skill at a time
    "standard " + BOX: {
        "prior": [0.523010176953],
        "learns": [0.136123241287],
        "guesses": [0.471906899298],
        "slips": [0.099592408283],
        "forgets": [0.0],
    },
    "standard " + TABLE: {
        "prior": [0.856032896994],
        "learns": [0.045979979362],
        "guesses": [0.46926650294],
        "slips": [0.181300035199],
        "forgets": [0.0],
    },
    # first 60 students, Table
    "forgets": {
        "prior": [0.534576985772],
        "learns": [0.467577303284],
        "guesses": [0.770955335393],
        "slips": [0.12717804189],
        "forgets": [0.544985672212],
    },
    # first 150 students, Table, group = even / odd student id (classes: even 1st, odd 2nd)
    "multilearn": {
        "prior": [0.8400547761],
        "learns": [0.033940284931, 0.071479546123],
        "guesses": [0.474470888912],
        "slips": [0.180006857358],
        "forgets": [0.0, 0.0],
    },
    "multigs": {
        "prior": [0.825774063213],
        "learns": [0.042034913051],
        "guesses": [0.428365774329, 0.576894863022],
        "slips": [0.185636340271, 0.168284784111],
        "forgets": [0.0],
    },
}
NAMES = {"prior": "prior", "learn": "learns", "guess": "guesses", "slip": "slips", "forget": "forgets"}


def require_compiled() -> None:
    if pybkt_engine.compiled_e_step_available():
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("pyBKT's compiled E-step is missing under CI: scripts/_venv.sh should have built it")
    if doctor.compiler_on_path() is None:
        pytest.skip("no C++ compiler (g++/c++): pyBKT's compiled E-step cannot be built here")
    pytest.fail("a C++ compiler is on PATH but pyBKT's compiled E-step is missing: scripts/test builds it")


@pytest.fixture(scope="module")
def log() -> pd.DataFrame:
    frame = pd.read_csv(DATA_DIR / "assistments_2skills.csv", encoding="latin-1", index_col=0)
    frame = frame[fitting.FRAME_COLUMNS].copy()
    frame["user_id"] = frame["user_id"].astype(str)
    return frame


def first_students(log: pd.DataFrame, n: int, skill: str) -> pd.DataFrame:
    users = log["user_id"].drop_duplicates().head(n)
    return log[log["user_id"].isin(users) & (log["skill_name"] == skill)]


def grouped(log: pd.DataFrame) -> pd.DataFrame:
    rows = first_students(log, 150, TABLE).copy()
    rows["group"] = np.where(rows["user_id"].astype(int) % 2 == 0, "even", "odd")
    return rows


def pybkt_params(model: Any, skill: str) -> dict[str, list[float]]:
    fitted = model.fit_model[skill]
    return {name: [float(v) for v in np.ravel(fitted[name])] for name in PURE_BUILD["multilearn"]}


def worst(got: dict[str, list[float]], want: dict[str, list[float]]) -> float:
    assert got.keys() == want.keys() and all(len(got[k]) == len(want[k]) for k in want)
    return max(abs(a - b) for k in want for a, b in zip(got[k], want[k], strict=True))


def as_pybkt(params: dict[str, float]) -> dict[str, list[float]]:
    return {NAMES[name]: [value] for name, value in params.items()}


def one_class() -> set[str]:
    """The E-step a standard fit gets here."""
    return {pybkt_engine.COMPILED if pybkt_engine.compiled_e_step_available() else pybkt_engine.PYTHON}


def test_the_compiled_e_step_is_installed() -> None:
    require_compiled()
    assert fitting.engine_name() == "pyBKT 1.4.3 (compiled E-step)"
    assert pyBKT.fit.EM_fit.EM_fit is pybkt_engine.em_fit  # installed by importing the fitting service
    with fitting.pure_python_e_step():
        assert fitting.engine_name() == "pyBKT 1.4.3 (pure-Python E-step)"


def test_standard_bkt_gives_the_same_parameters_on_either_e_step(log) -> None:
    for skill in (BOX, TABLE):
        rows = first_students(log, 150, skill)
        with pybkt_engine.e_steps_used() as used:
            routed = fitting._pybkt_fit(rows, skill, forgets=False, num_fits=1, seed=7)
        with fitting.pure_python_e_step(), pybkt_engine.e_steps_used() as used_pure:
            pure = fitting._pybkt_fit(rows, skill, forgets=False, num_fits=1, seed=7)
        assert used == one_class() and used_pure == {pybkt_engine.PYTHON}
        assert worst(as_pybkt(pure), PURE_BUILD[f"standard {skill}"]) < 1e-10  # the port is the pure build
        assert worst(as_pybkt(routed), as_pybkt(pure)) < 1e-6
    with pybkt_engine.e_steps_used() as used:
        forgets = fitting._pybkt_fit(first_students(log, 60, TABLE), TABLE, forgets=True, num_fits=1, seed=7)
    assert used == one_class() and worst(as_pybkt(forgets), PURE_BUILD["forgets"]) < 1e-6


def test_class_variants_run_pure_python_and_match_the_pure_build(log) -> None:
    rows = grouped(log)
    with pybkt_engine.e_steps_used() as used:
        diagnostic = fitting.multilearn_diagnostic(rows, TABLE, num_fits=1, seed=7)
    assert pybkt_engine.PYTHON in used  # the pooled fit beside it may take the compiled E-step
    learns = PURE_BUILD["multilearn"]["learns"]
    assert diagnostic.learn_by_group == pytest.approx({"even": learns[0], "odd": learns[1]}, abs=1e-10)
    model = Model(seed=7, num_fits=1, parallel=False)
    with pybkt_engine.e_steps_used() as used:
        model.fit(data=rows.copy(), multigs="group")
    assert used == {pybkt_engine.PYTHON}
    assert worst(pybkt_params(model, TABLE), PURE_BUILD["multigs"]) < 1e-10


def test_the_compiled_build_gets_class_variants_wrong(log, monkeypatch) -> None:
    """What the routing avoids: pyBKT's own compiled path, and its E-step reading class 0 for every class."""
    require_compiled()
    rows = grouped(log)
    monkeypatch.setattr(pyBKT.fit.EM_fit, "EM_fit", pybkt_engine._ORIGINAL_EM_FIT)
    for variant in ("multilearn", "multigs"):
        raw = Model(seed=7, num_fits=1, parallel=False)
        raw.fit(data=rows.copy(), **{variant: "group"})
        assert worst(pybkt_params(raw, TABLE), PURE_BUILD[variant]) > 1e-3
    monkeypatch.undo()

    data = data_helper.convert_data(
        rows.copy(), TABLE, defaults={"multilearn": "group"}, model_type=[True, False, False, False]
    )[TABLE]
    model = {
        "prior": 0.4,
        "learns": np.array([0.05, 0.3]),
        "forgets": np.array([0.0, 0.0]),
        "guesses": np.array([0.2]),
        "slips": np.array([0.1]),
    }
    compiled = pybkt_engine._compiled_module.run(data, model, 1, 0, {})["all_trans_softcounts"]
    compiled = compiled.transpose(0, 2, 1)
    python = pybkt_engine.python_e_step(data, model, {})[0]
    class0_everywhere = pybkt_engine.python_e_step(data, {**model, "learns": np.array([0.05, 0.05])}, {})[0]
    assert np.abs(compiled[0] - python[0]).max() < 1e-9  # class 0 agrees...
    assert np.abs(compiled[1] - python[1]).max() > 1  # ...class 1 does not: it got class 0's learn rate
    assert np.abs(compiled[1] - class0_everywhere[1]).max() < 1e-9


def test_held_parameters_and_one_answer_students_match_the_pure_e_step(log) -> None:
    """The compiled adapter's corrections, E-step by E-step: fixed guesses, float log-likelihood, T=1 rows."""
    require_compiled()
    data = data_helper.convert_data(log[log["skill_name"] == TABLE].copy(), TABLE)[TABLE]
    assert (data["lengths"] == 1).sum() == 53
    model = {
        "prior": 0.3,
        "learns": np.array([0.2]),
        "forgets": np.array([0.01]),
        "guesses": np.array([0.6]),
        "slips": np.array([0.1]),
    }
    fixed = {"guesses": np.array([0.45])}
    compiled = pybkt_engine.CompiledEStep(data)(model, fixed, False)
    python = pybkt_engine.python_e_step(data, model, fixed)
    for ours, theirs in zip(compiled[:3], python[:3], strict=True):
        assert np.abs(ours - theirs).max() < 1e-9
    assert compiled[3] == pytest.approx(python[3], abs=1e-9)


def test_forcing_pure_python_is_per_thread() -> None:
    seen: list[str] = []
    with fitting.pure_python_e_step():
        other = threading.Thread(target=lambda: seen.append(pybkt_engine.choose_e_step(1, 1)))
        other.start()
        other.join()
        assert pybkt_engine.choose_e_step(1, 1) == pybkt_engine.PYTHON
    assert seen == [pybkt_engine.choose_e_step(1, 1)]
    assert pybkt_engine.choose_e_step(2, 1) == pybkt_engine.choose_e_step(1, 3) == pybkt_engine.PYTHON


def test_small_compiled_jobs_stay_in_the_process(monkeypatch) -> None:
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    monkeypatch.setattr(pybkt_engine, "_compiled_module", object())
    assert fitting.default_jobs(408_000, 123, 1) == 1 and fitting.default_jobs(408_000, 123, 5) == 2
    assert fitting.default_jobs(2_000_000, 1, 5) == 1  # never more workers than skills
    monkeypatch.setattr(pybkt_engine, "_compiled_module", None)
    assert fitting.default_jobs(1000, 123, 1) == 2


def simple_log_likelihood(frame: pd.DataFrame, params: BktParams) -> float:
    """The definition, one answer at a time."""
    total = 0.0
    for _, answers in frame.groupby("user_id", sort=False)["correct"]:
        belief = Belief.of(params.prior)
        for correct in answers.to_numpy():
            p_correct = predict_from(belief, params)
            total += math.log(p_correct if correct else 1.0 - p_correct)
            belief = belief_after(belief, bool(correct), params)
    return total


def test_vectorised_log_likelihood_equals_the_simple_loop(log) -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(1, 120, size=60)  # long tails: the last steps run one answer at a time
    synthetic = pd.DataFrame(
        {
            "user_id": np.repeat([f"s{i}" for i in range(60)], lengths),
            "correct": rng.integers(0, 2, size=lengths.sum()),
        }
    )
    synthetic = synthetic.sample(frac=1, random_state=1)  # students interleaved, each in its own order
    table = log[log["skill_name"] == TABLE].sort_values(["user_id", "order_id"], kind="mergesort")
    for frame in (table, synthetic):
        for params in (BktParams(0.5, 0.1, 0.2, 0.1), BktParams(0.3, 0.2, 0.25, 0.08, 0.05)):
            want = simple_log_likelihood(frame, params)
            assert fitting.log_likelihood(frame, params) == pytest.approx(want, rel=1e-12)
    assert fitting.log_likelihood(synthetic.head(0), BktParams(0.5, 0.1, 0.2, 0.1)) == 0.0


def test_fit_parameters_reads_skill_by_skill_and_records_the_e_step(
    app, school, log, tmp_path, monkeypatch
) -> None:
    path = tmp_path / "slice.csv"
    first_students(log, 150, BOX).pipe(lambda f: pd.concat([f, first_students(log, 150, TABLE)])).to_csv(path)
    batches: list[dict[str, int]] = []
    real_fit_frame = fitting.fit_frame

    def recording(frame: pd.DataFrame, **kwargs: Any) -> list[fitting.SkillFit]:
        batches.append({str(s): n for s, n in frame["skill_name"].value_counts().items()})
        return real_fit_frame(frame, **kwargs)

    with app.app_context():
        session = db.session()
        rules = current_settings().mastery
        import_log(session, path, "assistments", rules=rules)
        whole = fitting.response_frame(session)
        skill_of = {name: skill for skill, name in session.execute(sa.text("SELECT id, name FROM skills"))}
        # like_pybkt: the pure build's parameters (the default counts one-answer students and pools).
        one = fitting.fit_parameters(
            session, num_fits=1, seed=7, min_responses=1, rules=rules, like_pybkt=True
        )
        monkeypatch.setattr(fitting, "fit_frame", recording)
        batched = fitting.fit_parameters(
            session, num_fits=1, seed=7, min_responses=1, batch_rows=2000, rules=rules, like_pybkt=True
        )
        monkeypatch.undo()
        assert sorted(batches, key=len) == [{skill_of[BOX]: 1397}, {skill_of[TABLE]: 2303}]  # whole skills
        runs = {run.id: run for run in session.scalars(sa.select(FitRun))}
        for report in (one, batched):
            run = runs[report.run_id]
            assert run.engine == fitting.engine_name()
            assert (run.n_responses, run.n_students) == (len(whole), whole["user_id"].nunique())
            assert (run.first_response_id, run.last_response_id) == (
                whole["order_id"].min(),
                whole["order_id"].max(),
            )
        versions = {(p.fit_run_id, p.skill_id): p for p in session.scalars(sa.select(SkillParameters))}
        for name in (BOX, TABLE):
            first, second = versions[(one.run_id, skill_of[name])], versions[(batched.run_id, skill_of[name])]
            for column in ("prior", "learn", "guess", "slip", "forget", "log_likelihood", "n_students"):
                assert getattr(first, column) == getattr(second, column)
            assert first.prior == pytest.approx(PURE_BUILD[f"standard {name}"]["prior"][0], abs=1e-6)


def test_doctor_reports_the_stack_the_database_and_the_content(app, runner) -> None:
    result = runner.invoke(args=["doctor"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    build = "compiled C++ E-step" if pybkt_engine.compiled_e_step_available() else "pure-Python E-step only"
    assert lines[0].startswith("[  ok] python: 3.") and f"pyBKT: 1.4.3, {build}" in lines[1]
    for package in ("numpy", "pandas", "scikit-learn"):
        version = importlib.metadata.version(package)
        assert any(
            line.endswith(
                f"] {package}: {version} (within the range known good for pyBKT 1.4.3: "
                f"{doctor_span(package)})"
            )
            for line in lines
        ), result.output
    assert "[  ok] schema: at the latest migration (" in result.output
    assert "[  ok] database: " in result.output and "[  ok] content: 43 skills" in result.output


def doctor_span(package: str) -> str:
    span = doctor.declared_ranges()[package]
    assert "<" in str(span), f"pyproject.toml must cap {package} at the versions known good for pyBKT"
    return str(span)


def test_doctor_fails_on_an_unmigrated_or_unreachable_database(tmp_path) -> None:
    empty = make_app(f"sqlite:///{tmp_path / 'empty.sqlite3'}").test_cli_runner().invoke(args=["doctor"])
    assert empty.exit_code == 1
    assert "[FAIL] schema: at no migration (empty database), latest is" in empty.output
    assert "Error: 1 problem(s): schema" in empty.output
    gone = (
        make_app("postgresql+psycopg://tutor:s3cret@127.0.0.1:1/tutor")
        .test_cli_runner()
        .invoke(args=["doctor"])
    )
    assert gone.exit_code == 1 and "Error: 1 problem(s): database" in gone.output
    assert "[FAIL] database: postgresql+psycopg://tutor:***@127.0.0.1:1/tutor: cannot connect" in gone.output
    assert "s3cret" not in gone.output
