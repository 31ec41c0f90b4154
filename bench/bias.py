"""Bias-check benchmark, and the check run on real data.

    .venv/bin/python bench/bias.py [--students 2000] [--responses 100000] [--bootstrap 1000]
    .venv/bin/python bench/bias.py --assistments      # ../shared/data/assistments_2skills.csv by school_id

Default: synthetic audit data (100k answers of 2,000 students, 3 attributes with 2–4 groups each); times
``domain.fairness.audit`` with B bootstrap replicates and 1,000 ABROCA permutations per comparison against a
single pass without resampling (B = 0, no permutations), in the same run, and prints the ratio.

--assistments: imports the public 2-skill ASSISTments log twice into a temporary database (once to fit
parameters with pyBKT, once more as new students traced online with them, so every stored prediction was made
before its answer by the fitted model), records each student's school as a group, and runs the service's bias
check across schools; prints the plain-words summary and the per-group figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from app.domain.fairness import DecisionData, FairnessConfig, PickData, ResponseData, audit  # noqa: E402
from app.settings import current_settings  # noqa: E402

DATA = Path(os.environ.get("SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))


def synthetic(students: int, responses: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    attributes = {
        "gender": rng.choice(
            ["female", "male", "non-binary", "prefer not to say"], students, p=[0.47, 0.47, 0.03, 0.03]
        ),
        "language_learner": rng.choice(["yes", "no"], students, p=[0.2, 0.8]),
        "disability_support": rng.choice(["yes", "no"], students, p=[0.1, 0.9]),
    }
    student = rng.integers(0, students, responses)
    truth = rng.uniform(0.2, 0.9, responses)
    predicted = np.clip(truth + rng.normal(0, 0.08, responses), 0.01, 0.99)
    observed = (rng.random(responses) < truth).astype(float)
    pairs = students * 10
    d_student = np.repeat(np.arange(students), 10)
    need = rng.poisson(5, pairs) + 2.0
    mastered = (rng.random(pairs) < 0.8).astype(float)
    right_after = np.where(mastered > 0, rng.binomial(3, 0.85, pairs), np.nan)
    decisions = DecisionData(
        d_student,
        need + rng.integers(0, 3, pairs),
        mastered,
        np.where(mastered > 0, need, np.nan),
        right_after,
        np.where(mastered > 0, 3.0, 0.0),
    )
    picks = PickData(d_student, (rng.random(pairs) < 0.1).astype(float))
    return attributes, ResponseData(student, predicted, observed), decisions, picks


def run_synthetic(args: argparse.Namespace) -> None:
    attributes, responses, decisions, picks = synthetic(args.students, args.responses)
    print(
        f"data: {args.responses} answers, {args.students} students, {len(attributes)} attributes; "
        f"B = {args.bootstrap}, {args.permutations} permutations per ABROCA test; cores={os.cpu_count()}"
    )
    timings = {}
    for label, config in (
        ("single pass (no resampling)", FairnessConfig(bootstrap=0, permutations=0)),
        (
            f"full audit (B = {args.bootstrap})",
            FairnessConfig(bootstrap=args.bootstrap, permutations=args.permutations),
        ),
    ):
        began = time.perf_counter()
        flags = 0
        for name, groups in attributes.items():
            report = audit(name, list(groups), responses, decisions, picks, config)
            flags += len(report.flagged)
        timings[label] = time.perf_counter() - began
        print(f"{label:32} {timings[label]:8.2f} s  (flags on null data: {flags})")
    base, full = timings.values()
    print(
        f"ratio full / single pass: {full / base:.1f}× for {args.bootstrap} replicates "
        f"({1000 * (full - base) / max(args.bootstrap, 1):.2f} ms per replicate, 3 attributes)"
    )


def run_assistments(args: argparse.Namespace) -> None:
    import pandas as pd
    from flask_migrate import upgrade

    from app import create_app
    from app.domain.access import Principal, Role
    from app.extensions import db
    from app.models import Student
    from app.services.modelling.fitting import fit_parameters
    from app.services.modelling.imports import import_log
    from app.services.people import accounts, groups
    from app.services.reporting import bias

    path = DATA / "assistments_2skills.csv"
    frame = pd.read_csv(path, encoding="latin-1", index_col=0)
    school_of = {str(u): str(s) for u, s in frame.groupby("user_id")["school_id"].first().items()}
    url = f"sqlite:///{tempfile.mkdtemp()}/bias.sqlite3"
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "bench",
            "SQLALCHEMY_DATABASE_URI": url,
            "GROUP_ATTRIBUTES": {"school_id": sorted(set(school_of.values()))},
        }
    )
    with app.app_context():
        upgrade()
        session = db.session()
        fitting_school, _ = accounts.create_school(session, "fitting")
        audited, _ = accounts.create_school(session, "audited")
        rules = current_settings().mastery
        import_log(session, path, "assistments", app_name="fit", school_name="fitting", rules=rules)
        fit_parameters(session, num_fits=args.num_fits, seed=0, rules=rules)
        import_log(session, path, "assistments", app_name="audit", school_name="audited", rules=rules)
        admin = Principal(Role.ADMIN, "bench", audited.id, "bench")
        for student_id, external_id in session.execute(
            Student.__table__.select()
            .with_only_columns(Student.id, Student.external_id)
            .where(Student.school_id == audited.id)
        ).all():
            groups.set_group_attributes(
                session,
                admin,
                student_id,
                {"school_id": school_of[external_id]},
                consent_given_by="public dataset",
                commit=False,
            )
        session.commit()
        began = time.perf_counter()
        stored = bias.run_bias_check(session, admin, "school_id", bootstrap=args.bootstrap, seed=0)
        elapsed = time.perf_counter() - began
    report = stored.report
    print(
        f"{path.name}: {len(frame)} rows, {len(school_of)} students, "
        f"{frame['school_id'].nunique()} schools; check took {elapsed:.1f} s (B = {args.bootstrap})"
    )
    print(f"reference group: school {report['reference']}; AUC gap {report['auc_gap']}")
    for line in report["summary"]:
        print(f"  {line}")
    for group in report["groups"]:
        if group["status"] == "suppressed":
            continue
        m = group["metrics"]
        print(
            f"  school {group['group']:>5}: {group['students']:4} students {group['responses']:5} answers  "
            + "  ".join(
                f"{k} {_fmt(m[k])}"
                for k in ("auc", "rmse", "calibration_gap", "attempts_to_mastery", "post_mastery_accuracy")
            )
        )
    print("flags:", report["flagged"] or "none")


def _fmt(estimate: dict[str, float | None]) -> str:
    if estimate["value"] is None:
        return "n/a"
    if estimate["low"] is None:
        return f"{estimate['value']:.3f}"
    return f"{estimate['value']:.3f} [{estimate['low']:.3f}, {estimate['high']:.3f}]"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=2000)
    parser.add_argument("--responses", type=int, default=100_000)
    parser.add_argument("--bootstrap", type=int, default=1000)
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--num-fits", type=int, default=3)
    parser.add_argument("--assistments", action="store_true", help="run the check on the public log instead")
    args = parser.parse_args()
    if args.assistments:
        run_assistments(args)
    else:
        run_synthetic(args)


if __name__ == "__main__":
    main()
