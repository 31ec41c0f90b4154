"""Class-report benchmark: the report vs one plain SELECT of the class's mastery rows, in one run.

    .venv/bin/python bench/reports.py [--students 40] [--skills 100] [--answers 50] [--repeat 20]
                                      [--database-url URL]

Builds a synthetic curriculum (SKILLS skills in prerequisite chains, one exercise each), one
class of STUDENTS students, and ANSWERS traced answers per student per skill (40 × 100 × 50 =
200,000 responses by default, written with the real tracker so the state is consistent), then
times, interleaved and REPEAT times each (medians):
  (a) baseline: one plain SELECT of the class's mastery rows (students × skills rows),
  (b) the class report as the service builds it (services.reporting.reports.class_report),
  (c) the same with a date window (SQL aggregates over the response log),
  (d) GET /api/v1/classes/<id>/report through the app, JSON included,
and prints the ratios b/a, c/a and d/a (machines here are shared and noisy: only ratios within one
run mean anything). Target: b/a <= 3.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from flask_migrate import upgrade  # noqa: E402

from app import create_app  # noqa: E402
from app.domain.access import Role  # noqa: E402
from app.domain.bkt import BktParams  # noqa: E402
from app.domain.content import Exercise, Skill, build_graph  # noqa: E402
from app.domain.tracking import StudentModel, apply_answer  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import Mastery, Response, ResponseSkill, Student  # noqa: E402
from app.services.people import accounts  # noqa: E402
from app.services.reporting import reports  # noqa: E402
from app.services.tutoring.content import read_snapshot, sync_content  # noqa: E402
from app.services.tutoring.student_models import row_values  # noqa: E402

PASSWORD = "bench password"


def build(args: argparse.Namespace) -> tuple[int, list[str]]:
    """Content, a school, a teacher, a class of students, and their traced answers. Returns (class, ids)."""
    defaults = BktParams(prior=0.2, learn=0.15, guess=0.2, slip=0.1)
    skills = [
        Skill(f"s{i:04d}", f"Skill {i}", prerequisites=(f"s{i - 1:04d}",) if i % 10 else (), bkt=defaults)
        for i in range(args.skills)
    ]
    exercises = [
        Exercise(f"e{i:04d}", (s.id,), "1 + 1", "numeric", ("2",), 0.5) for i, s in enumerate(skills)
    ]
    session = db.session()
    sync_content(session, build_graph(skills, exercises))
    school, _ = accounts.create_school(session, "Bench school")
    teacher = accounts.create_staff_user(session, school, "t@bench.test", "T", PASSWORD, role=Role.TEACHER)
    klass = accounts.create_class(session, teacher, "Bench class")
    enrolled = accounts.enroll(session, klass, [f"student-{i:03d}" for i in range(args.students)])
    snapshot = read_snapshot(session)
    rng = random.Random(7)
    start = datetime.now(UTC) - timedelta(days=60)
    response_id = 0
    for number, student in enumerate(enrolled):
        model = StudentModel()
        responses, steps, now = [], [], start
        for skill in skills:
            knows = False
            for _ in range(args.answers):
                knows = knows or rng.random() < 0.15
                correct = rng.random() < (0.9 if knows else 0.2)
                now += timedelta(minutes=1)
                response_id += 1
                traced = apply_answer(model, (skill.id,), correct, snapshot.params, now=now, threshold=0.95)
                responses.append(
                    {
                        "id": response_id,
                        "student_id": student.student_id,
                        "exercise_id": f"e{skills.index(skill):04d}",
                        "correct": correct,
                        "graded_by": "app",
                        "created_at": now,
                    }
                )
                step = traced[0]
                steps.append(
                    {
                        "response_id": response_id,
                        "skill_id": skill.id,
                        "position": 0,
                        "parameters_id": snapshot.parameters[skill.id].id,
                        "p_mastery_before": step.p_mastery_before,
                        "p_correct": step.p_correct,
                        "p_mastery_after": step.p_mastery_after,
                        "p_mastery_paced_after": step.p_mastery_paced_after,
                    }
                )
        session.execute(sa.insert(Response), responses)
        session.execute(sa.insert(ResponseSkill), steps)
        session.execute(
            sa.insert(Mastery),
            [
                {
                    "student_id": student.student_id,
                    "skill_id": skill_id,
                    "parameters_id": snapshot.parameters[skill_id].id,
                    **row_values(state),
                }
                for skill_id, state in model.skills.items()
            ],
        )
        session.execute(
            sa.update(Student)
            .where(Student.id == student.student_id)
            .values(speed_weights=model.speed_weights, answer_count=len(responses), last_answer_at=now)
        )
        session.commit()
        print(f"\r  students written: {number + 1}/{len(enrolled)}", end="", file=sys.stderr)
    print(file=sys.stderr)
    return klass.id, [e.student_id for e in enrolled]


def median_times(runs: dict[str, Callable[[], object]], repeat: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(repeat):
        for name, run in runs.items():  # interleaved, so drift hits every candidate alike
            began = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - began)
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--students", type=int, default=40)
    parser.add_argument("--skills", type=int, default=100)
    parser.add_argument("--answers", type=int, default=50, help="answers per student per skill")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    args = parser.parse_args()
    url = args.database_url or f"sqlite:///{tempfile.mkdtemp()}/bench.sqlite3"
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "bench",
            "SQLALCHEMY_DATABASE_URI": url,
            "SESSION_COOKIE_SECURE": False,
            "RATELIMIT_API": "1000000 per minute",
        }
    )
    with app.app_context():
        upgrade()
        began = time.perf_counter()
        class_id, ids = build(args)
        print(
            f"data: {args.students} students × {args.skills} skills × {args.answers} answers = "
            f"{args.students * args.skills * args.answers} responses on {db.engine.dialect.name} "
            f"(written in {time.perf_counter() - began:.0f} s)"
        )
        teacher = accounts.staff_principal(accounts.find_staff_user(db.session(), "t@bench.test"))
        mastery = Mastery.__table__
        since = datetime.now(UTC) - timedelta(days=30)

        def plain_select() -> object:
            rows = db.session.execute(sa.select(mastery).where(mastery.c.student_id.in_(ids))).all()
            assert len(rows) == args.students * args.skills
            return rows

        def report() -> object:
            result = reports.class_report(db.session(), teacher, class_id)
            assert len(result.report.students) == args.students
            assert result.report.students[0].answers == args.skills * args.answers
            return result

        client = app.test_client()
        login_page = client.get("/login").get_data(as_text=True)
        token = login_page.split('name="csrf-token" content="')[1].split('"')[0]
        assert (
            client.post(
                "/login", data={"csrf_token": token, "email": "t@bench.test", "password": PASSWORD}
            ).status_code
            == 302
        )

        def http_report() -> object:
            response = client.get(f"/api/v1/classes/{class_id}/report")
            assert response.status_code == 200
            return response.get_data()

        runs: dict[str, Callable[[], object]] = {
            "(a) plain SELECT of the class's mastery rows": plain_select,
            "(b) class report (service)": report,
            "(c) class report, date window": lambda: reports.class_report(
                db.session(), teacher, class_id, since=since
            ),
            "(d) GET /api/v1/classes/<id>/report (JSON)": http_report,
        }
        for run in runs.values():
            run()  # warm: content snapshot, statement caches
        medians = median_times(runs, args.repeat)
        baseline = medians["(a) plain SELECT of the class's mastery rows"]
        for name, seconds in medians.items():
            print(f"{name:48} {1000 * seconds:9.1f} ms  {seconds / baseline:6.2f}× (a)")
        ratio = medians["(b) class report (service)"] / baseline
        print(f"target b/a <= 3: {'met' if ratio <= 3 else 'NOT met'} ({ratio:.2f})")


if __name__ == "__main__":
    main()
