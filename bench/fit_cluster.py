"""Fitting on a Dask cluster: 1, 2 and 4 workers of a LocalCluster against the in-process path, in one run.

    .venv/bin/python bench/fit_cluster.py [--scale 10] [--workers 1 2 4] [--num-fits 1] [--no-repair]

The log: ``--scale`` (10) times the builder set (../shared/data/assistments2009_builder_train.csv: 408k rows,
3,361 students, 123 skills, the set bench/fit.py fits): each of its (student, skill) sequences is answered
``--scale`` times by a new synthetic student, the same number of answers in the same interleaving, correct or
not as drawn from a BKT model with parameters of its own per skill (seeded; admissible, so few repairs). 4.08M
rows for --scale 10, fitted as ``fit_parameters`` fits (``fitting.fit_batches`` on frames of whole skills of
at most FIT_BATCH_ROWS rows, one after another; the database read before and the replay after are the same
whatever fits, so they are left out):

  (a) the in-process path as fit-params runs it, the baseline: default jobs per batch
      (``fitting.default_jobs`` keeps a batch of fewer than a million row-fits in this process: with
      --num-fits 1, every batch),
  (b) the in-process joblib path with one loky process per core (``fit-params --jobs`` = cores),
  (c) on a ``LocalCluster(n_workers=N, threads_per_worker=1, processes=True)`` for each N of --workers,
      through ``fit_batches(..., cluster=address)``: first on fresh workers ("cold": each imports the app and
      pyBKT on its first task, as (b)'s loky processes do), then again on the same workers ("warm": a
      standing cluster between fits).

Prints each time, its ratio to (a) (ratios within one run are what mean anything: machines here are shared),
and whether every fit equals (a)'s exactly.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))
BUILDER = DATA / "assistments2009_builder_train.csv"


def synthetic_log(scale: int, seed: int) -> pd.DataFrame:
    """``scale`` synthetic copies of the builder set's shape, answers simulated under BKT (pyBKT's layout)."""
    real = pd.read_csv(BUILDER, dtype={"skill_name": str, "user_id": str})
    rng = np.random.default_rng(seed)
    skills = np.sort(real["skill_name"].unique())
    truth = {  # per skill: prior, learn, guess, slip (admissible: guess and slip well below 0.5)
        "prior": rng.uniform(0.1, 0.6, len(skills)),
        "learn": rng.uniform(0.05, 0.3, len(skills)),
        "guess": rng.uniform(0.1, 0.3, len(skills)),
        "slip": rng.uniform(0.05, 0.2, len(skills)),
    }
    skill_index = np.searchsorted(skills, real["skill_name"].to_numpy())
    sequence = real.groupby(["user_id", "skill_name"], sort=False).ngroup().to_numpy()
    step = real.groupby(sequence, sort=False).cumcount().to_numpy()
    order = np.lexsort((sequence, step))  # every sequence's t-th answer, for t = 0, 1, ...
    bounds = np.searchsorted(step[order], np.arange(step.max() + 2))
    frames = []
    for copy in range(scale):
        known = np.zeros(sequence.max() + 1, dtype=bool)
        correct = np.zeros(len(real), dtype=int)
        for t in range(len(bounds) - 1):
            rows = order[bounds[t] : bounds[t + 1]]
            who, skill = sequence[rows], skill_index[rows]
            if t == 0:
                known[who] = rng.random(len(rows)) < truth["prior"][skill]
            else:
                known[who] |= rng.random(len(rows)) < truth["learn"][skill]
            right = np.where(known[who], 1 - truth["slip"][skill], truth["guess"][skill])
            correct[rows] = rng.random(len(rows)) < right
        frames.append(
            pd.DataFrame(
                {
                    "order_id": real["order_id"].to_numpy() + copy * (int(real["order_id"].max()) + 1),
                    "user_id": f"s{copy}-" + real["user_id"],
                    "skill_name": real["skill_name"],
                    "correct": correct,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def skill_batches(log: pd.DataFrame, limit: int) -> Iterator[pd.DataFrame]:
    """As ``fitting._skill_batches`` cuts the log read from the database: by skill, then answer order; whole
    skills, at most ``limit`` rows a batch (a larger skill alone)."""
    log = log.sort_values(["skill_name", "order_id"], kind="mergesort", ignore_index=True)
    batch: list[pd.DataFrame] = []
    rows = 0
    for _, skill in log.groupby("skill_name", sort=True):
        if rows and rows + len(skill) > limit:
            yield pd.concat(batch, ignore_index=True)
            batch, rows = [], 0
        batch.append(skill)
        rows += len(skill)
    if batch:
        yield pd.concat(batch, ignore_index=True)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=int, default=10, help="copies of the builder set's shape")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--num-fits", type=int, default=1)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--no-repair", action="store_true", help="skip the retries of degenerate fits")
    args = parser.parse_args()

    import pyBKT.models  # noqa: F401 - imported before any clock starts
    from distributed import LocalCluster

    from app.services.modelling import fitting

    start = time.perf_counter()
    log = synthetic_log(args.scale, args.seed)
    batches = list(skill_batches(log, fitting.FIT_BATCH_ROWS))
    print(
        f"data: {len(log)} rows, {log['user_id'].nunique()} students, {log['skill_name'].nunique()} skills "
        f"in {len(batches)} batches (made in {time.perf_counter() - start:.0f} s); num_fits={args.num_fits}, "
        f"repair={not args.no_repair}, cores={os.cpu_count()}, default jobs per batch: "
        f"{sorted({fitting.default_jobs(len(b), b['skill_name'].nunique(), args.num_fits) for b in batches})}"
    )
    del log
    options: dict[str, Any] = {"forgets": False, "num_fits": args.num_fits, "seed": args.seed}
    options["repair"] = not args.no_repair

    def timed(**where: Any) -> tuple[float, list[fitting.SkillFit]]:
        began = time.perf_counter()
        fits = fitting.fit_batches(iter(batches), **options, **where)
        return time.perf_counter() - began, fits

    baseline, reference = timed(n_jobs=None)
    rows = [("(a) in-process, default jobs (baseline)", baseline, True)]
    cores = os.cpu_count() or 1
    seconds, fits = timed(n_jobs=cores)
    rows.append((f"(b) in-process joblib, {cores} processes", seconds, fits == reference))
    for workers in args.workers:
        with LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1"
        ) as cluster:
            for state in ("cold", "warm"):
                seconds, fits = timed(cluster=cluster.scheduler_address)
                label = f"(c) Dask, {workers} worker{'s' if workers > 1 else ''} ({state})"
                rows.append((label, seconds, fits == reference))
    print(f"{'fit':<50} {'time':>8}  {'/ (a)':>6}  same fits as (a)")
    for label, seconds, same in rows:
        print(f"{label:<50} {seconds:7.1f} s  {seconds / baseline:6.2f}  {'yes' if same else 'NO'}")
    if not all(same for *_, same in rows):
        raise SystemExit("a path fitted other parameters than (a)")


if __name__ == "__main__":
    main()
