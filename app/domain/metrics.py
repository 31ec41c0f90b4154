"""Prediction-quality metrics on (observed 0/1, predicted probability) pairs. NumPy only.

Definitions match pyBKT's ``evaluate`` (which uses scikit-learn): AUC is the
probability that a random correct response was predicted higher than a random
incorrect one (ties count half); RMSE over all responses; accuracy thresholds at
0.5 (a prediction of exactly 0.5 counts as "correct").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

_EPS = 1e-15  # scikit-learn's clipping for log-loss


def auc(observed: Sequence[int] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y = np.asarray(observed, dtype=float)
    p = np.asarray(predicted, dtype=float)
    positives = int(y.sum())
    negatives = len(y) - positives
    if positives == 0 or negatives == 0:
        return math.nan
    # Mann-Whitney U with average ranks for ties.
    order = np.argsort(p, kind="mergesort")
    ranks = np.empty(len(p), dtype=float)
    sorted_p = p[order]
    boundaries = np.flatnonzero(np.diff(sorted_p)) + 1
    starts = np.concatenate(([0], boundaries))
    ends = np.concatenate((boundaries, [len(p)]))
    for start, end in zip(starts, ends, strict=True):
        ranks[order[start:end]] = (start + end + 1) / 2.0
    u = ranks[y == 1].sum() - positives * (positives + 1) / 2.0
    return float(u / (positives * negatives))


def rmse(observed: Sequence[int] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> float:
    y = np.asarray(observed, dtype=float)
    p = np.asarray(predicted, dtype=float)
    return float(np.sqrt(np.mean((y - p) ** 2))) if len(y) else math.nan


def log_loss(observed: Sequence[int] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> float:
    y = np.asarray(observed, dtype=float)
    p = np.clip(np.asarray(predicted, dtype=float), _EPS, 1 - _EPS)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if len(y) else math.nan


def accuracy(observed: Sequence[int] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> float:
    y = np.asarray(observed, dtype=float)
    p = np.asarray(predicted, dtype=float)
    return float(np.mean((p >= 0.5) == (y == 1))) if len(y) else math.nan


@dataclass(frozen=True)
class CalibrationBin:
    lower: float
    upper: float
    count: int
    mean_predicted: float
    observed_rate: float


def calibration_table(
    observed: Sequence[int] | np.ndarray, predicted: Sequence[float] | np.ndarray, bins: int = 10
) -> list[CalibrationBin]:
    """Reliability table: equal-width bins of predicted P(correct); empty bins are left out."""
    y = np.asarray(observed, dtype=float)
    p = np.asarray(predicted, dtype=float)
    index = np.minimum((p * bins).astype(int), bins - 1)
    table = []
    for b in range(bins):
        mask = index == b
        if mask.any():
            table.append(
                CalibrationBin(
                    b / bins, (b + 1) / bins, int(mask.sum()), float(p[mask].mean()), float(y[mask].mean())
                )
            )
    return table


@dataclass(frozen=True)
class Scores:
    n: int
    auc: float
    rmse: float
    log_loss: float
    accuracy: float


def score(observed: Sequence[int] | np.ndarray, predicted: Sequence[float] | np.ndarray) -> Scores:
    return Scores(
        len(observed),
        auc(observed, predicted),
        rmse(observed, predicted),
        log_loss(observed, predicted),
        accuracy(observed, predicted),
    )
