"""Bias checks across student groups: per-group metrics, cluster-bootstrap intervals, permutation tests,
Benjamini–Hochberg, small-cell suppression, and flags. Pure NumPy: arrays in, a report out.

Everything resamples STUDENTS (a student's answers are not independent of each other): each bootstrap
replicate draws students with replacement, as multinomial weights, so a metric that is a ratio of per-student
sums is a matrix product (vectorised over replicates), and AUC is computed from per-response weights.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

Floats = NDArray[np.float64]


@dataclass(frozen=True)
class FairnessConfig:
    bootstrap: int = 1000  # replicates (B)
    permutations: int = 1000  # for ABROCA
    seed: int = 0
    alpha: float = 0.05  # false-discovery rate (Benjamini–Hochberg)
    suppress_below: int = 10  # students: no number at all
    flag_from: int = 30  # students: below this, shown without flags ("insufficient data")
    ratio_band: tuple[float, float] = (0.8, 1.25)
    auc_gap: float = 0.05  # AUC gap or ABROCA at least this
    post_mastery_gap: float = 0.10
    # A ratio of two small shares swings wildly (0.00 vs 0.02 is "0×"): shares must also differ by this much.
    share_difference: float = 0.05
    mastered_within: int = 10  # "share mastered within N answers"
    post_mastery_answers: int = 3  # first answers after mastery that are checked


# --- inputs ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ResponseData:
    """One row per (answer, skill): which student, predicted P(correct) BEFORE the answer, the outcome."""

    student: NDArray[np.int64]  # index into the students of the audit
    predicted: Floats
    observed: Floats  # 1.0 right (credited), 0.0 otherwise


@dataclass(frozen=True)
class DecisionData:
    """Per (student, skill) practised: answers, whether and when mastered, and what came after."""

    student: NDArray[np.int64]
    attempts: Floats  # answers on the skill
    mastered: Floats  # 1.0 when mastered
    attempts_at_mastery: Floats  # NaN when not mastered
    post_mastery_correct: Floats  # right answers among the first k after mastery (NaN if none)
    post_mastery_answers: Floats  # how many of those k there were (0 if none)


@dataclass(frozen=True)
class PickData:
    """Per recommendation: which student, and whether it sent them back (remedial) rather than forward."""

    student: NDArray[np.int64]
    remedial: Floats


# --- statistics ----------------------------------------------------------------------------------


def weighted_auc(scores: Floats, labels: Floats, weights: Floats) -> Floats:
    """AUC for each row of ``weights`` (replicates × responses); ties count one half; NaN without both
    classes.

    AUC = P(score of a positive > score of a negative), each response counted ``weight`` times.
    """
    if not len(scores):  # no answers: np.add.reduceat cannot take an empty array
        return np.full(weights.shape[0], np.nan)
    order = np.argsort(scores, kind="mergesort")
    s, y, w = scores[order], labels[order], weights[:, order]
    neg = w * (1 - y)
    pos = w * y
    # Ties: each block of equal scores gets the negatives strictly below plus half of those inside.
    starts = np.r_[0, np.flatnonzero(np.diff(s)) + 1]
    neg_block = np.add.reduceat(neg, starts, axis=1)
    pos_block = np.add.reduceat(pos, starts, axis=1)
    below = np.cumsum(neg_block, axis=1) - neg_block
    total_pos, total_neg = pos_block.sum(axis=1), neg_block.sum(axis=1)
    wins = (pos_block * (below + 0.5 * neg_block)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((total_pos > 0) & (total_neg > 0), wins / (total_pos * total_neg), np.nan)


GRID = np.linspace(0.0, 1.0, 1001)


class _SortedAnswers:
    """Answers sorted by score once; the ROC curve of any subset (a mask) then costs two cumulative sums."""

    def __init__(self, scores: Floats, outcomes: Floats) -> None:
        self.order = np.argsort(-scores, kind="mergesort")
        self.outcomes = outcomes[self.order]
        sorted_scores = scores[self.order]
        # Last position of each run of equal scores: ties move the curve in one step.
        self.ends = np.r_[np.flatnonzero(np.diff(sorted_scores)), len(sorted_scores) - 1]

    def curve(self, mask: NDArray[np.bool_]) -> Floats:
        """True-positive rate at the false-positive rates of GRID, for the answers in ``mask`` (sorted)."""
        if not len(mask):
            return np.full_like(GRID, np.nan)
        positives = np.cumsum(self.outcomes * mask)
        negatives = np.cumsum((1 - self.outcomes) * mask)
        if positives[-1] == 0 or negatives[-1] == 0:
            return np.full_like(GRID, np.nan)
        tpr = np.r_[0.0, positives[self.ends] / positives[-1]]
        fpr = np.r_[0.0, negatives[self.ends] / negatives[-1]]
        return np.interp(GRID, fpr, tpr)

    def abroca(self, mask: NDArray[np.bool_]) -> float:
        """Area between the ROC curves of the answers in ``mask`` and of the others."""
        gap = np.abs(self.curve(mask) - self.curve(~mask))
        return float(np.trapezoid(gap, GRID)) if not np.isnan(gap).any() else math.nan


def abroca(scores_a: Floats, labels_a: Floats, scores_b: Floats, labels_b: Floats) -> float:
    """Absolute between-ROC area (Gardner, Brooks & Baker 2019), on a 1001-point FPR grid."""
    answers = _SortedAnswers(np.r_[scores_a, scores_b], np.r_[labels_a, labels_b])
    in_a = np.r_[np.ones(len(scores_a), dtype=bool), np.zeros(len(scores_b), dtype=bool)]
    return answers.abroca(in_a[answers.order])


def benjamini_hochberg(p_values: Sequence[float], alpha: float) -> list[bool]:
    """Which hypotheses are rejected at false-discovery rate ``alpha`` (NaN p-values never are)."""
    p = np.array(p_values, dtype=float)
    valid = np.flatnonzero(~np.isnan(p))
    rejected = [False] * len(p)
    if not len(valid):
        return rejected
    order = valid[np.argsort(p[valid])]
    m = len(valid)
    passing = np.flatnonzero(p[order] <= alpha * (np.arange(1, m + 1) / m))
    if len(passing):
        for index in order[: passing[-1] + 1]:
            rejected[int(index)] = True
    return rejected


def bootstrap_p(differences: Floats) -> float:
    """Two-sided p-value of "no difference" from the bootstrap distribution of a difference."""
    d = differences[~np.isnan(differences)]
    if len(d) == 0:
        return math.nan
    below, above = (d <= 0).mean(), (d >= 0).mean()
    return float(min(1.0, 2 * min(below, above)))


# --- the report ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Estimate:
    value: float | None
    low: float | None  # 95% interval (bootstrap percentiles)
    high: float | None


@dataclass(frozen=True)
class GroupResult:
    group: str
    # "reported", "insufficient data" (10–29 students: no flags), "suppressed" (< 10: no numbers),
    # "no answers" (enough students, none answered in the window: no numbers, never compared)
    status: str
    students: int | None
    responses: int | None
    metrics: dict[str, Estimate] = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """One test: a group against the reference group on one metric."""

    metric: str
    group: str
    reference: str
    difference: float  # group − reference (for AUC: reference − group; for ABROCA: the area)
    ratio: float | None  # group / reference, where a ratio means something
    p_value: float
    significant: bool  # after Benjamini–Hochberg across the whole report
    large: bool
    flagged: bool
    reason: str
    enough: bool = True  # both groups have at least ``flag_from`` students


@dataclass(frozen=True)
class FairnessReport:
    attribute: str
    reference: str
    groups: list[GroupResult]
    comparisons: list[Comparison]
    auc_gap: float | None  # best − worst AUC among groups of 30+ students
    config: FairnessConfig
    caveats: list[str]

    @property
    def flagged(self) -> list[Comparison]:
        return [c for c in self.comparisons if c.flagged]


# Metric name -> (what it is, kind of comparison)
METRICS: dict[str, tuple[str, str]] = {
    "auc": ("AUC of the predictions made before each answer", "auc"),
    "rmse": ("RMSE of those predictions", "ratio"),
    "calibration_gap": ("mean predicted − mean observed", "difference"),
    "attempts_to_mastery": ("answers it took to master a skill", "ratio"),
    "mastered_within_n": ("share of practised skills mastered within N answers", "ratio"),
    "wheel_spinning": ("share of practised skills with 10+ answers and no mastery", "ratio"),
    "post_mastery_accuracy": ("accuracy on the first answers after mastery", "post_mastery"),
    "remedial_share": ("share of recommendations sending the student back to a prerequisite", "ratio"),
}


SHARES = {"mastered_within_n", "wheel_spinning", "remedial_share"}


def audit(
    attribute: str,
    groups: Sequence[str],
    responses: ResponseData,
    decisions: DecisionData,
    picks: PickData,
    config: FairnessConfig,
    *,
    reference: str | None = None,
) -> FairnessReport:
    """The full report for one attribute. ``groups[i]`` is student i's group."""
    labels = np.array(groups, dtype=object)
    names, counts = np.unique(labels, return_counts=True)
    size = dict(zip(names.tolist(), counts.tolist(), strict=True))
    answered = set(labels[np.unique(responses.student)].tolist())
    large_enough = sorted((g for g in size if size[g] >= config.suppress_below), key=lambda g: (-size[g], g))
    # A group without answers has nothing to measure: shown as such, never compared, never the reference.
    silent = [g for g in large_enough if g not in answered]
    shown = [g for g in large_enough if g in answered]
    if reference is None or reference not in shown:
        reference = shown[0] if shown else ""
    rng = np.random.default_rng(config.seed)
    n = len(labels)
    # Replicate b draws student i weights[b, i] times.
    weights = (
        rng.multinomial(n, np.full(n, 1.0 / n), size=config.bootstrap).astype(float)
        if n
        else np.zeros((config.bootstrap, 0))
    )

    per_group: dict[str, dict[str, tuple[float, Floats]]] = {}
    for group in shown:
        member = (labels == group).astype(float)
        per_group[group] = _group_metrics(member, weights, responses, decisions, picks, config)

    results = [GroupResult(g, "suppressed", None, None) for g in sorted(size) if g not in large_enough]
    results += [GroupResult(g, "no answers", size[g], 0) for g in silent]
    for group in shown:
        metrics = {name: _estimate(point, draws) for name, (point, draws) in per_group[group].items()}
        status = "reported" if size[group] >= config.flag_from else "insufficient data"
        in_group = np.isin(responses.student, np.flatnonzero(labels == group))
        results.append(GroupResult(group, status, size[group], int(in_group.sum()), metrics))

    comparisons = [
        dataclasses.replace(
            c, enough=size[c.group] >= config.flag_from and size[reference] >= config.flag_from
        )
        for c in _compare(labels, reference, shown, size, per_group, responses, rng, config)
    ]
    significant = benjamini_hochberg([c.p_value for c in comparisons], config.alpha)
    comparisons = [_decide(c, s, config) for c, s in zip(comparisons, significant, strict=True)]
    # Among groups large enough to judge: small groups' AUCs swing by chance.
    aucs = [
        r.metrics["auc"].value
        for r in results
        if r.status == "reported" and r.metrics["auc"].value is not None
    ]
    caveats = [
        "No flag is not proof of no bias: small groups and small differences can go undetected.",
        f"Groups with fewer than {config.suppress_below} students are suppressed; totals leave them out.",
        f"Groups with {config.suppress_below}–{config.flag_from - 1} students are shown but never flagged.",
        "Intervals: 95% bootstrap over students; p-values corrected with Benjamini–Hochberg across this "
        "report.",
    ]
    return FairnessReport(
        attribute,
        reference,
        sorted(results, key=lambda r: r.group),
        comparisons,
        (max(aucs) - min(aucs)) if len(aucs) >= 2 else None,
        config,
        caveats,
    )


def _sums(student: NDArray[np.int64], values: Floats, n: int) -> Floats:
    """Per-student sums of ``values`` (NaN counted as 0)."""
    return np.bincount(student, weights=np.nan_to_num(values), minlength=n).astype(float)


def _ratio_of_sums(num: Floats, den: Floats, member: Floats, weights: Floats) -> tuple[float, Floats]:
    point = float((member * num).sum() / (member * den).sum()) if (member * den).sum() else math.nan
    w = weights * member
    with np.errstate(invalid="ignore", divide="ignore"):
        draws = (w @ num) / (w @ den)
    return point, draws


def _group_metrics(
    member: Floats,
    weights: Floats,
    responses: ResponseData,
    decisions: DecisionData,
    picks: PickData,
    config: FairnessConfig,
) -> dict[str, tuple[float, Floats]]:
    n = len(member)
    r = responses
    count = _sums(r.student, np.ones_like(r.predicted), n)
    out: dict[str, tuple[float, Floats]] = {}
    sq = _sums(r.student, (r.predicted - r.observed) ** 2, n)
    mse_point, mse_draws = _ratio_of_sums(sq, count, member, weights)
    out["rmse"] = (math.sqrt(mse_point) if mse_point == mse_point else math.nan, np.sqrt(mse_draws))
    gap_point, gap_draws = _ratio_of_sums(
        _sums(r.student, r.predicted - r.observed, n), count, member, weights
    )
    out["calibration_gap"] = (gap_point, gap_draws)
    in_group = member[r.student] > 0
    ones = np.ones((1, int(in_group.sum())))
    point_auc = weighted_auc(r.predicted[in_group], r.observed[in_group], ones)[0]
    out["auc"] = (float(point_auc), _chunked_auc(r, in_group, weights))

    d = decisions
    mastered_attempts = np.where(d.mastered > 0, d.attempts_at_mastery, 0.0)
    out["attempts_to_mastery"] = _ratio_of_sums(
        _sums(d.student, mastered_attempts, n), _sums(d.student, d.mastered, n), member, weights
    )
    within = (d.mastered > 0) & (np.nan_to_num(d.attempts_at_mastery, nan=np.inf) <= config.mastered_within)
    practised = _sums(d.student, np.ones_like(d.attempts), n)
    out["mastered_within_n"] = _ratio_of_sums(
        _sums(d.student, within.astype(float), n), practised, member, weights
    )
    spinning = ((d.mastered == 0) & (d.attempts >= 10)).astype(float)
    out["wheel_spinning"] = _ratio_of_sums(_sums(d.student, spinning, n), practised, member, weights)
    right_after = _sums(d.student, d.post_mastery_correct, n)
    out["post_mastery_accuracy"] = _ratio_of_sums(
        right_after, _sums(d.student, d.post_mastery_answers, n), member, weights
    )
    remedial = _sums(picks.student, picks.remedial, n)
    out["remedial_share"] = _ratio_of_sums(
        remedial, _sums(picks.student, np.ones_like(picks.remedial), n), member, weights
    )
    return out


def _chunked_auc(r: ResponseData, in_group: NDArray[np.bool_], weights: Floats, chunk: int = 64) -> Floats:
    """Bootstrap AUCs of a group: replicate weights per response (student weight), 64 replicates at a time."""
    students = r.student[in_group]
    scores, labels = r.predicted[in_group], r.observed[in_group]
    draws = []
    for start in range(0, weights.shape[0], chunk):
        draws.append(weighted_auc(scores, labels, weights[start : start + chunk][:, students]))
    return np.concatenate(draws) if draws else np.array([])


def _estimate(point: float, draws: Floats) -> Estimate:
    finite = draws[np.isfinite(draws)]
    if not math.isfinite(point):
        return Estimate(None, None, None)
    if len(finite) < 2:
        return Estimate(point, None, None)
    low, high = np.percentile(finite, [2.5, 97.5])
    return Estimate(point, float(low), float(high))


def _compare(
    labels: NDArray[np.object_],
    reference: str,
    shown: list[str],
    size: Mapping[str, int],
    per_group: dict[str, dict[str, tuple[float, Floats]]],
    responses: ResponseData,
    rng: np.random.Generator,
    config: FairnessConfig,
) -> list[Comparison]:
    comparisons: list[Comparison] = []
    ref = per_group.get(reference, {})
    for group in shown:
        if group == reference:
            continue
        for metric, (_, kind) in METRICS.items():
            g_point, g_draws = per_group[group][metric]
            r_point, r_draws = ref[metric]
            if not (math.isfinite(g_point) and math.isfinite(r_point)):
                continue
            if kind == "auc":
                difference = r_point - g_point
                p = bootstrap_p(r_draws - g_draws)
                ratio = None
            elif kind in ("difference", "post_mastery"):
                difference = g_point - r_point
                p = bootstrap_p(g_draws - r_draws)
                ratio = None
            else:
                difference = g_point - r_point
                with np.errstate(invalid="ignore", divide="ignore"):
                    p = bootstrap_p(np.log(g_draws / r_draws))
                ratio = g_point / r_point if r_point else None
            comparisons.append(
                Comparison(metric, group, reference, difference, ratio, p, False, False, False, "")
            )
        comparisons.append(_abroca_test(labels, group, reference, responses, rng, config))
    return comparisons


def _abroca_test(
    labels: NDArray[np.object_],
    group: str,
    reference: str,
    responses: ResponseData,
    rng: np.random.Generator,
    config: FairnessConfig,
) -> Comparison:
    """ABROCA between a group and the reference, with a p-value from permuting group labels over students
    (the answers are sorted once; each permutation costs two cumulative sums)."""
    pair = np.flatnonzero((labels == group) | (labels == reference))
    is_group = labels[pair] == group
    position = np.full(len(labels), -1)
    position[pair] = np.arange(len(pair))
    rows = position[responses.student] >= 0
    answers = _SortedAnswers(responses.predicted[rows], responses.observed[rows])
    row_student = position[responses.student[rows]][answers.order]

    def area(assign: NDArray[np.bool_]) -> float:
        return answers.abroca(assign[row_student])

    observed = area(is_group)
    null = np.array([area(rng.permutation(is_group)) for _ in range(config.permutations)])
    null = null[np.isfinite(null)]
    p = float((1 + (null >= observed).sum()) / (1 + len(null))) if math.isfinite(observed) else math.nan
    return Comparison("abroca", group, reference, observed, None, p, False, False, False, "")


def correct_jointly(reports: Sequence[FairnessReport]) -> list[FairnessReport]:
    """Benjamini–Hochberg across every test of several reports (overall and per skill) as one family."""
    if not reports:
        return []
    config = reports[0].config
    tests = [c for r in reports for c in r.comparisons]
    significant = iter(benjamini_hochberg([c.p_value for c in tests], config.alpha))
    return [
        dataclasses.replace(r, comparisons=[_decide(c, next(significant), config) for c in r.comparisons])
        for r in reports
    ]


def _decide(c: Comparison, significant: bool, config: FairnessConfig) -> Comparison:
    low, high = config.ratio_band
    if c.metric in ("auc", "abroca"):
        large = c.difference >= config.auc_gap
        why = (
            f"{'AUC lower by' if c.metric == 'auc' else 'ABROCA'} {c.difference:.3f} "
            f"(threshold {config.auc_gap})"
        )
    elif c.metric == "post_mastery_accuracy":
        # The premature-mastery signal: mastery declared, yet the next answers go worse than for others.
        large = c.difference <= -config.post_mastery_gap
        why = (
            f"accuracy right after mastery lower by {-c.difference:.2f} (threshold {config.post_mastery_gap})"
        )
    elif c.metric == "calibration_gap":
        large = abs(c.difference) >= config.auc_gap
        why = f"calibration differs by {c.difference:+.3f}"
    else:
        large = c.ratio is not None and not (low <= c.ratio <= high)
        if c.metric in SHARES:
            large = large and abs(c.difference) >= config.share_difference
        why = f"ratio {c.ratio:.2f} to {c.reference} (band {low}–{high})" if c.ratio is not None else ""
    return dataclasses.replace(
        c, significant=significant, large=large, flagged=significant and large and c.enough, reason=why
    )


def plain_summary(report: FairnessReport) -> list[str]:
    """What a head teacher reads: one line per group."""
    if not report.groups:
        return [f"No student has a recorded {report.attribute}: there is nothing to compare."]
    lines = []
    flagged = {(c.group, c.metric): c for c in report.flagged}
    for result in report.groups:
        if result.status == "suppressed":
            lines.append(
                f"{result.group}: not enough data (fewer than {report.config.suppress_below} "
                "students; nothing is shown)"
            )
        elif result.status == "no answers":
            lines.append(f"{result.group}: no answers in the window ({result.students} students)")
        elif result.group == report.reference:
            lines.append(f"{result.group}: the reference group ({result.students} students)")
        elif result.status == "insufficient data":
            lines.append(f"{result.group}: not enough data to judge ({result.students} students)")
        else:
            concerns = [
                f"{METRICS[m][0] if m in METRICS else 'ROC curves'}: {c.reason}"
                for (g, m), c in flagged.items()
                if g == result.group
            ]
            lines.append(
                f"{result.group}: "
                + ("Review suggested: " + "; ".join(concerns) if concerns else "No concern detected")
            )
    return lines
