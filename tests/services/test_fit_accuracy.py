"""Predictions as good as the data allows (issue 26): every answer counts, sparse skills borrow strength
from a pooled fit, each skill's status and variant are recorded, and evaluate-model scores a separate
test log with a constant predictor beside every figure.

"pyBKT direct" is pyBKT as shipped, fitted and scored by itself: its own EM loop (the compiled build's,
which counts one-answer students) and its own predict.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
import pyBKT.fit.EM_fit
import pytest
import sqlalchemy as sa
from pyBKT.models import Model
from pyBKT.util import data_helper

from app.domain import metrics
from app.domain.synthetic_logs import SyntheticLog, draw_skill_params, sparse_log
from app.extensions import db
from app.models import FitRun, ResponseSkill, School, SkillParameters, Student
from app.services.modelling import fitting, pybkt_engine
from app.services.modelling.evaluation import predict_frame, split_students
from app.services.tutoring.content import read_snapshot
from tests.services.test_fit_engines import TABLE, require_compiled
from tests.services.test_fit_engines import log as log  # noqa: F401  (the module's fixture)


@contextmanager
def pybkt_as_shipped() -> Iterator[None]:
    """pyBKT's own EM loop for the block (the service installs its own in every process)."""
    pyBKT.fit.EM_fit.EM_fit = pybkt_engine._ORIGINAL_EM_FIT
    try:
        yield
    finally:
        pyBKT.fit.EM_fit.EM_fit = pybkt_engine.em_fit


def frame_of(log: SyntheticLog) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": [r.order for r in log.rows],
            "user_id": [r.student for r in log.rows],
            "skill_name": [r.skill for r in log.rows],
            "correct": [int(r.correct) for r in log.rows],
        }
    )


@pytest.fixture(scope="module")
def sparse() -> pd.DataFrame:
    """60 skills, 600 students of 30 skills each: 85 % of student-skill sequences are one answer long."""
    truth = draw_skill_params(60, seed=1)
    return frame_of(
        sparse_log(truth, n_students=600, skills_per_student=30, answers=(0.85, 0.1, 0.05), seed=2)
    )


def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    held_out = split_students(list(frame["user_id"].unique()), 0.2, 0)
    test = frame["user_id"].isin(held_out)
    return frame[~test], frame[test]


def scores(frame: pd.DataFrame) -> metrics.Scores:
    return metrics.score(frame["correct"].to_numpy(), frame["correct_predictions"].to_numpy())


def test_single_answers_count_the_same_in_either_e_step(log) -> None:  # noqa: F811
    require_compiled()
    data = data_helper.convert_data(log[log["skill_name"] == TABLE].copy(), TABLE)[TABLE]
    model = {
        "prior": 0.3,
        "learns": np.array([0.2]),
        "forgets": np.array([0.01]),
        "guesses": np.array([0.2]),
        "slips": np.array([0.1]),
    }
    compiled = pybkt_engine.CompiledEStep(data, all_answers=True)(model, {}, False)
    python = pybkt_engine.python_e_step(data, model, {}, all_answers=True)
    left_out = pybkt_engine.python_e_step(data, model, {})
    for ours, theirs in zip(compiled[:3], python[:3], strict=True):
        assert np.abs(ours - theirs).max() < 1e-9
    # 53 one-answer students: their answers are now in the emission counts, nowhere else.
    assert python[1].sum() - left_out[1].sum() == pytest.approx(53, abs=1e-9)
    assert np.abs(python[0] - left_out[0]).max() == 0 and np.abs(python[2] - left_out[2]).max() == 0


def test_on_a_sparse_log_the_service_beats_the_constant_and_matches_pybkt_direct(sparse) -> None:
    train, test = split(sparse)
    fits = fitting.fit_frame(train, forgets=False, num_fits=2, seed=0, n_jobs=1)
    assert all(f.problems == [] for f in fits)
    assert Counter(f.status for f in fits) == {"fitted": 60}  # >= 20 students answered each twice
    service = scores(predict_frame(test, fitting.fits_as_params(fits)))
    with pybkt_as_shipped():
        direct_model = Model(seed=0, num_fits=2, parallel=False)
        direct_model.fit(data=train.copy())
        direct = scores(direct_model.predict(data=test.copy()))
    constant = metrics.score(test["correct"].to_numpy(), np.full(len(test), train["correct"].mean()))
    assert service.n == direct.n == len(test)
    assert service.rmse < constant.rmse - 0.01  # measured: 0.4825 against 0.4999
    assert service.auc >= direct.auc - 0.002  # measured: 0.6497 against 0.6455
    assert service.log_loss < constant.log_loss


def test_skills_too_sparse_to_identify_themselves_take_the_pooled_prior(sparse) -> None:
    """The same log cut to 40 students: no skill has 20 students who answered it twice. Without the
    pooled prior and single answers (pyBKT's pure build), EM degenerates on some skills."""
    users = sorted(sparse["user_id"].unique())[:40]
    few = sparse[sparse["user_id"].isin(users)]
    fits = fitting.fit_frame(few, forgets=False, num_fits=1, seed=0, n_jobs=1)
    assert {f.status for f in fits} == {"pooled"} and all(f.problems == [] for f in fits)
    pooled = fitting.pooled_fit(few, forgets=False, num_fits=1, seed=0)
    # Shrunk towards the pooled fit: closer to it than pyBKT's pure fit of the same rows is.
    like = {
        f.skill_id: f
        for f in fitting.fit_frame(few, forgets=False, num_fits=1, seed=0, n_jobs=1, like_pybkt=True)
    }

    def distance(params: dict[str, float]) -> float:
        return sum(abs(params[n] - pooled[n]) for n in ("prior", "learn", "guess", "slip"))

    closer = [distance(f.params) < distance(like[f.skill_id].params) for f in fits]
    assert sum(closer) >= 0.9 * len(fits)
    assert any(f.status == "constrained" or f.problems for f in like.values())


def test_parameters_are_recovered_from_a_sparse_log() -> None:
    """20 skills, 2,000 students of 10 skills, 60 % of sequences one answer and 25 % two: each parameter
    within 0.06 of the truth on average over the skills and 0.2 at worst (measured: mean errors 0.04,
    0.027, 0.024, 0.021; worst 0.13, 0.05, 0.07, 0.07)."""
    truth = draw_skill_params(20, seed=3)
    frame = frame_of(sparse_log(truth, n_students=2000, skills_per_student=10, seed=4))
    fits = fitting.fit_frame(frame, forgets=False, num_fits=2, seed=0, n_jobs=1)
    for name in ("prior", "learn", "guess", "slip"):
        errors = [abs(f.params[name] - getattr(truth[f.skill_id], name)) for f in fits]
        assert np.mean(errors) < 0.06 and max(errors) < 0.2, name


def test_the_variant_is_chosen_by_held_out_likelihood() -> None:
    """Skills drawn with forgetting are fitted with forgets, those without with standard BKT."""
    forgetful = draw_skill_params(3, seed=7, forget=0.25)
    steady = {f"s{k}": p for k, p in draw_skill_params(3, seed=8).items()}
    truth = {**forgetful, **steady}
    frame = frame_of(
        sparse_log(truth, n_students=600, skills_per_student=6, answers=(0, 0, 0, 0, 0, 0, 0, 1), seed=9)
    )
    fits = fitting.fit_frame(frame, forgets=False, num_fits=1, seed=0, n_jobs=1, choose_variant=True)
    chosen = {f.skill_id: f.variant for f in fits}
    assert chosen == {**dict.fromkeys(forgetful, "forgets"), **dict.fromkeys(steady, "standard")}
    for fit in fits:
        assert fit.held_out[fit.variant] >= max(fit.held_out.values())
        assert (fit.params["forget"] > 0.1) == (fit.variant == "forgets")


def write_assistments(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


def test_fit_params_reports_and_records_each_skills_status_and_variant(
    app, runner, school, sparse, tmp_path
) -> None:
    users = sorted(sparse["user_id"].unique())
    # 150 students (600 on five skills): those five identified by their own answers, the rest pooled;
    # one skill below --min-responses keeps its parameters (default).
    many = sparse["skill_name"].isin(["k000", "k001", "k002", "k003", "k004"])  # all 600 students
    rows = sparse[sparse["user_id"].isin(users[:150]) | many]
    rows = rows[(rows["skill_name"] != "k059") | rows["user_id"].isin(users[:20])]
    path = write_assistments(rows, tmp_path / "sparse.csv")
    assert runner.invoke(args=["import-log", str(path), "--format", "assistments"]).exit_code == 0
    result = runner.invoke(
        args=["fit-params", "--num-fits", "1", "--seed", "0", "--min-responses", "30", "--choose-variant"]
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        session = db.session()
        run = session.scalars(sa.select(FitRun).order_by(FitRun.id.desc())).first()
        status, variant = run.options["status"], run.options["variant"]
        counts = Counter(status.values())
        current = {
            p.skill_id: p
            for p in session.scalars(sa.select(SkillParameters).where(SkillParameters.is_current))
        }
    assert f"Status: fitted {counts['fitted']}, pooled {counts['pooled']}, constrained " in result.output
    assert f"default {counts['default']}" in result.output and counts["default"] == 1
    assert counts["fitted"] > 0 and counts["pooled"] > 0 and sum(counts.values()) == 60
    assert set(variant.values()) <= {"standard", "forgets"} and len(variant) == 60 - counts["default"]
    for skill, how in status.items():
        row = current[skill]
        if how == "default":
            assert row.source == "default"
        else:
            assert row.fit_run_id == run.id and row.guess < 0.5 and row.slip < 0.5
            assert (row.forget > 0) <= (variant[skill] == "forgets")
    assert run.options["pooled"]["guess"] < 0.5 and run.options["like_pybkt"] is False


def test_evaluate_model_scores_a_test_log_under_the_trained_parameters(
    app, runner, school, sparse, tmp_path
) -> None:
    train, test = split(sparse[sparse["user_id"].isin(sorted(sparse["user_id"].unique())[:300])])
    train_csv = write_assistments(train, tmp_path / "train.csv")
    # One skill the training log never saw: counted, not scored.
    extra = pd.DataFrame(
        {"order_id": [10**7], "user_id": ["s99999"], "skill_name": ["unseen"], "correct": [1]}
    )
    test_csv = write_assistments(pd.concat([test, extra]), tmp_path / "test.csv")
    assert runner.invoke(args=["import-log", str(train_csv), "--format", "assistments"]).exit_code == 0
    fitted = runner.invoke(args=["fit-params", "--num-fits", "1", "--seed", "0", "--min-responses", "1"])
    assert fitted.exit_code == 0, fitted.output
    with app.app_context():
        session = db.session()
        before = session.execute(sa.select(SkillParameters.id).where(SkillParameters.is_current)).all()
        n_rows = session.scalar(sa.select(sa.func.count()).select_from(ResponseSkill))
        params = read_snapshot(session).params

    result = runner.invoke(args=["evaluate-model", "--test-log", str(test_csv), "--format", "assistments"])
    assert result.exit_code == 0, result.output

    # The tracker's predictions, traced independently of the import.
    ours = predict_frame(test, params)
    want = scores(ours)
    constant = float(train["correct"].mean())
    baseline = metrics.score(ours["correct"].to_numpy(), np.full(len(ours), constant))
    lines = result.output.splitlines()
    overall = next(line for line in lines if line.startswith("OVERALL"))
    base = next(line for line in lines if line.startswith("CONSTANT (baseline)"))
    assert overall.split()[1:6] == [
        str(len(test)),
        f"{want.auc:.4f}",
        f"{want.rmse:.4f}",
        f"{want.log_loss:.4f}",
        f"{want.accuracy:.4f}",
    ]
    assert base.split()[2:5] == [str(len(test)), f"{baseline.auc:.4f}", f"{baseline.rmse:.4f}"]
    assert f"Rows scored: {len(test)} of {len(test) + 1} (" in result.output
    assert f"P(correct) = {constant:.4f}" in result.output
    assert "Not scored (no fitted parameters): 1 skills, 1 responses" in result.output
    assert want.rmse < baseline.rmse
    with app.app_context():
        session = db.session()
        # Rolled back: no holding school, no test students or rows; the trained parameters as they were.
        assert (
            session.scalar(
                sa.select(sa.func.count()).select_from(School).where(School.name.like("evaluation%"))
            )
            == 0
        )
        assert session.scalar(sa.select(sa.func.count()).select_from(ResponseSkill)) == n_rows
        assert (
            session.scalar(
                sa.select(sa.func.count()).select_from(Student).where(Student.external_id == "s99999")
            )
            == 0
        )
        assert (
            session.execute(sa.select(SkillParameters.id).where(SkillParameters.is_current)).all() == before
        )
