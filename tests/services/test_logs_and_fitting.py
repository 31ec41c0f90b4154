"""Importing real logs, fitting with real pyBKT, and the tracker's agreement with pyBKT."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
from pyBKT.models import Model
from sklearn.metrics import roc_auc_score

from app.domain.bkt import BktParams
from app.extensions import db
from app.models import FitRun, LearningApp, Mastery, Response, ResponseSkill, Skill, SkillParameters, Student
from app.services.modelling.evaluation import evaluate_model, predict_frame, split_students
from app.services.modelling.fitting import (
    FRAME_COLUMNS,
    adopt_parameters,
    fit_parameters,
    fit_skill,
    response_frame,
)
from app.services.modelling.imports import import_log
from app.services.modelling.mastery import check_mastery, replay_log
from app.services.people.accounts import create_school
from app.services.tutoring.content import read_snapshot
from app.settings import current_settings
from tests.conftest import DATA_DIR

TWO_SKILLS = DATA_DIR / "assistments_2skills.csv"


@pytest.fixture(scope="session")
def two_skills() -> pd.DataFrame:
    return pd.read_csv(TWO_SKILLS, encoding="latin-1", index_col=0)


@pytest.fixture
def slice_csv(two_skills: pd.DataFrame, tmp_path: Path) -> Path:
    """The first 150 students of the 2-skill ASSISTments log, as a file."""
    users = two_skills["user_id"].drop_duplicates().head(150)
    path = tmp_path / "slice.csv"
    two_skills[two_skills["user_id"].isin(users)].to_csv(path, encoding="latin-1")
    return path


@pytest.fixture(autouse=True)
def research_school(school: str) -> str:
    """Imported students belong to the only school unless --school says otherwise."""
    return school


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def skill_named(name: str) -> str:
    return db.session.scalar(sa.select(Skill.id).where(Skill.name == name))


def test_import_assistments_is_idempotent_and_creates_imported_skills(app, slice_csv, runner) -> None:
    args = ["import-log", str(slice_csv), "--format", "assistments", "--app", "research"]
    result = runner.invoke(args=args)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(slice_csv, encoding="latin-1")
    assert f"Rows read: {len(frame)}" in result.output
    assert f"Responses imported: {len(frame)}" in result.output
    assert f"Students created: {frame['user_id'].nunique()}" in result.output
    with app.app_context():
        assert count(Response) == len(frame) == count(ResponseSkill)
        imported = db.session.scalars(sa.select(Skill).where(Skill.source == "imported")).all()
        assert sorted(s.name for s in imported) == ["Box and Whisker", "Table"]
        app_id = db.session.scalar(sa.select(LearningApp.id).where(LearningApp.name == "research"))
        assert (
            db.session.scalar(sa.select(sa.func.count()).select_from(Student).where(Student.app_id == app_id))
            == frame["user_id"].nunique()
        )
        assert check_mastery(db.session(), current_settings().mastery) == []
        times = db.session.scalars(sa.select(Response.response_time_ms).limit(5)).all()
        assert all(t is None or t >= 0 for t in times) and any(t for t in times)
    again = runner.invoke(args=args)
    assert "Responses imported: 0" in again.output
    assert f"Already imported (skipped): {len(frame)}" in again.output
    with app.app_context():
        assert count(Response) == len(frame)


def test_malformed_row_imports_nothing_or_is_skipped(app, slice_csv, runner, tmp_path) -> None:
    lines = slice_csv.read_text(encoding="latin-1").splitlines()
    header = lines[0].split(",")
    broken = lines[5].split(",")
    broken[header.index("correct")] = "yes"
    lines[5] = ",".join(broken)
    lines[9] = lines[9] + ",extra"
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(lines) + "\n", encoding="latin-1")

    result = runner.invoke(args=["import-log", str(bad), "--format", "assistments"])
    assert result.exit_code == 1
    assert "2 malformed row(s), nothing imported" in result.output
    assert "row 6: correct 'yes' is not 0 or 1" in result.output and "row 10:" in result.output
    with app.app_context():
        assert count(Response) == count(Student) == count(Mastery) == 0

    result = runner.invoke(args=["import-log", str(bad), "--format", "assistments", "--skip-bad-rows"])
    assert result.exit_code == 0, result.output
    assert "Skipped, malformed: 2" in result.output and "row 6: correct 'yes'" in result.output
    with app.app_context():
        assert count(Response) == len(lines) - 3


def test_missing_columns_and_missing_file(app, runner, tmp_path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("user,skill,right\n1,a,1\n")
    result = runner.invoke(args=["import-log", str(path), "--format", "assistments"])
    assert result.exit_code == 1
    assert "missing column(s) order_id, user_id, skill_name, correct" in result.output
    result = runner.invoke(args=["import-log", str(tmp_path / "none.csv"), "--format", "datashop"])
    assert result.exit_code == 1 and "cannot read" in result.output


DATASHOP = (
    "Row\tAnon Student Id\tProblem Name\tStep Name\tCorrect First Attempt\tStep Duration (sec)\tKC(Default)\n"
    "1\tstu-a\tP1\tS1\t1\t4.5\tAdd fractions~~Simplify\n"
    "2\tstu-a\tP1\tS2\t0\t12\t\n"
    "3\tstu-a\tP2\tS1\t0\t.\tAdd fractions\n"
    "4\tstu-b\tP1\tS1\thint\t3\tSimplify\n"
    "5\tstu-b\tP2\tS1\t1\t2\tSimplify\n"
)


def test_import_datashop_with_multi_kc_and_missing_kc(app, runner, tmp_path) -> None:
    path = tmp_path / "steps.txt"
    path.write_text(DATASHOP)
    result = runner.invoke(args=["import-log", str(path), "--format", "datashop"])
    assert result.exit_code == 0, result.output
    assert "Responses imported: 4" in result.output and "Skipped, no KC: 1" in result.output
    with app.app_context():
        first = db.session.scalars(sa.select(Response).order_by(Response.id)).first()
        assert [s.skill_id for s in first.skills] == [skill_named("Add fractions"), skill_named("Simplify")]
        assert first.response_time_ms == 4500 and first.correct is True
        corrects = db.session.scalars(sa.select(Response.correct).order_by(Response.id)).all()
        assert corrects == [True, False, False, True]  # a hint first counts as not correct
        attempts = dict(
            db.session.execute(
                sa.select(Mastery.skill_id, sa.func.sum(Mastery.attempts)).group_by(Mastery.skill_id)
            ).all()
        )
        assert attempts == {skill_named("Add fractions"): 2, skill_named("Simplify"): 3}
    comma = tmp_path / "steps.csv"
    comma.write_text(DATASHOP.replace("\t", ",").replace("4.5", "4.5"))
    # Same student ids in another school: other students, so nothing is a duplicate.
    assert runner.invoke(args=["create-school", "Other"]).exit_code == 0
    result = runner.invoke(
        args=["import-log", str(comma), "--format", "datashop", "--app", "other", "--school", "Other"]
    )
    assert result.exit_code == 0 and "Responses imported: 4" in result.output


def test_tracker_agrees_with_pybkt_predict(app, slice_csv) -> None:
    """Fit pyBKT on real rows, load its parameters, replay: P(correct) and P(L) equal predict() to 1e-9."""
    frame = pd.read_csv(slice_csv, encoding="latin-1", index_col=0)
    model = Model(seed=42, num_fits=1, parallel=False)
    model.fit(data=frame.copy(), forgets=True)
    expected = model.predict(data=frame.copy())
    fitted = {s: model.fit_model[s] for s in ("Box and Whisker", "Table")}

    with app.app_context():
        session = db.session()
        import_log(session, slice_csv, "assistments", app_name="agreement", rules=current_settings().mastery)
        params = {
            skill_named(name): BktParams(
                prior=float(f["prior"]),
                learn=float(f["learns"][0]),
                guess=float(f["guesses"][0]),
                slip=float(f["slips"][0]),
                forget=float(f["forgets"][0]),
            )
            for name, f in fitted.items()
        }
        assert any(p.forget > 0 for p in params.values())
        adopt_parameters(session, params, engine="pyBKT (test)", rules=current_settings().mastery)
        assert check_mastery(session, current_settings().mastery) == []
        # The online path: a second import (other school, so other students) traces every row as
        # it is appended.
        create_school(session, "Online")
        import_log(
            session,
            slice_csv,
            "assistments",
            app_name="agreement-online",
            school_name="Online",
            rules=current_settings().mastery,
        )
        rows = session.execute(
            sa.select(
                Student.external_id,
                Response.client_response_id,
                LearningApp.name,
                ResponseSkill.p_correct,
                ResponseSkill.p_mastery_before,
            )
            .join(Response, Response.student_id == Student.id)
            .join(LearningApp, LearningApp.id == Student.app_id)
            .join(ResponseSkill, ResponseSkill.response_id == Response.id)
            .where(LearningApp.name == "agreement-online")
        ).all()
        replayed = {}
        external = dict(session.execute(sa.select(Student.id, Student.external_id)).all())
        order = dict(session.execute(sa.select(Response.id, Response.client_response_id)).all())
        for step in replay_log(session, read_snapshot(session).params, current_settings().mastery):
            replayed[(external[step.student_id], order[step.response_id])] = step

    pybkt = {
        (str(u), f"import:{o}"): (c, s)
        for u, o, c, s in zip(
            expected["user_id"],
            expected["order_id"],
            expected["correct_predictions"],
            expected["state_predictions"],
            strict=True,
        )
    }
    assert len(rows) == len(frame) == len(pybkt)
    worst = 0.0
    for external_id, client_id, _, p_correct, p_state in rows:
        want_correct, want_state = pybkt[(external_id, client_id)]
        step = replayed[(external_id, client_id)]
        worst = max(
            worst,
            abs(p_correct - want_correct),
            abs(p_state - want_state),
            abs(step.p_correct - want_correct),
            abs(step.p_mastery_before - want_state),
        )
    assert worst < 1e-9


def test_fit_params_stores_current_versions_and_replays(app, slice_csv, runner, two_skills) -> None:
    with app.app_context():
        import_log(db.session(), slice_csv, "assistments", rules=current_settings().mastery)
    kept = runner.invoke(args=["fit-params", "--num-fits", "1", "--min-responses", "100000"])
    assert kept.exit_code == 0, kept.output
    assert "Fitted 0, kept 2, rejected 0." in kept.output

    # --like-pybkt: pyBKT's pure build's fit (one-answer students left out, no pooled prior).
    result = runner.invoke(
        args=["fit-params", "--num-fits", "2", "--seed", "7", "--jobs", "2", "--like-pybkt"]
    )
    assert result.exit_code == 0, result.output
    assert "Fitted 2, kept 0, rejected 0." in result.output
    with app.app_context():
        session = db.session()
        current = {
            p.skill_id: p
            for p in session.scalars(sa.select(SkillParameters).where(SkillParameters.is_current))
        }
        frame = response_frame(session)
        run = session.scalars(sa.select(FitRun).order_by(FitRun.id.desc())).first()
        assert run.n_responses == len(frame) and run.options["num_fits"] == 2
        for name in ("Box and Whisker", "Table"):
            skill_id = skill_named(name)
            row = current[skill_id]
            assert row.source == "fitted" and row.version == 2 and row.fit_run_id == run.id
            assert row.n_responses == int((frame["skill_name"] == skill_id).sum())
            assert row.log_likelihood < 0
            # The same rows and seed given straight to pyBKT give the same parameters.
            direct = Model(seed=7, num_fits=2, parallel=False)
            direct.fit(data=frame[frame["skill_name"] == skill_id].copy())
            fitted = direct.fit_model[skill_id]
            assert row.prior == pytest.approx(float(fitted["prior"]), abs=1e-6)
            assert row.learn == pytest.approx(float(fitted["learns"][0]), abs=1e-6)
            assert row.guess == pytest.approx(float(fitted["guesses"][0]), abs=1e-6)
            assert row.slip == pytest.approx(float(fitted["slips"][0]), abs=1e-6)
        assert check_mastery(session, current_settings().mastery) == []
        # Tampered mastery is found, and rebuild-mastery repairs it.
        session.execute(sa.update(Mastery).values(p_mastery=0.5))
        session.commit()
        assert len(check_mastery(session, current_settings().mastery)) == count(Mastery)
    rebuilt = runner.invoke(args=["rebuild-mastery"])
    assert rebuilt.exit_code == 0 and "Mastery rebuilt" in rebuilt.output
    with app.app_context():
        assert check_mastery(db.session(), current_settings().mastery) == []


def test_degenerate_fits_are_reported_not_stored(app, slice_csv, monkeypatch) -> None:
    from app.services.modelling import fitting

    real = fitting.fit_frame

    def degenerate(frame, **kwargs):
        fits = real(frame, **kwargs)
        return [
            fitting.SkillFit(
                f.skill_id, {**f.params, "slip": 0.62}, f.n_students, f.n_responses, math.nan, f.restarts
            )
            if i == 0
            else f
            for i, f in enumerate(fits)
        ]

    monkeypatch.setattr(fitting, "fit_frame", degenerate)
    with app.app_context():
        session = db.session()
        import_log(session, slice_csv, "assistments", rules=current_settings().mastery)
        report = fit_parameters(session, num_fits=1, rules=current_settings().mastery)
        assert len(report.fitted) == 1 and len(report.rejected) == 1
        ((rejected_skill, why),) = report.rejected.items()
        assert "slip must be below 0.5" in why
        current = session.scalar(
            sa.select(SkillParameters).where(
                SkillParameters.skill_id == rejected_skill, SkillParameters.is_current
            )
        )
        assert current.source == "default" and current.slip < 0.5
        assert check_mastery(session, current_settings().mastery) == []


def test_evaluation_matches_pybkt_evaluate_on_the_same_split(app, runner) -> None:
    # All 902 students: on small slices EM tends to degenerate fits (guess > 0.5).
    with app.app_context():
        session = db.session()
        import_log(session, TWO_SKILLS, "assistments", rules=current_settings().mastery)
        report = evaluate_model(session, test_fraction=0.3, seed=3, num_fits=1, n_jobs=1)
        frame = response_frame(session)
    test_users = split_students(list(frame["user_id"].unique()), 0.3, 3)
    train, test = frame[~frame["user_id"].isin(test_users)], frame[frame["user_id"].isin(test_users)]
    assert report.n_test_students == len(test_users) and report.overall.n == len(test)
    assert report.kept_current == [] and report.unscored_skills == {}
    for skill, rows in test.groupby("skill_name"):
        # pyBKT scores the same held-out rows with the parameters the service traced with.
        used = report.params[skill]
        model = Model(seed=3, num_fits=1, parallel=False)
        model.coef_ = {
            skill: {
                "prior": used.prior,
                "learns": np.array([used.learn]),
                "guesses": np.array([used.guess]),
                "slips": np.array([used.slip]),
                "forgets": np.array([used.forget]),
            }
        }
        model.fit(data=train[train["skill_name"] == skill].copy(), fixed=True)
        auc, rmse = model.evaluate(data=rows.copy(), metric=["auc", "rmse"])
        theirs = model.predict(data=rows.copy()).sort_values("order_id")
        ours = predict_frame(rows, report.params)
        # Rounding differs in the last bits at each step and accumulates along students with hundreds of
        # answers: up to ~1e-8 on some random splits (the split depends on the students' random ids).
        assert (
            np.abs(ours["correct_predictions"].to_numpy() - theirs["correct_predictions"].to_numpy()).max()
            < 1e-7
        )
        # Same predictions, same metric definitions as scikit-learn's...
        assert report.per_skill[skill].auc == pytest.approx(
            roc_auc_score(ours["correct"], ours["correct_predictions"]), abs=1e-12
        )
        assert report.per_skill[skill].rmse == pytest.approx(rmse, abs=1e-9)
        # ...and pyBKT's AUC. AUC is discontinuous at ties: predictions that agree to 1e-12 can
        # tie in one implementation and not in the other (e.g. students whose P(L) saturates
        # near 1 at different steps), which moves it by 1e-5 to 3e-4 depending on the split (the
        # students' ids, hence the split, are random). With ties settled the same way (both rounded
        # to 1e-9) the two AUCs are identical: that is the exact check.
        assert report.per_skill[skill].auc == pytest.approx(auc, abs=1e-3)
        assert roc_auc_score(ours["correct"], ours["correct_predictions"].round(9)) == pytest.approx(
            roc_auc_score(theirs["correct"], theirs["correct_predictions"].round(9)), abs=1e-12
        )
    assert 0.5 < report.overall.auc < 1 and sum(b.count for b in report.calibration) == len(test)
    result = runner.invoke(
        args=["evaluate-model", "--test-fraction", "0.3", "--seed", "3", "--num-fits", "1"]
    )
    assert result.exit_code == 0, result.output
    assert f"OVERALL{'':33} {len(test):>8} {report.overall.auc:>7.4f}" in result.output


def test_imported_skills_stay_out_of_app_students_progress(
    app, slice_csv, api, shipped_graph, research_school
) -> None:
    with app.app_context():
        import_log(
            db.session(),
            slice_csv,
            "assistments",
            school_name=research_school,
            rules=current_settings().mastery,
        )
    student = api.new_student()
    progress = api.get(f"/api/v1/students/{student}/progress").get_json()
    assert progress["skills_total"] == len(shipped_graph.skills)
    skills = {s["id"]: s for s in api.get("/api/v1/skills").get_json()}
    assert skills["Table"]["exercise_count"] == 0 and skills["Table"]["parameters"]["source"] == "default"
    # Next-exercise never picks a skill without exercises.
    assert api.get(f"/api/v1/students/{student}/next-exercise").get_json()["skill_id"] in shipped_graph.skills


def test_a_degenerate_fit_is_constrained_to_the_admissible_edge(two_skills) -> None:
    """On 105 real students EM puts guess above 0.5 for 'Box and Whisker' from every start."""
    users = two_skills["user_id"].drop_duplicates().head(150).astype(str)
    frame = two_skills[two_skills["user_id"].astype(str).isin(users)][FRAME_COLUMNS].copy()
    frame["user_id"] = frame["user_id"].astype(str)
    train = frame[~frame["user_id"].isin(split_students(list(users), 0.3, 3))]
    rows = train[train["skill_name"] == "Box and Whisker"]
    fit = fit_skill("Box and Whisker", rows, forgets=False, num_fits=1, seed=3)
    assert fit.constrained == ("guess",) and fit.params["guess"] == 0.45 and fit.problems == []
    assert fit.params["slip"] < 0.5 and math.isfinite(fit.log_likelihood)
    free = Model(seed=3, num_fits=1, parallel=False)
    free.fit(data=rows.copy())
    assert float(free.fit_model["Box and Whisker"]["guesses"][0]) >= 0.5  # what pyBKT alone gives
