"""Model accuracy: the service's fit and tracker against pyBKT fitted and scored directly, and a constant.

    .venv/bin/python bench/accuracy.py [--num-fits 5] [--sets builder,two-skills,sparse,datashop]
                                       [--fits service,all-answers,like-pybkt] [--choose-variant]

Each data set is split by student (the builder set as shipped in ../shared/data:
assistments2009_builder_train.csv and _test.csv; the others 80/20 with evaluation.split_students, seed 0).
On the training students:
  pyBKT direct   pyBKT as shipped (its own EM loop: the compiled build's, which counts one-answer students),
                 fitted with Model(seed=42, num_fits) on all skills and scored with its own predict;
  service        fitting.fit_frame as fit-params runs it (every answer, MAP under the pooled fit's prior,
                 degenerate fits repaired by held-out comparison), scored with the tracker's own update
                 (evaluation.predict_frame: the P(correct) an import under those parameters stores);
  all-answers    the same without the pooled prior (maximum likelihood on every answer, same repairs);
  pyBKT params   pyBKT direct's parameters, scored with the tracker's update (separates fit from tracker);
  like-pybkt     fit-params --like-pybkt (pyBKT's pure build: one-answer students left out; the old repair);
  constant       the training answers' mean correctness.
Test rows of skills a fit left unfitted are not scored (the share scored is printed). Sets:
  builder     ASSISTments 2009 skill builder, the DKT paper's split (408k train rows, 118k test rows);
  two-skills  ASSISTments_2skills.csv (pyBKT's example, 10.8k rows);
  sparse      synthetic, drawn from known parameters (domain.synthetic_logs): 300 skills, 400 students of
              60 skills each, 90 % of student-skill sequences one answer long (like a log with one skill
              per question); the fit's recovery of the true parameters is printed too;
  datashop    a synthetic sparse log written as a DataShop export (tab-separated, KC(Default),
              Correct First Attempt) and read back through the service's import parser.
The same figures come from the service end to end with import-log + fit-params + evaluate-model --test-log
(docs/PERFORMANCE.md, "Model accuracy"); tests/services/test_fit_accuracy.py checks that path on a small log.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = Path(os.environ.get("SHARED_DATA_DIR", ROOT.parent / "shared" / "data"))

from app.domain import metrics  # noqa: E402
from app.domain.logs import LogRecord  # noqa: E402
from app.domain.synthetic_logs import SyntheticLog, draw_skill_params, sparse_log  # noqa: E402
from app.services.modelling import fitting, pybkt_engine  # noqa: E402
from app.services.modelling.evaluation import predict_frame, split_students  # noqa: E402
from app.services.modelling.imports import parse_log  # noqa: E402

COLUMNS = ["order_id", "user_id", "skill_name", "correct"]
FITS: dict[str, dict[str, Any]] = {
    "service": {},
    "all-answers": {"prior_strength": 0},
    "like-pybkt": {"like_pybkt": True},
}


@contextmanager
def pybkt_as_shipped() -> Iterator[None]:
    """pyBKT's own EM loop for the block (importing the fitting service installs the service's)."""
    import pyBKT.fit.EM_fit as em

    em.EM_fit = pybkt_engine._ORIGINAL_EM_FIT
    try:
        yield
    finally:
        em.EM_fit = pybkt_engine.em_fit


def read(name: str) -> pd.DataFrame:
    frame = pd.read_csv(DATA / name, encoding="latin-1")[COLUMNS].copy()
    frame["user_id"] = frame["user_id"].astype(str)
    frame["skill_name"] = frame["skill_name"].astype(str)
    return frame


def frame_of(log: SyntheticLog) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "order_id": [r.order for r in log.rows],
            "user_id": [r.student for r in log.rows],
            "skill_name": [r.skill for r in log.rows],
            "correct": [int(r.correct) for r in log.rows],
        }
    )


def by_student(frame: pd.DataFrame, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    held_out = split_students(list(frame["user_id"].unique()), 0.2, seed)
    test = frame["user_id"].isin(held_out)
    return frame[~test], frame[test]


def sparse_truth() -> SyntheticLog:
    truth = draw_skill_params(300, seed=1)
    return sparse_log(truth, n_students=400, skills_per_student=60, answers=(0.9, 0.07, 0.03), seed=2)


def datashop(log: SyntheticLog) -> pd.DataFrame:
    """The log written as a DataShop step export, then parsed as the import does."""
    lines = ["Row\tAnon Student Id\tProblem Name\tStep Name\tKC(Default)\tCorrect First Attempt"]
    lines += [f"{r.order}\t{r.student}\tp{r.order}\tstep\t{r.skill}\t{int(r.correct)}" for r in log.rows]
    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "export.txt"
        path.write_text("\n".join(lines) + "\n")
        records = [r for r in parse_log(path.read_text(), "datashop") if isinstance(r, LogRecord)]
    return pd.DataFrame(
        {
            "order_id": [r.order for r in records for _ in r.skills],
            "user_id": [r.student for r in records for _ in r.skills],
            "skill_name": [s for r in records for s in r.skills],
            "correct": [int(r.correct) for r in records for _ in r.skills],
        }
    )


def sets(names: list[str]) -> Iterator[tuple[str, pd.DataFrame, pd.DataFrame, SyntheticLog | None]]:
    for name in names:
        if name == "builder":
            yield (
                name,
                read("assistments2009_builder_train.csv"),
                read("assistments2009_builder_test.csv"),
                None,
            )
        elif name == "two-skills":
            yield (name, *by_student(read("assistments_2skills.csv")), None)
        elif name == "sparse":
            log = sparse_truth()
            yield (name, *by_student(frame_of(log)), log)
        elif name == "datashop":
            log = sparse_truth()
            yield (name, *by_student(datashop(log)), None)
        else:
            raise SystemExit(f"unknown set {name!r}")


def scored(frame: pd.DataFrame) -> metrics.Scores:
    return metrics.score(frame["correct"].to_numpy(), frame["correct_predictions"].to_numpy())


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--num-fits", type=int, default=5)
    parser.add_argument("--sets", default="builder,two-skills,sparse,datashop")
    parser.add_argument("--fits", default="service,all-answers,like-pybkt")
    parser.add_argument("--variants", default="standard,forgets")
    parser.add_argument(
        "--choose-variant", action="store_true", help="also the service with --choose-variant"
    )
    args = parser.parse_args()
    from pyBKT.models import Model

    print(
        f"pyBKT {pybkt_engine.pybkt_version()}, E-step: {pybkt_engine.choose_e_step(1, 1)}, "
        f"num_fits={args.num_fits}"
    )
    header = f"{'set':<11} {'variant':<9} {'fit':<13} {'rows':>7} {'scored':>7} {'AUC':>7} {'RMSE':>7} "
    print(header + f"{'logloss':>8} {'vs pyBKT':>9}  {'seconds':>7}  status")
    for name, train, test, truth in sets(args.sets.split(",")):
        constant = float(train["correct"].mean())
        for variant in args.variants.split(","):
            forgets = variant == "forgets"
            started = time.perf_counter()
            with pybkt_as_shipped():
                model = Model(seed=42, num_fits=args.num_fits, parallel=False)
                model.fit(data=train.copy(), forgets=forgets)
                direct_rows = test[test["skill_name"].isin(model.fit_model)]
                direct = scored(model.predict(data=direct_rows.copy()))
            elapsed = time.perf_counter() - started
            base = metrics.score(test["correct"].to_numpy(), np.full(len(test), constant))
            line = f"{name:<11} {variant:<9} {{:<13}} {len(test):>7} {{:>7.1%}} "
            line += "{:>7.4f} {:>7.4f} {:>8.4f} "
            print(line.format("constant", 1.0, base.auc, base.rmse, base.log_loss))
            print(
                line.format("pyBKT direct", direct.n / len(test), direct.auc, direct.rmse, direct.log_loss)
                + f"{'':>9}  {elapsed:>7.1f}"
            )
            # pyBKT's own parameters traced by the service's tracker: what the tracker's arithmetic costs.
            theirs = {
                skill: SimpleNamespace(
                    prior=float(f["prior"]),
                    learn=float(f["learns"][0]),
                    guess=float(f["guesses"][0]),
                    slip=float(f["slips"][0]),
                    forget=float(f["forgets"][0]),
                )
                for skill, f in model.fit_model.items()
            }
            traced = scored(predict_frame(test, theirs))  # type: ignore[arg-type]  # may be inadmissible
            print(
                line.format("pyBKT params", traced.n / len(test), traced.auc, traced.rmse, traced.log_loss)
                + f"{traced.auc - direct.auc:>+9.4f}  {'':>7}  (pyBKT's fit, the tracker's predictions)"
            )
            runs: list[tuple[str, dict[str, Any]]] = [(fit, FITS[fit]) for fit in args.fits.split(",")]
            if args.choose_variant and not forgets:
                runs.append(("chosen", {"choose_variant": True}))
            for fit, options in runs:
                started = time.perf_counter()
                fits = fitting.fit_frame(train, forgets=forgets, num_fits=args.num_fits, seed=42, **options)
                params = fitting.fits_as_params([f for f in fits if not f.problems])
                ours = scored(predict_frame(test, params))
                elapsed = time.perf_counter() - started
                status = Counter(f.status if not f.problems else "rejected" for f in fits)
                if fit == "chosen":
                    status.update(Counter(f.variant for f in fits))
                print(
                    line.format(fit, ours.n / len(test), ours.auc, ours.rmse, ours.log_loss)
                    + f"{ours.auc - direct.auc:>+9.4f}  {elapsed:>7.1f}  {dict(sorted(status.items()))}"
                )
                if truth is not None and fit == "service" and not forgets:
                    recovery(fits, truth)


def recovery(fits: list[fitting.SkillFit], log: SyntheticLog) -> None:
    """Mean and worst absolute error of each fitted parameter against the truth the log was drawn from."""
    parts = []
    for name in ("prior", "learn", "guess", "slip"):
        errors = [abs(f.params[name] - getattr(log.truth[f.skill_id], name)) for f in fits if not f.problems]
        parts.append(f"{name} {np.mean(errors):.3f}/{max(errors):.3f}")
    print(f"{'':<11} recovery (mean/worst |fitted - truth| over {len(fits)} skills): " + ", ".join(parts))


if __name__ == "__main__":
    main()
