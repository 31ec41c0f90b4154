"""The figures of docs/EXPERIMENTS.md: the experiment analysis against planted truth in the simulated world.

    python -m bench.experiments            # 1000 seeded experiments per design (a few minutes on 2 cores)
    python -m bench.experiments --runs 300 # the tests' seed sets only

Each design is simulated ``--runs`` times (seeds 0.., or 1000.. for the planted effect, as in
tests/unit/test_experiments_harness.py, whose seed sets are the first 300 of these) and analysed by
``app.domain.experiments.analyse``; a naive student-level t-test on the same data is shown beside it.
"""

from __future__ import annotations

import argparse
import math
import time

from app.domain.experiments.harness import ExperimentWorld, RunSummary, run_many

ONE_GROUP = (("A", 1.0),)
DESIGNS: tuple[tuple[str, ExperimentWorld, int], ...] = (
    ("A/A, 40 classes x 25, class randomization", ExperimentWorld(group_shares=ONE_GROUP), 0),
    (
        "A/A, 40 classes x 25, students randomized within class",
        ExperimentWorld(unit="student", block_by_class=True, group_shares=ONE_GROUP),
        0,
    ),
    (
        "A/A, 40 classes x 25, students randomized (no blocking)",
        ExperimentWorld(unit="student", group_shares=ONE_GROUP),
        0,
    ),
    (
        "planted +5 points, 40 classes x 25, class randomization",
        ExperimentWorld(effect=0.6, group_shares=ONE_GROUP),
        1000,
    ),
)


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def line(name: str, s: RunSummary, seconds: float) -> str:
    se = math.sqrt(max(s.flagged * (1 - s.flagged), 1e-12) / s.runs)
    return (
        f"{name}\n"
        f"  runs {s.runs}  flagged (cluster-robust ANCOVA) {_pct(s.flagged)} ± {_pct(se)} (1 SE)"
        f"  naive t-test {_pct(s.naive_flagged)}\n"
        f"  mean claimed power at +5 points {_pct(s.mean_claimed_power)}"
        f"  'not enough data' {_pct(s.not_enough_data)}  95% interval coverage {_pct(s.coverage)}\n"
        f"  true effect {100 * s.mean_true_effect:+.2f} points"
        f"  mean estimate {100 * s.mean_estimate:+.2f} points  ({seconds:.0f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    args = parser.parse_args()
    for name, world, first in DESIGNS:
        start = time.perf_counter()
        summary = run_many(world, range(first, first + args.runs))
        print(line(name, summary, time.perf_counter() - start), flush=True)


if __name__ == "__main__":
    main()
