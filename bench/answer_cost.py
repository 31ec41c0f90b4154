"""Cost of an answer and of a log import as the student's practised skills grow (issue 26, item 3).

    .venv/bin/python bench/answer_cost.py [--backend sqlite|postgresql] [--sizes 10 100 1000]
                                          [--rows 5000] [--answers 150]

For each SIZE: a fresh database with a synthetic curriculum of max(SIZES) skills (one exercise each), then
an ASSISTments-format log of about ROWS rows in which each student practises SIZE skills (3 to 8 answers per
skill from a simulated BKT learner), imported with the service's ``import_log`` (timed per row). Then ANSWERS
answers per size through ``record_response`` (the answer path the API runs: lock, model, tracker, writes,
commit), interleaved across the sizes in rounds so load on the machine hits all alike. Prints the import's
time per row and the answer's mean and median, each as a ratio to the smallest size measured in the same
run: flat means ratios near 1.
"""

from __future__ import annotations

import argparse
import contextlib
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from app import create_app  # noqa: E402
from app.domain.access import Principal, Role  # noqa: E402
from app.domain.bkt import BktParams  # noqa: E402
from app.domain.content import Exercise, Skill, build_graph  # noqa: E402
from app.extensions import db  # noqa: E402
from app.models import LearningApp, Mastery, Student  # noqa: E402
from app.services.modelling.imports import import_log  # noqa: E402
from app.services.people import accounts  # noqa: E402
from app.services.tutoring.answers import record_response  # noqa: E402
from app.services.tutoring.config import mastery_rules  # noqa: E402
from app.services.tutoring.content import sync_content  # noqa: E402
from bench.harness import SETTINGS, fresh_database  # noqa: E402

PARAMS = BktParams(prior=0.2, learn=0.2, guess=0.2, slip=0.1)


def curriculum(size: int) -> Any:
    skills = [Skill(f"k{i:04d}", f"Skill {i}", bkt=PARAMS) for i in range(size)]
    exercises = [
        Exercise(f"x{i:04d}", (s.id,), "1 + 1", "numeric", ("2",), 0.5) for i, s in enumerate(skills)
    ]
    return build_graph(skills, exercises)


def log_rows(students: int, skills: int, seed: int) -> list[str]:
    """ASSISTments rows: each student works through ``skills`` skills, a learner with the content's BKT."""
    rng = random.Random(seed)
    rows, order = ["order_id,user_id,skill_name,correct"], 0
    for student in range(students):
        for skill in rng.sample(range(skills), skills):
            known = rng.random() < PARAMS.prior
            for _ in range(rng.randint(3, 8)):
                right = rng.random() < (1 - PARAMS.slip if known else PARAMS.guess)
                order += 1
                rows.append(f"{order},u{student},k{skill:04d},{int(right)}")
                known = known or rng.random() < PARAMS.learn
    return rows


class World:
    """One database: the curriculum, an imported log of students with ``size`` practised skills."""

    def __init__(self, url: str, size: int, catalogue: int, students: int, seed: int) -> None:
        self.size = size
        self.app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, **SETTINGS})
        with self.app.app_context():
            upgrade()
            session = db.session()
            sync_content(session, curriculum(catalogue))
            accounts.create_school(session, "Bench school")
            rows = log_rows(students, size, seed)
            with tempfile.NamedTemporaryFile("w", suffix=".csv", delete=False) as file:
                file.write("\n".join(rows) + "\n")
            began = time.perf_counter()
            import_log(session, file.name, "assistments", rules=mastery_rules())
            self.import_per_row = (time.perf_counter() - began) / (len(rows) - 1)
            Path(file.name).unlink()
            app_row = session.scalar(select(LearningApp))
            assert app_row is not None
            self.principal = Principal(Role.APP, str(app_row.id), app_row.school_id, app_row.name)
            self.students = list(session.scalars(select(Student.id)))
            self.rows_per_student = (session.scalar(select(func.count()).select_from(Mastery)) or 0) / len(
                self.students
            )
            session.commit()
        self.rng = random.Random(seed)
        self.times: list[float] = []

    def answer(self, count: int) -> None:
        with self.app.app_context():
            session = db.session()
            for _ in range(count):
                student = self.rng.choice(self.students)
                exercise = f"x{self.rng.randrange(self.size):04d}"
                began = time.perf_counter()
                record_response(
                    session, self.principal, student, exercise_id=exercise, correct=self.rng.random() < 0.7
                )
                self.times.append(time.perf_counter() - began)
            db.session.remove()

    def close(self) -> None:
        with self.app.app_context():
            db.engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    parser.add_argument("--rows", type=int, default=5000, help="about this many log rows per size")
    parser.add_argument("--answers", type=int, default=150)
    args = parser.parse_args()
    catalogue = max(args.sizes)
    with contextlib.ExitStack() as stack:
        worlds = []
        for size in args.sizes:
            url = stack.enter_context(fresh_database(args.backend))
            students = max(1, round(args.rows / (5.5 * size)))  # 5.5: the mean answers per skill
            worlds.append(World(url, size, catalogue, students, seed=size))
            stack.callback(worlds[-1].close)
        for world in worlds:
            world.answer(10)  # warm: content snapshot, caches, connections
            world.times.clear()
        for _ in range(max(1, args.answers // 10)):
            for world in worlds:
                world.answer(10)
        base = worlds[0]
        base_answer = statistics.mean(base.times)
        print(f"{args.backend}: a log of about {args.rows} rows and {len(base.times)} answers per size")
        print(
            f"{'practised skills':>17} {'rows/student':>13} {'import/row':>11} {'ratio':>6} "
            f"{'answer mean':>12} {'p50':>8} {'ratio':>6}"
        )
        for world in worlds:
            mean = statistics.mean(world.times)
            print(
                f"{world.size:>17} {world.rows_per_student:>13.0f} {world.import_per_row * 1e3:>9.3f}ms "
                f"{world.import_per_row / base.import_per_row:>6.2f} {mean * 1e3:>10.2f}ms "
                f"{statistics.median(world.times) * 1e3:>6.2f}ms {mean / base_answer:>6.2f}"
            )


if __name__ == "__main__":
    main()
