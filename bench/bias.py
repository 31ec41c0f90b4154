"""Bias-check benchmark, and the check run on real data.

    .venv/bin/python bench/bias.py [--students 2000] [--responses 100000] [--bootstrap 1000]
    .venv/bin/python bench/bias.py --assistments      # ../shared/data/assistments_2skills.csv by school_id
    .venv/bin/python bench/bias.py --request          # POST /api/v1/bias-checks: before (201) and after (202)

Default: synthetic audit data (100k answers of 2,000 students, 3 attributes with 2–4 groups each); times
``domain.fairness.audit`` with B bootstrap replicates and 1,000 ABROCA permutations per comparison against a
single pass without resampling (B = 0, no permutations), in the same run, and prints the ratio.

--request: the latency of a bias-check request, before and after background jobs (issue 21). A temporary
SQLite database gets STUDENTS students with consented group attributes and RESPONSES answers (written in
bulk, with the predictions a tracer would have stored); then (a) the synchronous check, as ``POST
/api/v1/bias-checks`` ran it in the request until API 1.1.0 (``run_bias_check``, timed in the app), and (b)
``POST /api/v1/bias-checks`` now, through the app as a signed-in admin: the 202's latency (median of 20
requests, each job cancelled at once), then one job run by a real worker process (``flask worker``), from 202
to succeeded.

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


def run_request(args: argparse.Namespace) -> None:
    import json
    import statistics
    import subprocess
    import uuid
    from datetime import UTC, datetime, timedelta

    import sqlalchemy as sa
    from flask_migrate import upgrade

    from app import create_app
    from app.domain.access import Principal, Role
    from app.extensions import db
    from app.models import GroupAttribute, Job, Response, ResponseSkill, SkillParameters
    from app.services.people import accounts
    from app.services.reporting import bias
    from app.services.tutoring.content import sync_content
    from app.services.tutoring.content_files import read_content
    from app.services.tutoring.students import add_students

    directory = Path(tempfile.mkdtemp(prefix="bias-bench-"))
    config = {
        "TESTING": True,
        "SECRET_KEY": "bench",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{directory / 'tutor.sqlite3'}",
        "JOBS_URL": f"sqlite:///{directory / 'jobs.sqlite3'}",
        "WTF_CSRF_ENABLED": False,
        "RATELIMIT_API": "100000 per minute",
        "RATELIMIT_LOGIN": "100000 per minute",
        "LOGIN_HASH_LOCK_DIR": str(directory),
        "LOG_LEVEL": "WARNING",
    }
    app = create_app(config)
    rng = np.random.default_rng(0)
    with app.app_context():
        upgrade()
        session = db.session()
        sync_content(session, read_content(ROOT / "content"))
        school, _ = accounts.create_school(session, "bench")
        accounts.create_staff_user(
            session, school, "admin@bench.test", "Admin", "bench password 1", role=Role.ADMIN
        )
        students = add_students(session, school.id, [f"s-{i}" for i in range(args.students)])
        ids = [s.id for s in students]
        now = datetime.now(UTC)
        session.execute(
            sa.insert(GroupAttribute),
            [
                {
                    "student_id": sid,
                    "attribute": "language_learner",
                    "value": "yes" if rng.random() < 0.2 else "no",
                    "set_at": now,
                    "set_by": "bench",
                }
                for sid in ids
            ],
        )
        params = session.execute(
            sa.select(SkillParameters.skill_id, SkillParameters.id).where(SkillParameters.is_current)
        ).all()[:10]
        student_of = rng.integers(0, len(ids), args.responses)
        truth = rng.uniform(0.2, 0.9, args.responses)
        predicted = np.clip(truth + rng.normal(0, 0.08, args.responses), 0.01, 0.99)
        correct = rng.random(args.responses) < truth
        skill_of = rng.integers(0, len(params), args.responses)
        for start in range(0, args.responses, 20_000):
            chunk = range(start, min(start + 20_000, args.responses))
            rows = [
                {
                    "student_id": ids[student_of[i]],
                    "correct": bool(correct[i]),
                    "graded_by": "app",
                    "created_at": now - timedelta(seconds=args.responses - i),
                }
                for i in chunk
            ]
            response_ids = session.scalars(
                sa.insert(Response).returning(Response.id, sort_by_parameter_order=True), rows
            ).all()
            session.execute(
                sa.insert(ResponseSkill),
                [
                    {
                        "response_id": rid,
                        "skill_id": params[skill_of[i]][0],
                        "position": 0,
                        "parameters_id": params[skill_of[i]][1],
                        "p_mastery_before": 0.5,
                        "p_correct": float(predicted[i]),
                        "p_mastery_after": 0.5,
                    }
                    for rid, i in zip(response_ids, chunk, strict=True)
                ],
            )
        session.commit()
        admin = Principal(Role.ADMIN, "bench", school.id, "bench")
        began = time.perf_counter()
        bias.run_bias_check(session, admin, "language_learner", bootstrap=args.bootstrap, seed=0)
        synchronous = time.perf_counter() - began
    print(
        f"data: {args.responses} answers of {args.students} students on {len(params)} skills, attribute "
        f"language_learner (2 groups), B = {args.bootstrap}; SQLite; cores={os.cpu_count()}"
    )
    print(f"  before (1.1.0: the check ran in the request, 201): {synchronous:.1f} s")

    client = app.test_client()
    client.post("/login", data={"email": "admin@bench.test", "password": "bench password 1"})
    latencies = []
    for n in range(20):
        began = time.perf_counter()
        answer = client.post(
            "/api/v1/bias-checks",
            json={"attribute": "language_learner", "bootstrap": args.bootstrap, "seed": 100 + n},
        )
        latencies.append(time.perf_counter() - began)
        assert answer.status_code == 202, answer.get_json()
        client.post(f"/api/v1/jobs/{answer.get_json()['id']}/cancel")
    print(
        f"  after (1.2.0: 202 with the job): median {statistics.median(latencies) * 1000:.0f} ms, "
        f"max {max(latencies) * 1000:.0f} ms over {len(latencies)} requests"
    )
    worker = subprocess.Popen(
        [sys.executable, "-c", WORKER, json.dumps(config)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        began = time.perf_counter()
        answer = client.post(
            "/api/v1/bias-checks",
            json={"attribute": "language_learner", "bootstrap": args.bootstrap, "seed": 0},
            headers={"Idempotency-Key": str(uuid.uuid4())},
        )
        accepted = time.perf_counter() - began
        location = answer.headers["Location"]
        while (job := client.get(location).get_json())["state"] in ("queued", "running"):
            time.sleep(0.2)
        done = time.perf_counter() - began
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    with app.app_context():
        started = db.session.get(Job, job["id"])
        assert started is not None
        waited = (started.started_at - started.created_at).total_seconds() if started.started_at else 0.0
    print(
        f"  the job: 202 in {accepted * 1000:.0f} ms, {job['state']} {done:.1f} s later "
        f"(worker start-up and queue wait {waited:.1f} s included), result {job['result_url']}"
    )


# A worker process for --request: `flask worker` with the bench's settings.
WORKER = """
import json, sys
sys.path.insert(0, ".")
from app import create_app
from app.services.operations import jobs
app = create_app(json.loads(sys.argv[1]))
with app.app_context():
    jobs.run_worker()
"""


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
    parser.add_argument("--request", action="store_true", help="the request's latency, before and after jobs")
    args = parser.parse_args()
    if args.request:
        run_request(args)
    elif args.assistments:
        run_assistments(args)
    else:
        run_synthetic(args)


if __name__ == "__main__":
    main()
