"""Fitting benchmark: pyBKT called directly vs the service's whole fit path, in one run.

    .venv/bin/python bench/fit.py [--rows N] [--num-fits 1] [--database-url URL]

On ../shared/data/assistments2009_builder_train.csv (408k rows, 123 skills) it measures
  (a) pyBKT ``Model.fit`` on the DataFrame (sequential, parallel=False),
  (b) the service path, sequential: DB -> DataFrame -> pyBKT per skill -> stored versions
      (+ the mastery replay that follows a new version, timed separately),
  (c) the same path with one worker per core,
  (d) (c) plus the repair of degenerate fits that `flask fit-params` does (retries, constrained refits),
prints the times and the ratios b/a and c/a (machines here are shared and noisy: only the
ratios within one run mean anything), and scores the fitted parameters on the held-out
students of assistments2009_builder_test.csv (AUC, RMSE) with the service's tracker.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flask_migrate import upgrade  # noqa: E402
from pyBKT.models import Model  # noqa: E402

from app import create_app  # noqa: E402
from app.domain.metrics import score  # noqa: E402
from app.extensions import db  # noqa: E402
from app.services import fitting  # noqa: E402
from app.services.content import read_snapshot  # noqa: E402
from app.services.evaluation import predict_frame  # noqa: E402
from app.services.imports import import_log  # noqa: E402

DATA = Path(os.environ.get("SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=0, help="use only the first N rows (0: all)")
    parser.add_argument("--num-fits", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    args = parser.parse_args()

    train_path = DATA / "assistments2009_builder_train.csv"
    train = pd.read_csv(train_path, dtype={"skill_name": str, "user_id": str})
    if args.rows:
        train = train.head(args.rows)
        train_path = Path(tempfile.mkdtemp()) / "train.csv"
        train.to_csv(train_path, index=False)
    print(f"data: {len(train)} rows, {train['user_id'].nunique()} students, "
          f"{train['skill_name'].nunique()} skills; num_fits={args.num_fits}, cores={os.cpu_count()}")

    url = args.database_url or "sqlite:///" + str(Path(tempfile.mkdtemp()) / "bench.sqlite3")
    app = create_app({"TESTING": True, "SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url})
    with app.app_context():
        upgrade()
        session = db.session()
        t = time.perf_counter()
        report = import_log(session, train_path, "assistments", app_name="bench")
        print(f"import-log: {report.responses_imported} responses in {time.perf_counter() - t:.1f} s "
              "(not part of the comparison)")

        t = time.perf_counter()
        direct = Model(seed=args.seed, num_fits=args.num_fits, parallel=False)
        direct.fit(data=train.copy())
        t_direct = time.perf_counter() - t
        print(f"(a) pyBKT Model.fit directly:          {t_direct:8.1f} s")

        timings = {}
        runs = (("(b) service path, sequential", 1, False), ("(c) service path, parallel", 0, False),
                ("(d) service path, parallel, repairing degenerate fits", 0, True))
        for label, jobs, repair in runs:
            replay = 0.0
            real_rebuild = fitting.rebuild_mastery

            def timed_rebuild(*a, _real=real_rebuild, **k):  # type: ignore[no-untyped-def]
                nonlocal replay
                start = time.perf_counter()
                result = _real(*a, **k)
                replay += time.perf_counter() - start
                return result

            fitting.rebuild_mastery = timed_rebuild  # type: ignore[assignment]
            t = time.perf_counter()
            fit = fitting.fit_parameters(session, num_fits=args.num_fits, seed=args.seed, min_responses=1,
                                         n_jobs=jobs or None, repair=repair)
            elapsed = time.perf_counter() - t
            fitting.rebuild_mastery = real_rebuild
            timings[label] = elapsed - replay
            print(f"{label}: {elapsed - replay:8.1f} s  (+ mastery replay {replay:.1f} s); "
                  f"fitted {len(fit.fitted)} ({sum(bool(f.constrained) for f in fit.fitted)} constrained), "
                  f"kept {len(fit.too_little_data)}, rejected {len(fit.rejected)}; "
                  f"EM restarts {fit.restarts} (direct: {args.num_fits * train['skill_name'].nunique()})")

        b, c = timings["(b) service path, sequential"], timings["(c) service path, parallel"]
        d = timings["(d) service path, parallel, repairing degenerate fits"]
        print(f"ratio b/a (service overhead, sequential, same fits): {b / t_direct:.3f}  (target <= 1.15)")
        print(f"ratio c/a (parallel service vs direct, same fits):   {c / t_direct:.3f}  (target < 1)")
        print(f"ratio d/a (parallel, with degenerate-fit repair, as fit-params runs): {d / t_direct:.3f}")

        test = pd.read_csv(DATA / "assistments2009_builder_test.csv",
                           dtype={"skill_name": str, "user_id": str})
        params = read_snapshot(session).params
        fitted_skills = {s for s in params if s in set(train["skill_name"])}
        scored = predict_frame(test[test["skill_name"].isin(fitted_skills)], params)
        s = score(scored["correct"].to_numpy(), scored["correct_predictions"].to_numpy())
        print(f"held-out test set (service tracker): n={s.n} AUC={s.auc:.4f} RMSE={s.rmse:.4f} "
              f"log-loss={s.log_loss:.4f} accuracy={s.accuracy:.4f}")
        auc, rmse = direct.evaluate(data=test[test["skill_name"].isin(fitted_skills)].copy(),
                                    metric=["auc", "rmse"])
        print(f"held-out test set (pyBKT direct fit, its evaluate): AUC={auc:.4f} RMSE={rmse:.4f}")


if __name__ == "__main__":
    main()
