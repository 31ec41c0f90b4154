"""Progress reports: a student's own, and a teacher's class view. Pure: records in, reports out.

Every estimate is paced P(L) (the one that drives mastery decisions). Where a student has
fewer than ``min_attempts`` answers on a skill, the report says "not enough data" instead
of printing a confident number.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from app.domain.bkt import BktParams
from app.domain.content import ContentGraph
from app.domain.tracking import SPEEDS, SkillState, StudentModel, params_at_speed


@dataclass(frozen=True)
class ReportConfig:
    mastery_threshold: float = 0.95
    min_attempts: int = 3  # fewer answers on a skill: "not enough data"
    horizon: int = 50  # predictions of attempts to mastery stop here
    wheel_spin_attempts: int = 10  # this many answers without mastery: wheel-spinning
    inactive_days: float = 7.0
    review_half_life_days: float = 4.0  # as the policy's spaced review
    review_overdue_recall: float = 0.5  # predicted recall below this: review overdue
    slow_speed: float = 0.6  # posterior mean speed factor at or below which pace is "much slower"
    slow_speed_min_answers: int = 20  # ...once there are this many answers to judge by
    stuck_share: float = 0.3  # share of the students practising a skill who wheel-spin on it
    stuck_min_students: int = 2


# --- a student's report ---------------------------------------------------------------------


@dataclass(frozen=True)
class SkillReport:
    skill_id: str
    name: str
    prerequisites: list[str]
    depth: int  # 0 without prerequisites, else 1 + the deepest prerequisite: groups along the graph
    status: str  # "mastered", "learning", "ready" (not started, prerequisites mastered), "locked"
    enough_data: bool
    p_mastery: float | None  # paced P(L); None when not enough data
    attempts: int
    correct: int
    accuracy: float | None  # None when not enough data
    mastered: bool
    mastered_at: datetime | None
    attempts_at_mastery: int | None
    last_practiced_at: datetime | None
    predicted_attempts_to_mastery: int | None  # None: mastered, not enough data, or beyond horizon
    prediction: str  # "mastered", "estimate", "not_enough_data", "beyond_horizon"
    recall: float | None  # predicted recall of a mastered skill, 2^(-days / half-life)
    review_due: bool


@dataclass(frozen=True)
class StudentReport:
    skills: list[SkillReport]
    skills_mastered: int
    skills_total: int
    ready: list[str]  # not yet mastered, every prerequisite mastered: where to go next
    locked: int  # skills with a prerequisite not yet mastered
    reviews_due: list[str]
    last_activity_at: datetime | None
    speed: float | None  # posterior mean speed factor; None until there are enough answers
    answers: int


def expected_attempts_to_mastery(
    state: SkillState | None, speed_weights: Sequence[float], params: BktParams, threshold: float,
    horizon: int,
) -> int | None:
    """Opportunities until the model EXPECTS paced P(L) ≥ threshold (None beyond ``horizon``).

    The posterior is a martingale, so the expected estimate after n more answers is the
    learning transition applied n times, per speed factor, averaged over the student's speeds.
    """
    p_by_speed = list(state.p_by_speed) if state else [params.prior] * len(SPEEDS)
    learn = [params_at_speed(params, k).learn for k in SPEEDS]
    for n in range(horizon + 1):
        if sum(w * p for w, p in zip(speed_weights, p_by_speed, strict=True)) >= threshold:
            return n
        p_by_speed = [p * (1 - params.forget) + (1 - p) * ell
                      for p, ell in zip(p_by_speed, learn, strict=True)]
    return None


def predicted_recall(last_practiced_at: datetime | None, review_successes: int, now: datetime,
                     half_life_days: float) -> float:
    """2^(-days since practice / half-life), the half-life doubling with each successful review."""
    if last_practiced_at is None:
        return 1.0
    days = max((now - last_practiced_at).total_seconds(), 0.0) / 86400
    return float(2 ** (-days / (half_life_days * 2 ** min(review_successes, 10))))


def build_student_report(
    graph: ContentGraph, params: Mapping[str, BktParams], model: StudentModel, now: datetime,
    config: ReportConfig, *, review_threshold: float = 0.8,
) -> StudentReport:
    """Per skill (prerequisites first): status, paced P(L), attempts, accuracy, predicted attempts
    still needed at the student's pace, review due; and the summary along the prerequisite graph."""
    mastered = {s for s in graph.skill_order
                if model.paced(s, params[s]) >= config.mastery_threshold and s in model.skills}
    depth: dict[str, int] = {}
    for skill_id in graph.skill_order:  # prerequisites first, so theirs are known
        prereqs = graph.skills[skill_id].prerequisites
        depth[skill_id] = 1 + max(depth[p] for p in prereqs) if prereqs else 0
    rows = []
    for skill_id in graph.skill_order:
        state = model.skills.get(skill_id)
        if state is None and not graph.exercises_by_skill.get(skill_id):
            continue  # known only from imported logs, never practised by this student
        skill = graph.skills[skill_id]
        attempts = state.attempts if state else 0
        enough = attempts >= config.min_attempts
        is_mastered = skill_id in mastered
        prereqs_done = all(p in mastered for p in skill.prerequisites)
        if is_mastered:
            status = "mastered"
        elif attempts:
            status = "learning"
        else:
            status = "ready" if prereqs_done else "locked"
        if is_mastered:
            predicted, prediction = None, "mastered"
        elif not enough:
            predicted, prediction = None, "not_enough_data"
        else:
            predicted = expected_attempts_to_mastery(state, model.speed_weights, params[skill_id],
                                                     config.mastery_threshold, config.horizon)
            prediction = "estimate" if predicted is not None else "beyond_horizon"
        level = (predicted_recall(state.last_practiced_at, state.review_successes, now,
                                  config.review_half_life_days) if state and is_mastered else None)
        rows.append(SkillReport(
            skill_id=skill_id, name=skill.name, prerequisites=list(skill.prerequisites),
            depth=depth[skill_id], status=status,
            enough_data=enough, p_mastery=model.paced(skill_id, params[skill_id]) if enough or is_mastered
            else None,
            attempts=attempts, correct=state.correct_count if state else 0,
            accuracy=(state.correct_count / attempts) if state and enough else None,
            mastered=is_mastered, mastered_at=state.mastered_at if state else None,
            attempts_at_mastery=state.attempts_at_mastery if state else None,
            last_practiced_at=state.last_practiced_at if state else None,
            predicted_attempts_to_mastery=predicted, prediction=prediction, recall=level,
            review_due=level is not None and level < review_threshold,
        ))
    answers_seen = sum(r.attempts for r in rows)
    last = max((r.last_practiced_at for r in rows if r.last_practiced_at), default=None)
    return StudentReport(
        skills=rows, skills_mastered=sum(r.mastered for r in rows), skills_total=len(rows),
        ready=[r.skill_id for r in rows if r.status == "ready"
               or (r.status == "learning" and all(p in mastered for p in r.prerequisites))],
        locked=sum(r.status == "locked" for r in rows),
        reviews_due=[r.skill_id for r in rows if r.review_due],
        last_activity_at=last,
        speed=model.speed if answers_seen >= config.slow_speed_min_answers else None,
        answers=answers_seen,
    )


# --- a class report -------------------------------------------------------------------------


@dataclass(frozen=True)
class SkillRecord:
    """One student's standing on one skill (as of the report's end date)."""

    p_mastery: float  # paced P(L)
    attempts: int
    correct: int
    mastered_at: datetime | None
    attempts_at_mastery: int | None
    last_practiced_at: datetime | None
    review_successes: int = 0


@dataclass(frozen=True)
class StudentRecord:
    student_id: str
    external_id: str
    speed: float  # posterior mean speed factor
    answers: int  # answers up to the end date
    answers_in_window: int
    last_active_at: datetime | None
    skills: Mapping[str, SkillRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    p_mastery: float | None  # None: not enough data
    attempts: int
    mastered: bool


@dataclass(frozen=True)
class HelpReason:
    kind: str  # "wheel_spinning", "inactive", "review_overdue", "slow_pace"
    skill_id: str | None
    detail: str


@dataclass(frozen=True)
class ClassSkill:
    skill_id: str
    name: str
    share_mastered: float  # of the class's students
    mastered: int
    practising: int  # students with at least one answer on it
    median_attempts_to_mastery: float | None  # over the students who mastered it
    wheel_spinning: int
    stuck: bool


@dataclass(frozen=True)
class ClassStudent:
    student_id: str
    external_id: str
    cells: list[Cell]  # aligned with ClassReport.skills
    skills_mastered: int
    answers: int
    answers_in_window: int
    last_active_at: datetime | None
    speed: float
    needs_help: list[HelpReason]


@dataclass(frozen=True)
class ClassReport:
    skills: list[ClassSkill]
    students: list[ClassStudent]
    stuck_skills: list[str]
    since: datetime | None
    until: datetime


def build_class_report(
    graph: ContentGraph, students: Sequence[StudentRecord], config: ReportConfig, *,
    until: datetime, since: datetime | None = None,
) -> ClassReport:
    """The students × skills matrix (skills in prerequisite order), per-skill figures, who needs
    help and why, and where the class is stuck, as of ``until``."""
    skill_ids = [s for s in graph.skill_order if graph.exercises_by_skill.get(s)]
    out_students = []
    for record in sorted(students, key=lambda r: r.external_id):
        cells = []
        reasons: list[HelpReason] = []
        for skill_id in skill_ids:
            rec = record.skills.get(skill_id)
            if rec is None:
                cells.append(Cell(None, 0, False))
                continue
            mastered = rec.mastered_at is not None and rec.mastered_at <= until
            cells.append(Cell(rec.p_mastery if rec.attempts >= config.min_attempts or mastered else None,
                              rec.attempts, mastered))
            name = graph.skills[skill_id].name
            if not mastered and rec.attempts >= config.wheel_spin_attempts:
                reasons.append(HelpReason("wheel_spinning", skill_id,
                                          f"{rec.attempts} answers on {name} without mastering it"))
            if mastered:
                level = predicted_recall(rec.last_practiced_at, rec.review_successes, until,
                                         config.review_half_life_days)
                if level < config.review_overdue_recall:
                    reasons.append(HelpReason("review_overdue", skill_id,
                                              f"{name}: predicted recall {level:.0%}, review overdue"))
        if record.last_active_at is None:
            reasons.append(HelpReason("inactive", None, "no answers yet"))
        else:
            idle = (until - record.last_active_at).total_seconds() / 86400
            if idle >= config.inactive_days:
                reasons.append(HelpReason("inactive", None, f"no activity for {int(idle)} days"))
        if record.answers >= config.slow_speed_min_answers and record.speed <= config.slow_speed:
            reasons.append(HelpReason("slow_pace", None,
                                      f"learning at {record.speed:.1f}× the pace the model expects"))
        out_students.append(ClassStudent(
            student_id=record.student_id, external_id=record.external_id, cells=cells,
            skills_mastered=sum(c.mastered for c in cells), answers=record.answers,
            answers_in_window=record.answers_in_window, last_active_at=record.last_active_at,
            speed=record.speed, needs_help=reasons,
        ))

    out_skills = []
    for index, skill_id in enumerate(skill_ids):
        column = [s.cells[index] for s in out_students]
        at_mastery = [r.attempts_at_mastery for s in students
                      if (r := s.skills.get(skill_id)) is not None and r.mastered_at is not None
                      and r.mastered_at <= until and r.attempts_at_mastery is not None]
        practising = sum(c.attempts > 0 for c in column)
        spinning = sum(c.attempts >= config.wheel_spin_attempts and not c.mastered for c in column)
        out_skills.append(ClassSkill(
            skill_id=skill_id, name=graph.skills[skill_id].name,
            share_mastered=(sum(c.mastered for c in column) / len(column)) if column else 0.0,
            mastered=sum(c.mastered for c in column), practising=practising,
            median_attempts_to_mastery=float(statistics.median(at_mastery)) if at_mastery else None,
            wheel_spinning=spinning,
            stuck=spinning >= config.stuck_min_students and spinning >= config.stuck_share * practising,
        ))
    return ClassReport(skills=out_skills, students=out_students,
                       stuck_skills=[s.skill_id for s in out_skills if s.stuck], since=since, until=until)
