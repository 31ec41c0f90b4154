"""Fitting benchmark: pyBKT called directly (pure Python, compiled) vs the service's fit path, in one run.

    .venv/bin/python bench/fit.py [--rows N] [--num-fits 1] [--skip-pure] [--database-url URL]

On ../shared/data/assistments2009_builder_train.csv (408k rows, 123 skills), each phase in a child process
of its own (so each reports its own peak RSS: the process, and the largest of its joblib workers):
  (a) pyBKT ``Model.fit`` on the DataFrame with the pure-Python E-step (~3 minutes; --skip-pure skips it);
      the compiled install has no Python E-step of its own, so this runs the service's op-for-op port of it
      (bit-exact against the pure wheel, pinned by tests) inside the pure build's EM loop,
  (b) pyBKT ``Model.fit`` as the compiled build ships it (its own EM loop: other stopping rule, see
      app/services/modelling/pybkt_engine.py), sequential like the service's per-skill fits,
  (b') the same under the service's EM loop (compiled E-step; the parameters the service stores),
  (c) the service path: DB -> per-skill batches -> pyBKT per skill -> stored versions, with the default
      workers (fitting.default_jobs) and one per core (the mastery replay that follows is left out here
      and timed in (d)); pyBKT is imported before the clock starts, as in (a) and (b),
  (d) (c) as `flask fit-params` runs it: repairing degenerate fits, then the mastery replay (timed apart),
  (e) (d) with forgets.
It prints the times, the ratio c/b (target <= 1.5; machines here are shared and noisy: only ratios within
one run mean anything), and scores (d) and (e) on the held-out students of assistments2009_builder_test.csv
with the service's tracker (AUC, RMSE), beside pyBKT's own evaluate of (b') and its forgets twin.
The parent imports nothing of the app: a child that must see pyBKT as shipped never gets the service's EM
loop installed.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from contextlib import nullcontext
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))
TRAIN, TEST = "assistments2009_builder_train.csv", "assistments2009_builder_test.csv"


def _rss_now_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _child(conn: Connection, target: Callable[..., dict[str, Any]], args: tuple[Any, ...]) -> None:
    try:
        result = target(*args)
    except BaseException:
        conn.send({"error": traceback.format_exc()})
        raise
    if "joblib" in sys.modules:  # end the reusable workers, so RUSAGE_CHILDREN counts them
        from joblib.externals.loky import get_reusable_executor

        get_reusable_executor().shutdown(wait=True)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result["workers_peak_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    conn.send(result)


def in_child(target: Callable[..., dict[str, Any]], *args: Any) -> dict[str, Any]:
    """Run one phase in a fresh (spawned) interpreter and return what it measured."""
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=_child, args=(send, target, args))
    process.start()
    result: dict[str, Any] = receive.recv()
    process.join()
    if "error" in result:
        raise SystemExit(f"{target.__name__} failed:\n{result['error']}")
    return result


def read_log(path: Path, rows: int) -> Any:
    import pandas as pd

    frame = pd.read_csv(path, dtype={"skill_name": str, "user_id": str})
    return frame.head(rows) if rows else frame


def make_app(url: str) -> Any:
    from app import create_app

    return create_app({"TESTING": True, "SECRET_KEY": "bench", "SQLALCHEMY_DATABASE_URI": url})


def import_phase(url: str, train_path: str) -> dict[str, Any]:
    from flask_migrate import upgrade

    from app.extensions import db
    from app.services.modelling.imports import import_log
    from app.services.people.accounts import create_school
    from app.settings import current_settings

    app = make_app(url)
    with app.app_context():
        upgrade()
        create_school(db.session(), "bench")
        start = time.perf_counter()
        report = import_log(
            db.session(), train_path, "assistments", app_name="bench", rules=current_settings().mastery
        )
    return {"seconds": time.perf_counter() - start, "responses": report.responses_imported}


def direct_phase(
    train_path: str, rows: int, num_fits: int, seed: int, engine: str, forgets: bool, test_path: str
) -> dict[str, Any]:
    """pyBKT's Model.fit on the whole DataFrame. engine: "raw" (as shipped), "pure", "routed" (service EM)."""
    context: Any = nullcontext()
    if engine != "raw":
        from app.services.modelling import fitting  # installs the service's EM loop in this process

        context = fitting.pure_python_e_step() if engine == "pure" else nullcontext()
    from pyBKT.models import Model

    before = _rss_now_mb()  # the growth from here counts the DataFrame, as the service's counts its batches
    train = read_log(Path(train_path), rows)
    model = Model(seed=seed, num_fits=num_fits, parallel=False)
    start = time.perf_counter()
    with context:
        model.fit(data=train.copy(), forgets=forgets)
    result = {"seconds": time.perf_counter() - start, "rss_before_mb": before}
    if engine == "routed":
        test = read_log(Path(test_path), 0)
        auc, rmse = model.evaluate(
            data=test[test["skill_name"].isin(set(train["skill_name"]))].copy(), metric=["auc", "rmse"]
        )
        result.update(auc=auc, rmse=rmse)
    return result


def service_phase(
    url: str, num_fits: int, seed: int, jobs: int, repair: bool, forgets: bool, replay: bool
) -> dict[str, Any]:
    import pyBKT.models  # noqa: F401 - imported before the clock starts, as in direct_phase

    from app.extensions import db
    from app.models import FitRun
    from app.services.modelling import fitting
    from app.settings import current_settings

    app = make_app(url)
    times = {"replay": 0.0, "peak_before_replay_mb": 0.0}
    real_rebuild = fitting.replay_stale

    def timed_rebuild(*args: Any, **kwargs: Any) -> Any:
        times["peak_before_replay_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        if not replay:
            return None
        start = time.perf_counter()
        result = real_rebuild(*args, **kwargs)
        times["replay"] = time.perf_counter() - start
        return result

    fitting.replay_stale = timed_rebuild  # type: ignore[assignment]
    with app.app_context():
        session = db.session()
        before = _rss_now_mb()
        start = time.perf_counter()
        report = fitting.fit_parameters(
            session,
            num_fits=num_fits,
            seed=seed,
            min_responses=1,
            n_jobs=jobs or None,
            repair=repair,
            forgets=forgets,
            rules=current_settings().mastery,
        )
        elapsed = time.perf_counter() - start
        engine = session.get(FitRun, report.run_id).engine  # type: ignore[union-attr]
    return {
        "seconds": elapsed - times["replay"],
        "replay": times["replay"],
        "rss_before_mb": before,
        "peak_before_replay_mb": times["peak_before_replay_mb"],
        "engine": engine,
        "fitted": len(report.fitted),
        "constrained": sum(bool(f.constrained) for f in report.fitted),
        "rejected": len(report.rejected),
        "restarts": report.restarts,
    }


def score_phase(url: str, train_path: str, rows: int, test_path: str) -> dict[str, Any]:
    from app.domain.metrics import score
    from app.extensions import db
    from app.services.modelling.evaluation import predict_frame
    from app.services.tutoring.content import read_snapshot

    train_skills = set(read_log(Path(train_path), rows)["skill_name"])
    test = read_log(Path(test_path), 0)
    with make_app(url).app_context():
        params = read_snapshot(db.session()).params
    fitted = {s for s in params if s in train_skills}
    scored = predict_frame(test[test["skill_name"].isin(fitted)], params)
    s = score(scored["correct"].to_numpy(), scored["correct_predictions"].to_numpy())
    forget = sum(params[skill].forget > 0 for skill in fitted)
    return {"n": s.n, "auc": s.auc, "rmse": s.rmse, "log_loss": s.log_loss, "forget_skills": forget}


def memory(result: dict[str, Any]) -> str:
    """Peak RSS of the phase's process (and of its largest worker), and how far above its RSS at the start."""
    workers = result["workers_peak_mb"]
    return f"peak RSS {result['peak_mb']:4.0f} MB (+{result['peak_mb'] - result['rss_before_mb']:3.0f})" + (
        f", largest worker {workers:.0f} MB" if workers else ""
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=0, help="use only the first N rows (0: all)")
    parser.add_argument("--num-fits", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--skip-pure", action="store_true", help="skip (a), ~3 minutes on the whole set")
    parser.add_argument("--database-url", default="", help="default: a temporary SQLite file")
    args = parser.parse_args()

    train_path = DATA / TRAIN
    test_path = str(DATA / TEST)
    if args.rows:
        train_path = Path(tempfile.mkdtemp()) / "train.csv"
        read_log(DATA / TRAIN, args.rows).to_csv(train_path, index=False)
    train = read_log(train_path, 0)
    print(
        f"data: {len(train)} rows, {train['user_id'].nunique()} students, {train['skill_name'].nunique()} "
        f"skills; num_fits={args.num_fits}, cores={os.cpu_count()}"
    )
    del train
    url = args.database_url or "sqlite:///" + str(Path(tempfile.mkdtemp()) / "bench.sqlite3")
    imported = in_child(import_phase, url, str(train_path))
    print(f"import-log: {imported['responses']} responses in {imported['seconds']:.1f} s (not compared)")

    common = (str(train_path), 0, args.num_fits, args.seed)

    def show(label: str, result: dict[str, Any], extra: str = "") -> None:
        print(f"{label:<52} {result['seconds']:8.2f} s  {memory(result)}{extra}")

    pure = None
    if not args.skip_pure:
        pure = in_child(direct_phase, *common, "pure", False, test_path)
        show("(a)  pyBKT Model.fit, pure-Python E-step (port)", pure)
    shipped = in_child(direct_phase, *common, "raw", False, test_path)
    show("(b)  pyBKT Model.fit, compiled build as shipped", shipped)
    routed = in_child(direct_phase, *common, "routed", False, test_path)
    show("(b') pyBKT Model.fit, compiled E-step, service EM loop", routed)
    service = {}
    for jobs in (0, os.cpu_count() or 1):
        result = in_child(service_phase, url, args.num_fits, args.seed, jobs, False, False, False)
        service[jobs] = result
        show(
            f"(c)  service fit path, {f'{jobs} workers' if jobs else 'default jobs'}",
            result,
            f" (before the replay {result['peak_before_replay_mb']:.0f} MB); {result['engine']}",
        )
    for forgets in (False, True):
        result = in_child(service_phase, url, args.num_fits, args.seed, 0, True, forgets, True)
        scored = in_child(score_phase, url, str(train_path), 0, test_path)
        show(
            f"({'e' if forgets else 'd'})  service, as fit-params{' --forgets' if forgets else ''}",
            result,
            f" (before the replay {result['peak_before_replay_mb']:.0f} MB)",
        )
        print(
            f"     + mastery replay {result['replay']:.1f} s; fitted {result['fitted']} "
            f"({result['constrained']} constrained), rejected {result['rejected']}, EM restarts "
            f"{result['restarts']}; held out, service tracker: n={scored['n']} AUC={scored['auc']:.4f} "
            f"RMSE={scored['rmse']:.4f} log-loss={scored['log_loss']:.4f}"
            + (f"; {scored['forget_skills']} skills with forget > 0" if forgets else "")
        )
    twin = in_child(direct_phase, *common, "routed", True, test_path)
    print(
        f"held out, pyBKT's own evaluate: standard (b') AUC={routed['auc']:.4f} RMSE={routed['rmse']:.4f}; "
        f"forgets AUC={twin['auc']:.4f} RMSE={twin['rmse']:.4f} (its fit: {twin['seconds']:.2f} s)"
    )
    c, b, b_routed = service[0]["seconds"], shipped["seconds"], routed["seconds"]
    print(f"ratio c/b  (service path / pyBKT compiled as shipped): {c / b:.2f}  (target <= 1.5)")
    print(f"ratio c/b' (service path / the same fits called directly): {c / b_routed:.2f}")
    if pure is not None:
        print(f"ratio a/b' (pure-Python / compiled E-step, same fits): {pure['seconds'] / b_routed:.0f}")


if __name__ == "__main__":
    main()
