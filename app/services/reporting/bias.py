"""Running a bias check for a school: read the audit data, call ``domain.fairness.audit``, store the report.

The stored report holds aggregates per group only: group names, counts of students and answers (never for
suppressed groups), estimates with intervals, tests, flags, and the versions and settings behind them.
"""

from __future__ import annotations

import dataclasses
import math
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, ensure_allowed
from app.domain.errors import InvalidInput, NotFound
from app.domain.fairness import (
    METRICS,
    DecisionData,
    FairnessConfig,
    FairnessReport,
    PickData,
    ResponseData,
    audit,
    correct_jointly,
    plain_summary,
)
from app.models import (
    BiasReport,
    ClassMembership,
    ContentState,
    GroupAttribute,
    Mastery,
    Recommendation,
    Response,
    ResponseSkill,
    School,
    SchoolClass,
    SkillParameters,
    Student,
)
from app.services.modelling.fitting import multilearn_diagnostic, response_frame
from app.services.modelling.mastery import begin_read_snapshot
from app.services.people.groups import ORGANISATIONAL, GroupAttributeError, allowed_attributes
from app.settings import current_settings, with_overrides


class UnknownBiasReport(NotFound):
    kind = "bias check"


# Called with (steps done, steps in all): the overall comparison, then each skill's.
Progress = Callable[[int, int], None]


def fairness_config(**overrides: Any) -> FairnessConfig:
    """BIAS_CHECKS (checked at start), with this run's overrides (None: keep the setting)."""
    return with_overrides(current_settings().bias_checks, **overrides)


def _labels(session: Session, school_id: int, attribute: str) -> dict[str, str]:
    """Student id -> group, for the students of the school who have one."""
    if attribute == "school":
        name = session.scalar(select(School.name).where(School.id == school_id))
        ids = session.scalars(select(Student.id).where(Student.school_id == school_id))
        return {sid: str(name) for sid in ids}
    if attribute == "class":
        # A student in several classes counts in the class they joined first.
        rows = session.execute(
            select(ClassMembership.student_id, SchoolClass.name)
            .join(SchoolClass, SchoolClass.id == ClassMembership.class_id)
            .where(SchoolClass.school_id == school_id)
            .order_by(ClassMembership.added_at)
        ).all()
        labels: dict[str, str] = {}
        for sid, name in rows:
            labels.setdefault(sid, name)
        return labels
    if attribute not in allowed_attributes():
        known = ", ".join([*ORGANISATIONAL, *sorted(allowed_attributes())])
        raise GroupAttributeError(f"unknown attribute {attribute!r} (known: {known})")
    return dict(
        session.execute(
            select(GroupAttribute.student_id, GroupAttribute.value)
            .join(Student, Student.id == GroupAttribute.student_id)
            .where(Student.school_id == school_id, GroupAttribute.attribute == attribute)
        ).all()
    )


def run_bias_check(
    session: Session,
    principal: Principal,
    attribute: str,
    *,
    skills: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    bootstrap: int | None = None,
    seed: int | None = None,
    permutations: int | None = None,
    diagnostic: bool = False,
    progress: Progress | None = None,
) -> BiasReport:
    """Audit the school's students grouped by ``attribute``; store and return the report. Commits.

    ``diagnostic``: also fit pyBKT with one learn rate per group on the most practised skills.
    ``progress``: told the steps done and in all (the overall comparison, then one per skill); an exception
    it raises stops the check before anything is stored.

    Called outside a transaction (a job, the CLI), everything is read in one read-only snapshot that answers
    never wait for (on SQLite, without the write lock); only storing the report takes a write transaction.
    """
    ensure_allowed(principal, Action.RUN_BIAS_CHECK)
    config = fairness_config(bootstrap=bootstrap, seed=seed, permutations=permutations)
    read_only = not session.in_transaction()
    if read_only:
        begin_read_snapshot(session)
    labels = _labels(session, principal.school_id, attribute)
    students = sorted(labels)
    index = {sid: i for i, sid in enumerate(students)}
    responses, response_skills, post_mastery = _responses(
        session, students, index, skills, since, until, config
    )
    groups_of = [labels[s] for s in students]
    if not len(responses.student):
        _refuse_an_empty_window(groups_of, attribute, skills, since, until, config)
    decisions, decision_skills = _decisions(session, students, index, skills, post_mastery)
    picks, pick_skills = _picks(session, students, index, since, until)
    checked_skills = sorted(set(response_skills.tolist()))
    steps = 1 + len(checked_skills)
    if progress:
        progress(0, steps)
    overall = audit(attribute, groups_of, responses, decisions, picks, config)
    per_skill = {}
    for done, skill in enumerate(checked_skills, start=1):
        if progress:
            progress(done, steps)
        rows, dec, pk = response_skills == skill, decision_skills == skill, pick_skills == skill
        practising = np.unique(responses.student[rows])
        if len(practising) < 2 * config.suppress_below:
            continue
        # Only the students who practised the skill take part (group sizes, suppression, resampling).
        local = np.full(len(students), -1)
        local[practising] = np.arange(len(practising))
        keep = local[decisions.student] >= 0
        per_skill[skill] = audit(
            attribute,
            [groups_of[i] for i in practising],
            ResponseData(local[responses.student[rows]], responses.predicted[rows], responses.observed[rows]),
            DecisionData(
                local[decisions.student[dec & keep]],
                decisions.attempts[dec & keep],
                decisions.mastered[dec & keep],
                decisions.attempts_at_mastery[dec & keep],
                decisions.post_mastery_correct[dec & keep],
                decisions.post_mastery_answers[dec & keep],
            ),
            PickData(
                local[picks.student[pk & (local[picks.student] >= 0)]],
                picks.remedial[pk & (local[picks.student] >= 0)],
            ),
            dataclasses.replace(config, permutations=min(config.permutations, 200)),
            reference=overall.reference,
        )
    if progress:
        progress(steps, steps)
    corrected = correct_jointly([overall, *per_skill.values()])
    report, per_skill = corrected[0], dict(zip(per_skill, corrected[1:], strict=True))
    as_json = _as_json(session, report, skills, since, until)
    as_json["per_skill"] = {
        skill: _groups_json(r) | {"flagged": [f"{c.group}: {c.metric} ({c.reason})" for c in r.flagged]}
        for skill, r in per_skill.items()
    }
    as_json["flagged"] += [
        f"{skill}: {line}"
        for skill, r in per_skill.items()
        for line in as_json["per_skill"][skill]["flagged"]
    ]
    as_json["summary"] += [
        f"On skill {skill}: Review suggested: "
        + "; ".join(
            f"{c.group} {METRICS.get(c.metric, ('ROC curves', ''))[0]} ({c.reason})" for c in r.flagged
        )
        for skill, r in per_skill.items()
        if r.flagged
    ]
    as_json["tests"] = sum(len(r.comparisons) for r in corrected)
    if diagnostic:
        shown = {g.group for g in report.groups if g.status not in ("suppressed", "no answers")}
        as_json["diagnostic"] = _multilearn(
            session, {s: g for s, g in labels.items() if g in shown}, skills, seed=config.seed
        )
    if read_only:
        session.rollback()  # end the snapshot: storing the report is a (short) transaction of its own
    stored = BiasReport(
        school_id=principal.school_id, actor=principal.actor, attribute=attribute, report=as_json
    )
    session.add(stored)
    session.commit()
    return stored


def check_request(
    session: Session,
    principal: Principal,
    attribute: str,
    *,
    skills: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> None:
    """Refuse, before a check is queued, what ``run_bias_check`` would refuse: a caller who may not run
    checks, an unknown attribute, a window without a single answer of groups large enough to compare.
    Reads only (ids and one count per 500 students)."""
    ensure_allowed(principal, Action.RUN_BIAS_CHECK)
    labels = _labels(session, principal.school_id, attribute)
    students = sorted(labels)
    for start in range(0, len(students), 500):
        query = (
            select(Response.id)
            .join(ResponseSkill, ResponseSkill.response_id == Response.id)
            .where(Response.student_id.in_(students[start : start + 500]))
        )
        if skills:
            query = query.where(ResponseSkill.skill_id.in_(list(skills)))
        if session.scalar(_window(query, Response.created_at, since, until).limit(1)) is not None:
            return
    _refuse_an_empty_window(list(labels.values()), attribute, skills, since, until, fairness_config())


def _refuse_an_empty_window(
    groups_of: list[str],
    attribute: str,
    skills: Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
    config: FairnessConfig,
) -> None:
    """Called when no student of the groups answered in the window."""
    if max(Counter(groups_of).values(), default=0) >= config.suppress_below:
        # Groups large enough to compare, but nothing they did to compare them on. (Groups all under the
        # suppression size are reported as "not enough data" whatever the window holds.)
        window = _described(skills, since, until)
        raise InvalidInput(
            f"no student with a recorded {attribute} answered{window}: there is nothing to "
            "check (widen the window or wait for answers)"
        )


DIAGNOSTIC_SKILLS = 5


def _multilearn(
    session: Session, labels: dict[str, str], skills: Sequence[str] | None, *, seed: int
) -> list[dict[str, Any]]:
    """pyBKT ``multilearn`` by group on the (up to 5) most practised skills; suppressed groups left out."""
    frame = response_frame(session, skills)
    frame = frame[frame["user_id"].isin(list(labels))].copy()
    frame["group"] = frame["user_id"].map(labels)
    busiest = frame["skill_name"].value_counts().head(DIAGNOSTIC_SKILLS).index
    out = []
    for skill_id in busiest:
        rows = frame[frame["skill_name"] == skill_id]
        if rows["group"].nunique() < 2:
            continue
        result = multilearn_diagnostic(rows, str(skill_id), seed=seed)
        out.append({k: _clean(v) for k, v in dataclasses.asdict(result).items()})
    return out


def _described(skills: Sequence[str] | None, since: datetime | None, until: datetime | None) -> str:
    """The window in words (" on the skill(s) a, b since X until Y"), or "" for every answer."""
    text = ""
    if skills:
        more = f" and {len(skills) - 5} more" if len(skills) > 5 else ""
        text = f" on the skill(s) {', '.join(list(skills)[:5])}{more}"
    if since is not None:
        text += f" since {since:%Y-%m-%d %H:%M} UTC"
    if until is not None:
        text += f" until {until:%Y-%m-%d %H:%M} UTC"
    return text


def _window(query: Any, column: Any, since: datetime | None, until: datetime | None) -> Any:
    if since is not None:
        query = query.where(column >= since)
    if until is not None:
        query = query.where(column <= until)
    return query


def _responses(
    session: Session,
    students: list[str],
    index: dict[str, int],
    skills: Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
    config: FairnessConfig,
) -> tuple[ResponseData, NDArray[np.str_], dict[tuple[str, str], list[bool]]]:
    """Every (answer, skill) of the students with the prediction made BEFORE it, in answer order."""
    student_col, predicted, observed, skill_col = [], [], [], []
    after: dict[tuple[str, str], list[bool]] = defaultdict(list)
    # The answers that follow mastery, by their rank on the skill (timestamps can tie, e.g. in imports).
    declared_after = (
        dict(
            ((sid, skill), n)
            for sid, skill, n in session.execute(
                select(Mastery.student_id, Mastery.skill_id, Mastery.attempts_at_mastery).where(
                    Mastery.student_id.in_(students), Mastery.attempts_at_mastery.is_not(None)
                )
            ).all()
        )
        if students
        else {}
    )
    rank: dict[tuple[str, str], int] = defaultdict(int)
    for start in range(0, len(students), 500):
        chunk = students[start : start + 500]
        query = (
            select(
                Response.student_id,
                ResponseSkill.skill_id,
                ResponseSkill.p_correct,
                Response.credited,
                Response.created_at,
            )
            .join(ResponseSkill, ResponseSkill.response_id == Response.id)
            .where(Response.student_id.in_(chunk))
            .order_by(Response.student_id, Response.id)
        )
        if skills:
            query = query.where(ResponseSkill.skill_id.in_(list(skills)))
        # From the first answer (ranks count them all); only those in the window are measured.
        for sid, skill, p, credited, at in session.execute(_window(query, Response.created_at, None, until)):
            key = (sid, skill)
            rank[key] += 1
            if since is not None and at < since:
                continue
            student_col.append(index[sid])
            skill_col.append(skill)
            predicted.append(p)
            observed.append(1.0 if credited else 0.0)
            declared = declared_after.get(key)
            if declared is not None and declared < rank[key] <= declared + config.post_mastery_answers:
                after[key].append(bool(credited))
    return (
        ResponseData(
            np.array(student_col, dtype=np.int64),
            np.array(predicted, dtype=np.float64),
            np.array(observed, dtype=np.float64),
        ),
        np.array(skill_col, dtype=str),
        after,
    )


def _decisions(
    session: Session,
    students: list[str],
    index: dict[str, int],
    skills: Sequence[str] | None,
    after: dict[tuple[str, str], list[bool]],
) -> tuple[DecisionData, NDArray[np.str_]]:
    rows: list[Any] = []
    for start in range(0, len(students), 500):
        query = select(
            Mastery.student_id,
            Mastery.skill_id,
            Mastery.attempts,
            Mastery.mastered_at,
            Mastery.attempts_at_mastery,
        ).where(Mastery.student_id.in_(students[start : start + 500]))
        if skills:
            query = query.where(Mastery.skill_id.in_(list(skills)))
        rows.extend(session.execute(query).all())
    following = [after.get((sid, skill), []) for sid, skill, *_ in rows]
    return DecisionData(
        student=np.array([index[r[0]] for r in rows], dtype=np.int64),
        attempts=np.array([r[2] for r in rows], dtype=float),
        mastered=np.array([1.0 if r[3] is not None else 0.0 for r in rows]),
        attempts_at_mastery=np.array([float(r[4]) if r[4] is not None else math.nan for r in rows]),
        post_mastery_correct=np.array([float(sum(f)) if f else math.nan for f in following]),
        post_mastery_answers=np.array([float(len(f)) for f in following]),
    ), np.array([r[1] for r in rows], dtype=str)


def _picks(
    session: Session,
    students: list[str],
    index: dict[str, int],
    since: datetime | None,
    until: datetime | None,
) -> tuple[PickData, NDArray[np.str_]]:
    rows: list[Any] = []
    for start in range(0, len(students), 500):
        query = select(Recommendation.student_id, Recommendation.reason, Recommendation.skill_id).where(
            Recommendation.student_id.in_(students[start : start + 500])
        )
        rows.extend(session.execute(_window(query, Recommendation.created_at, since, until)).all())
    return (
        PickData(
            np.array([index[s] for s, _, _ in rows], dtype=np.int64),
            np.array([1.0 if reason == "remediate_prerequisite" else 0.0 for _, reason, _ in rows]),
        ),
        np.array([skill or "" for _, _, skill in rows], dtype=str),
    )


def _clean(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def _as_json(
    session: Session,
    report: FairnessReport,
    skills: Sequence[str] | None,
    since: datetime | None,
    until: datetime | None,
) -> dict[str, Any]:
    fitted = session.scalar(
        select(func.count())
        .select_from(SkillParameters)
        .where(SkillParameters.is_current, SkillParameters.source == "fitted")
    )
    current = session.scalar(
        select(func.count()).select_from(SkillParameters).where(SkillParameters.is_current)
    )
    return {
        "attribute": report.attribute,
        "reference": report.reference,
        "summary": plain_summary(report),
        **_groups_json(report),
        "comparisons": [{k: _clean(v) for k, v in dataclasses.asdict(c).items()} for c in report.comparisons],
        "flagged": [f"{c.group}: {c.metric} ({c.reason})" for c in report.flagged],
        "auc_gap": _clean(report.auc_gap),
        "metrics": (
            {name: text for name, (text, _) in METRICS.items()}
            | {"abroca": "area between the ROC curves of a group and the reference"}
        ),
        "settings": dataclasses.asdict(report.config),
        "data": {
            "since": since.isoformat() if since else None,
            "until": until.isoformat() if until else None,
            "skills": list(skills) if skills else "all",
        },
        "model": {
            "content_revision": session.scalar(select(ContentState.revision)),
            "current_parameter_versions": current,
            "fitted": fitted,
            "predictions": "standard BKT P(correct) stored with each answer, made before it",
        },
        "caveats": report.caveats,
    }


def _groups_json(report: FairnessReport) -> dict[str, Any]:
    return {
        "groups": [
            {
                "group": g.group,
                "status": g.status,
                "students": g.students,
                "responses": g.responses,
                "metrics": {
                    name: {k: _clean(v) for k, v in dataclasses.asdict(e).items()}
                    for name, e in g.metrics.items()
                },
            }
            for g in report.groups
        ]
    }


def get_report(session: Session, principal: Principal, report_id: int) -> BiasReport:
    ensure_allowed(principal, Action.READ_BIAS_CHECK)
    found: BiasReport | None = session.scalar(
        select(BiasReport).where(BiasReport.id == report_id, BiasReport.school_id == principal.school_id)
    )
    if found is None:
        raise UnknownBiasReport(str(report_id))
    return found


def list_reports(session: Session, principal: Principal) -> list[BiasReport]:
    ensure_allowed(principal, Action.READ_BIAS_CHECK)
    return list(
        session.scalars(
            select(BiasReport)
            .where(BiasReport.school_id == principal.school_id)
            .order_by(BiasReport.id.desc())
            .limit(100)
        )
    )
