"""The honest analysis of an experiment: one fixed-horizon look, intention to treat.

For each treatment arm against the control, on the students ASSIGNED to them (intention to treat)
who have the outcome:

* the difference in the outcome from an OLS regression ``y ~ 1 + arm + pre-test (+ block dummies)``
  (ANCOVA: adjusting for the pre-test removes the variance it explains; a missing pre-test is filled
  with the mean plus a missing indicator), with a 95% interval and p-value from **cluster-robust**
  standard errors (CR1, statsmodels) clustered on the class whenever classes are known -- under class
  randomization the class is the unit; under student randomization classmates still share a teacher --
  and a t distribution with (classes - 1) degrees of freedom; HC1 errors when no class is known;
* its power to detect the plan's ``minimum_effect`` (statsmodels.stats.power.TTestIndPower, with the
  noncentrality minimum_effect / SE taken from the same cluster-robust SE, so the design effect of
  clustering and the gain from the pre-test are both in it). This is power at the PLANNED effect, not
  "observed power" at the estimate (which says nothing the p-value does not). Below
  ``minimum_power`` the verdict is "not enough data";
* attrition by arm (share of assigned students without the primary outcome) and its difference;
* a sample-ratio-mismatch check: chi-square of units per arm against the planned weights, flagged at
  p < 0.001 (a broken assignment or logging, not chance);
* Benjamini–Hochberg across the secondary outcomes; Holm across the primary comparisons when there
  are several treatment arms;
* effects by group (consented attributes) with the suppression rules of the bias checks
  (``fairness.FairnessConfig``): a group-by-arm cell under ``suppress_below`` students shows nothing,
  under ``flag_from`` shows the effect without a verdict; BH across the groups reported.

Fixed horizon: before ``plan.ends_at`` the report shows counts, attrition and the sample-ratio check,
never an effect, interval or p-value (looking repeatedly and stopping at the first p < 0.05 inflates
the false-positive rate well beyond 5%). No sequential method is used.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import numpy as np
from numpy.typing import NDArray
from scipy import stats
from statsmodels.regression.linear_model import OLS
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.power import TTestIndPower

from app.domain.experiments.design import ExperimentPlan
from app.domain.experiments.outcomes import OUTCOMES, SHARE_OUTCOMES, StudentRecord, student_outcomes
from app.domain.fairness import FairnessConfig

Floats = NDArray[np.float64]
SRM_ALPHA = 0.001
ATTRITION_GAP = 0.05  # differential attrition worth a caveat (5 points), whatever its p-value
MIN_CLUSTERS = 10  # cluster-robust errors with fewer classes than this are too optimistic: a caveat

VERDICTS = (
    "no verdict before the horizon",
    "not estimable",
    "not enough data",
    "difference",
    "no difference detected",
    "shown without a verdict",
)


@dataclass(frozen=True)
class Fit:
    """One regression's result for the arm coefficient (outcome units)."""

    difference: float
    se: float
    df: float
    p_value: float
    low: float
    high: float
    students: int
    clusters: int | None  # None: no classes known (HC1 errors)
    method: str


def _demean(columns: list[Floats], codes: NDArray[np.intp], size: int) -> list[Floats]:
    """Each column minus its block mean (the within transformation: the same arm coefficient as block
    dummies, by Frisch–Waugh–Lovell, without a regression on dozens of dummies)."""
    count = np.bincount(codes, minlength=size)
    return [c - (np.bincount(codes, weights=c, minlength=size) / count)[codes] for c in columns]


def estimate_difference(
    y: Floats,
    treated: Floats,
    pre: Floats | None = None,
    clusters: Sequence[str] | None = None,
    blocks: Sequence[str] | None = None,
    alpha: float = 0.05,
) -> Fit | None:
    """Difference treated - control in ``y`` (outcome units) from OLS on the arm, the pre-test (ANCOVA;
    NaN = missing, filled with the mean plus an indicator) and block fixed effects, with cluster-robust
    (CR1) errors and t(classes - 1) when ``clusters`` is given, else HC1 and t(n - parameters).
    None when not estimable (an arm empty, fewer than 3 classes, one class in an arm under class
    randomization, no residual degrees of freedom)."""
    n = len(y)
    if n < 4 or treated.min() == treated.max():
        return None
    covariates: list[Floats] = []
    names = ["arm"]
    if pre is not None:
        seen = ~np.isnan(pre)
        if seen.sum() >= 2 and np.ptp(pre[seen]) > 0:
            covariates.append(np.where(seen, pre - pre[seen].mean(), 0.0))
            names.append("pre-test")
            if not seen.all():
                covariates.append((~seen).astype(float))
    n_blocks = 1
    if blocks is not None:
        codes = np.unique(np.asarray(blocks, dtype=object), return_inverse=True)[1].astype(np.intp)
        n_blocks = int(codes.max()) + 1
    if n_blocks > 1:
        names.append("block")
        y, treated_x, *covariates = _demean([y, treated, *covariates], codes, n_blocks)
        columns = [treated_x, *covariates]
    else:
        treated_x = treated
        columns = [np.ones(n), treated, *covariates]
    x = np.column_stack(columns)
    arm_column = 0 if n_blocks > 1 else 1
    # Parameters of the full model: block intercepts (or one intercept), the arm, the covariates.
    k_full = n_blocks + 1 + len(covariates)
    if n - k_full < 2 or np.ptp(treated_x) == 0:
        return None
    # statsmodels' small-sample factor counts the columns it sees; the block means count too.
    rescale = math.sqrt((n - x.shape[1]) / (n - k_full))
    model = OLS(y, x)
    if clusters is not None:
        groups = np.unique(np.asarray(clusters, dtype=object), return_inverse=True)[1].astype(np.intp)
        g = int(groups.max()) + 1
        if g < 3 or (_constant_within(treated, groups) and min(_arm_clusters(treated, groups)) < 2):
            return None  # class randomization with one class in an arm: no between-class variance
        result = model.fit(cov_type="cluster", cov_kwds={"groups": groups}, use_t=True)
        df = float(g - 1)
        method = f"OLS on {' + '.join(names)}, cluster-robust errors by class (CR1), t({df:g})"
    else:
        g = None
        result = model.fit(cov_type="HC1", use_t=True)
        df = float(n - k_full)
        method = f"OLS on {' + '.join(names)}, robust errors (HC1), t({df:g})"
    difference, se = float(result.params[arm_column]), float(result.bse[arm_column]) * rescale
    if not (math.isfinite(se) and se > 0):
        return None
    p = float(2 * stats.t.sf(abs(difference / se), df))
    half = float(stats.t.ppf(1 - alpha / 2, df)) * se
    return Fit(difference, se, df, p, difference - half, difference + half, n, g, method)


def _constant_within(values: Floats, groups: NDArray[np.intp]) -> bool:
    low = np.full(groups.max() + 1, np.inf)
    high = np.full(groups.max() + 1, -np.inf)
    np.minimum.at(low, groups, values)
    np.maximum.at(high, groups, values)
    return bool(np.all(low == high))


def _arm_clusters(treated: Floats, groups: NDArray[np.intp]) -> tuple[int, int]:
    return len(np.unique(groups[treated > 0])), len(np.unique(groups[treated == 0]))


def power_at(minimum_effect: float, fit: Fit, control_n: int, arm_n: int, alpha: float) -> float:
    """Power in [0, 1] of a two-sided t-test with ``fit``'s SE and df to detect ``minimum_effect``.

    TTestIndPower's noncentrality is d * sqrt(n1 n2 / (n1 + n2)); d is chosen so that it equals
    minimum_effect / SE, i.e. d is the effect over the design's effective standard deviation.
    """
    scale = math.sqrt(control_n * arm_n / (control_n + arm_n))
    d = minimum_effect / fit.se / scale
    power = TTestIndPower().power(
        effect_size=d, nobs1=control_n, alpha=alpha, ratio=arm_n / control_n, df=fit.df
    )
    return float(power)


def planned_power(
    minimum_effect: float,
    sd: float,
    students_per_arm: int,
    class_size: int = 1,
    icc: float = 0.0,
    pre_test_r2: float = 0.0,
    alpha: float = 0.05,
) -> float:
    """Power in [0, 1] when planning: an outcome of standard deviation ``sd``, ``students_per_arm`` in
    classes of ``class_size`` with intra-class correlation ``icc`` (design effect 1 + (m - 1) ICC), a
    pre-test explaining ``pre_test_r2`` of the variance. Degrees of freedom: classes - 2 when clustered."""
    deff = 1 + (class_size - 1) * icc
    effective = students_per_arm / deff
    d = minimum_effect / (sd * math.sqrt(1 - pre_test_r2))
    df = 2 * students_per_arm / class_size - 2 if class_size > 1 else 2 * students_per_arm - 2
    return float(TTestIndPower().power(effect_size=d, nobs1=effective, alpha=alpha, ratio=1.0, df=df))


# --- the report ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Effect:
    """One comparison: ``arm`` against ``control`` on ``outcome`` (difference in the outcome's units)."""

    outcome: str
    arm: str
    control: str
    students: int  # with the outcome, in the two arms
    clusters: int | None
    control_mean: float | None  # raw means (unadjusted)
    arm_mean: float | None
    difference: float | None  # adjusted for the pre-test
    low: float | None  # 95% interval
    high: float | None
    p_value: float | None
    p_adjusted: float | None  # Holm (primary, several arms) or BH (secondary, groups); else = p_value
    significant: bool | None  # p_adjusted < alpha; None when no verdict is allowed
    power: float | None  # at the plan's minimum effect (primary outcome only)
    method: str
    verdict: str  # one of VERDICTS


@dataclass(frozen=True)
class ArmSummary:
    arm: str
    units: int  # units assigned (students or classes)
    students: int
    with_outcome: int  # students with the primary outcome
    attrition: float | None  # share of assigned students without it
    primary_mean: float | None


@dataclass(frozen=True)
class SampleRatioCheck:
    counts: dict[str, int]
    expected: dict[str, float]
    p_value: float | None  # None: too few units to check (an expected count below 5)
    mismatch: bool
    message: str


@dataclass(frozen=True)
class AttritionCheck:
    by_arm: dict[str, float | None]
    difference: float | None  # largest minus smallest
    p_value: float | None  # arm coefficient of the missing-outcome indicator (cluster-robust)
    differential: bool
    message: str


@dataclass(frozen=True)
class GroupEffect:
    attribute: str
    group: str
    # "reported", "insufficient data" (an arm has flag_from - 1 or fewer: no verdict), "suppressed"
    # (an arm has fewer than suppress_below: no numbers at all)
    status: str
    students: int | None
    effect: Effect | None


@dataclass(frozen=True)
class ExperimentReport:
    plan: ExperimentPlan
    as_of: datetime | None
    horizon_reached: bool
    arms: tuple[ArmSummary, ...]
    sample_ratio: SampleRatioCheck
    attrition: AttritionCheck
    primary: tuple[Effect, ...]
    secondary: tuple[Effect, ...]
    groups: tuple[GroupEffect, ...]
    excluded: dict[str, int]
    caveats: tuple[str, ...]
    group_rules: FairnessConfig = field(default_factory=FairnessConfig)  # suppression thresholds used

    def summary(self) -> list[str]:
        """Plain words for the report page, one line each."""
        return plain_summary(self)

    def rows(self) -> list[dict[str, object]]:
        """The CSV form: one row per comparison, columns ``ROW_FIELDS``."""
        return report_rows(self)


ROW_FIELDS = (
    "experiment",
    "kind",
    "outcome",
    "arm",
    "control",
    "attribute",
    "group",
    "status",
    "students",
    "clusters",
    "control_mean",
    "arm_mean",
    "difference",
    "ci_low",
    "ci_high",
    "p_value",
    "p_adjusted",
    "significant",
    "power",
    "verdict",
    "method",
)


def _no_verdict(outcome: str, arm: str, control: str, verdict: str, students: int = 0) -> Effect:
    return Effect(
        outcome,
        arm,
        control,
        students,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        None,
        "",
        verdict,
    )


@dataclass
class _Table:
    """The records as columns (one row per student)."""

    arm: NDArray[np.object_]
    unit: NDArray[np.object_]
    cluster: list[str] | None
    block: list[str] | None
    pre: Floats
    outcomes: dict[str, Floats] = field(default_factory=dict)


def _table(plan: ExperimentPlan, records: Sequence[StudentRecord]) -> _Table:
    known = {a.name for a in plan.arms}
    unknown = {r.arm for r in records} - known
    if unknown:
        raise ValueError(f"records in arms the plan does not have: {sorted(unknown)}")
    arm_of_unit: dict[str, str] = {}
    for r in records:
        if arm_of_unit.setdefault(r.unit_id, r.arm) != r.arm:
            raise ValueError(f"unit {r.unit_id!r} has students in two arms: the assignment is broken")
    clusters = [r.cluster for r in records]
    cluster = [c for c in clusters if c is not None] if all(c is not None for c in clusters) else None
    if plan.unit == "class" and cluster is None:
        cluster = [r.unit_id for r in records]  # the class is the unit
    blocks = [r.block or "" for r in records] if plan.block_by else None
    pre = np.array([np.nan if r.pre_test is None else r.pre_test for r in records], dtype=float)
    table = _Table(
        np.array([r.arm for r in records], dtype=object),
        np.array([r.unit_id for r in records], dtype=object),
        cluster,
        blocks,
        pre,
    )
    wanted = (plan.primary_outcome, *plan.secondary_outcomes)
    per_student = [student_outcomes(r, plan.ends_at, plan.dropout_after_days, wanted) for r in records]
    for name in (plan.primary_outcome, *plan.secondary_outcomes):
        table.outcomes[name] = np.array(
            [np.nan if o[name] is None else o[name] for o in per_student], dtype=float
        )
    return table


def _effect(
    plan: ExperimentPlan,
    table: _Table,
    outcome: str,
    arm: str,
    rows: NDArray[np.bool_] | None = None,
    with_power: bool = False,
) -> Effect:
    control = plan.control.name
    y_all = table.outcomes[outcome]
    pick = np.isin(table.arm, [arm, control]) & ~np.isnan(y_all)
    if rows is not None:
        pick &= rows
    idx = np.flatnonzero(pick)
    treated = (table.arm[idx] == arm).astype(float)
    y = y_all[idx]
    n_arm, n_control = int(treated.sum()), int(len(idx) - treated.sum())
    means = (
        float(y[treated == 0].mean()) if n_control else None,
        float(y[treated > 0].mean()) if n_arm else None,
    )
    fit = estimate_difference(
        y,
        treated,
        table.pre[idx],
        [table.cluster[i] for i in idx] if table.cluster is not None else None,
        [table.block[i] for i in idx] if table.block is not None else None,
        plan.alpha,
    )
    if fit is None:
        effect = _no_verdict(outcome, arm, control, "not estimable", len(idx))
        return replace(effect, control_mean=means[0], arm_mean=means[1])
    power = power_at(plan.minimum_effect, fit, n_control, n_arm, plan.alpha) if with_power else None
    return Effect(
        outcome,
        arm,
        control,
        fit.students,
        fit.clusters,
        means[0],
        means[1],
        fit.difference,
        fit.low,
        fit.high,
        fit.p_value,
        fit.p_value,
        fit.p_value <= plan.alpha,
        power,
        fit.method,
        "",
    )


def _decide(effect: Effect, p_adjusted: float, alpha: float, minimum_power: float | None) -> Effect:
    significant = p_adjusted <= alpha
    if minimum_power is not None and (effect.power is None or effect.power < minimum_power):
        verdict = "not enough data"
    else:
        verdict = "difference" if significant else "no difference detected"
    return replace(effect, p_adjusted=p_adjusted, significant=significant, verdict=verdict)


def _adjust(effects: list[Effect], method: str, alpha: float, minimum_power: float | None) -> list[Effect]:
    """Correct the estimable effects' p-values together (``method``: statsmodels' "fdr_bh" or "holm")."""
    estimable = [i for i, e in enumerate(effects) if e.p_value is not None]
    out = list(effects)
    if not estimable:
        return out
    p = [effects[i].p_value or 0.0 for i in estimable]
    adjusted = multipletests(p, alpha=alpha, method=method)[1] if len(p) > 1 else p
    for i, q in zip(estimable, adjusted, strict=True):
        out[i] = _decide(effects[i], float(q), alpha, minimum_power)
    return out


def _sample_ratio(plan: ExperimentPlan, table: _Table) -> SampleRatioCheck:
    units = {u: a for u, a in zip(table.unit.tolist(), table.arm.tolist(), strict=True)}
    counts = {a.name: 0 for a in plan.arms}
    for a in units.values():
        counts[a] += 1
    total, weight = sum(counts.values()), sum(plan.weights.values())
    expected = {a: total * w / weight for a, w in plan.weights.items()}
    kind = "classes" if plan.unit == "class" else "students"
    if min(expected.values()) < 5:
        return SampleRatioCheck(
            counts, expected, None, False, f"Too few {kind} to check the split against the plan."
        )
    p = float(stats.chisquare(list(counts.values()), list(expected.values())).pvalue)
    split = ", ".join(f"{a} {c}" for a, c in counts.items())
    if p < SRM_ALPHA:
        message = (
            f"Sample ratio mismatch: {split} {kind} is far from the planned split (p = {p:.2g}). "
            "The assignment or its logging is broken; do not trust the effects until it is found."
        )
    else:
        message = f"The split ({split} {kind}) matches the plan (p = {p:.2f})."
    return SampleRatioCheck(counts, expected, p, p < SRM_ALPHA, message)


def _attrition(plan: ExperimentPlan, table: _Table) -> AttritionCheck:
    missing = np.isnan(table.outcomes[plan.primary_outcome]).astype(float)
    by_arm: dict[str, float | None] = {}
    for a in plan.arms:
        in_arm = table.arm == a.name
        by_arm[a.name] = float(missing[in_arm].mean()) if in_arm.any() else None
    shares = [v for v in by_arm.values() if v is not None]
    difference = max(shares) - min(shares) if len(shares) >= 2 else None
    p_values = []
    for a in plan.arms:
        if a.name == plan.control.name:
            continue
        pick = np.flatnonzero(np.isin(table.arm, [a.name, plan.control.name]))
        treated = (table.arm[pick] == a.name).astype(float)
        fit = estimate_difference(
            missing[pick],
            treated,
            None,
            [table.cluster[i] for i in pick] if table.cluster is not None else None,
        )
        if fit is not None:
            p_values.append(fit.p_value)
    p = min(1.0, min(p_values) * len(p_values)) if p_values else None  # Bonferroni over arms
    differential = difference is not None and (difference >= ATTRITION_GAP or (p is not None and p < 0.05))
    words = ", ".join(f"{a} {v:.0%}" for a, v in by_arm.items() if v is not None)
    message = f"Students without the primary outcome: {words}."
    if differential:
        message += (
            " Attrition differs between arms: the students measured may no longer be comparable, "
            "so the effect may be biased."
        )
    return AttritionCheck(by_arm, difference, p, differential, message)


def _group_effects(
    plan: ExperimentPlan, table: _Table, records: Sequence[StudentRecord], config: FairnessConfig
) -> list[GroupEffect]:
    attributes = sorted({k for r in records for k in r.groups})
    outcome = table.outcomes[plan.primary_outcome]
    found: list[GroupEffect] = []
    for attribute in attributes:
        labels = np.array([r.groups.get(attribute, "") for r in records], dtype=object)
        for group in sorted(set(labels.tolist()) - {""}):
            rows = (labels == group) & ~np.isnan(outcome)
            for arm in plan.arms:
                if arm.name == plan.control.name:
                    continue
                cells = [int((rows & (table.arm == a)).sum()) for a in (plan.control.name, arm.name)]
                students = sum(cells)
                if min(cells) < config.suppress_below:
                    found.append(GroupEffect(attribute, group, "suppressed", None, None))
                    continue
                effect = _effect(plan, table, plan.primary_outcome, arm.name, rows)
                status = "reported" if min(cells) >= config.flag_from else "insufficient data"
                if status == "insufficient data":
                    effect = replace(effect, significant=None, verdict="shown without a verdict")
                found.append(GroupEffect(attribute, group, status, students, effect))
    reported = [(i, g.effect) for i, g in enumerate(found) if g.status == "reported" and g.effect is not None]
    adjusted = _adjust([e for _, e in reported], "fdr_bh", plan.alpha, None)
    for (i, _), effect in zip(reported, adjusted, strict=True):
        g = found[i]
        found[i] = GroupEffect(g.attribute, g.group, g.status, g.students, effect)
    return found


def horizon_reached(plan: ExperimentPlan, as_of: datetime | None, units: int) -> bool:
    """The fixed horizon: ``ends_at`` passed, or (without an end date) the planned number of units."""
    if plan.ends_at is not None:
        return as_of is not None and as_of >= plan.ends_at
    return plan.planned_units is not None and units >= plan.planned_units


def analyse(
    plan: ExperimentPlan,
    records: Sequence[StudentRecord],
    *,
    as_of: datetime | None = None,
    excluded: Mapping[str, int] | None = None,
    groups: FairnessConfig | None = None,
) -> ExperimentReport:
    """The report of ``plan`` from its assigned students (see the module docstring).

    ``as_of`` is the time of the analysis (compared with ``plan.ends_at``); ``excluded`` counts students
    left out before assignment, by reason ("opted out of personalization": 3); ``groups`` sets the
    suppression thresholds of effects by group (the bias checks' defaults).
    """
    config = groups or FairnessConfig()
    table = _table(plan, records)
    n_units = len(set(table.unit.tolist()))
    reached = horizon_reached(plan, as_of, n_units)
    control = plan.control.name
    treatment_arms = [a.name for a in plan.arms if a.name != control]
    arms = []
    primary_y = table.outcomes[plan.primary_outcome]
    for a in plan.arms:
        in_arm = table.arm == a.name
        have = in_arm & ~np.isnan(primary_y)
        arms.append(
            ArmSummary(
                a.name,
                len(set(table.unit[in_arm].tolist())),
                int(in_arm.sum()),
                int(have.sum()),
                float(1 - have.sum() / in_arm.sum()) if in_arm.any() else None,
                float(primary_y[have].mean()) if have.any() else None,
            )
        )
    sample_ratio = _sample_ratio(plan, table)
    attrition = _attrition(plan, table)
    caveats = [
        "Intention to treat: students are counted in the arm they were assigned to, whatever they were "
        "served; students without the outcome are left out of its comparison (see attrition).",
        "Fixed horizon: effects are computed once, at the planned end; no sequential method is used.",
        "Only the post-test comes from probe items the policies do not choose; the other outcomes depend "
        "on each arm's own mastery rule.",
    ]
    if not reached:
        if plan.ends_at is None and plan.planned_units is None:
            caveats.append("No horizon was planned (end date or sample): no effect will be shown.")
        primary = [_no_verdict(plan.primary_outcome, a, control, VERDICTS[0]) for a in treatment_arms]
        secondary = [
            _no_verdict(o, a, control, VERDICTS[0]) for o in plan.secondary_outcomes for a in treatment_arms
        ]
        group_effects: list[GroupEffect] = []
    else:
        primary = _adjust(
            [_effect(plan, table, plan.primary_outcome, a, with_power=True) for a in treatment_arms],
            "holm",
            plan.alpha,
            plan.minimum_power,
        )
        secondary = _adjust(
            [_effect(plan, table, o, a) for o in plan.secondary_outcomes for a in treatment_arms],
            "fdr_bh",
            plan.alpha,
            None,
        )
        group_effects = _group_effects(plan, table, records, config)
        clusters = next((e.clusters for e in primary if e.clusters is not None), None)
        if clusters is not None and clusters < MIN_CLUSTERS:
            caveats.append(
                f"Only {clusters} classes: cluster-robust intervals are too narrow with fewer "
                f"than {MIN_CLUSTERS}; read the effect with care."
            )
        if group_effects:
            caveats.append(
                f"Effects by group: a group with fewer than {config.suppress_below} students in "
                f"an arm shows nothing, fewer than {config.flag_from} no verdict; a difference "
                "between groups' effects is not itself tested."
            )
    if sample_ratio.mismatch:
        caveats.append("Sample ratio mismatch: see above; the effects are not trustworthy until explained.")
    return ExperimentReport(
        plan,
        as_of,
        reached,
        tuple(arms),
        sample_ratio,
        attrition,
        tuple(primary),
        tuple(secondary),
        tuple(group_effects),
        dict(excluded or {}),
        tuple(caveats),
        config,
    )


# --- words and rows ----------------------------------------------------------------------------------


def _amount(outcome: str, value: float) -> str:
    if outcome in SHARE_OUTCOMES:
        return f"{value * 100:+.1f} points"
    return f"{value:+.2f}"


def describe(effect: Effect, minimum_effect: float | None = None) -> str:
    """One sentence on one effect."""
    what = OUTCOMES[effect.outcome][0]
    head = f"{effect.arm} vs {effect.control}, {what}"
    if effect.verdict == VERDICTS[0]:
        return f"{head}: no result before the planned end (fixed-horizon design)."
    if effect.difference is None or effect.low is None or effect.high is None:
        return f"{head}: cannot be estimated from these data ({effect.students} students)."
    interval = (
        f"{_amount(effect.outcome, effect.difference)} "
        f"(95% interval {_amount(effect.outcome, effect.low)} to {_amount(effect.outcome, effect.high)})"
    )
    if effect.verdict == "not enough data":
        power = f"{effect.power:.0%}" if effect.power is not None else "unknown"
        planned = f" of {_amount(effect.outcome, minimum_effect)}" if minimum_effect is not None else ""
        return (
            f"{head}: not enough data -- the sample had {power} power to detect the planned effect"
            f"{planned}; estimate {interval}."
        )
    if effect.verdict == "difference":
        better = (effect.difference > 0) == OUTCOMES[effect.outcome][1]
        return f"{head}: {'better' if better else 'worse'} in this arm, {interval}."
    if effect.verdict == "no difference detected":
        return f"{head}: no difference detected; {interval}."
    return f"{head}: {interval} (shown without a verdict)."


def plain_summary(report: ExperimentReport) -> list[str]:
    plan = report.plan
    kind = "classes" if plan.unit == "class" else "students"
    lines = ["; ".join(f"{a.arm}: {a.units} {kind}, {a.students} students" for a in report.arms) + "."]
    if report.excluded:
        lines.append(
            "Excluded before assignment: "
            + ", ".join(f"{n} ({why})" for why, n in sorted(report.excluded.items()))
            + "."
        )
    lines.append(report.sample_ratio.message)
    lines.append(report.attrition.message)
    lines += [describe(e, plan.minimum_effect) for e in report.primary]
    lines += [describe(e) for e in report.secondary]
    for g in report.groups:
        if g.status == "suppressed":
            lines.append(
                f"{g.attribute} = {g.group}: fewer than {report.group_rules.suppress_below} students "
                "in an arm; nothing is shown."
            )
        elif g.effect is not None:
            lines.append(f"{g.attribute} = {g.group}: {describe(g.effect)}")
    return lines


def _row(
    report: ExperimentReport,
    kind: str,
    e: Effect | None,
    attribute: str = "",
    group: str = "",
    status: str = "",
) -> dict[str, object]:
    row: dict[str, object] = dict.fromkeys(ROW_FIELDS, "")
    row.update(experiment=report.plan.key, kind=kind, attribute=attribute, group=group, status=status)
    if e is not None:
        row.update(
            outcome=e.outcome,
            arm=e.arm,
            control=e.control,
            students=e.students,
            clusters=e.clusters,
            control_mean=e.control_mean,
            arm_mean=e.arm_mean,
            difference=e.difference,
            ci_low=e.low,
            ci_high=e.high,
            p_value=e.p_value,
            p_adjusted=e.p_adjusted,
            significant=e.significant,
            power=e.power,
            verdict=e.verdict,
            method=e.method,
        )
    return {k: ("" if v is None else v) for k, v in row.items()}


def report_rows(report: ExperimentReport) -> list[dict[str, object]]:
    rows = [_row(report, "primary", e) for e in report.primary]
    rows += [_row(report, "secondary", e) for e in report.secondary]
    rows += [_row(report, "group", g.effect, g.attribute, g.group, g.status) for g in report.groups]
    return rows
