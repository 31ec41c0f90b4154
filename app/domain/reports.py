"""Progress reports: a student's own, and a teacher's class view. Pure: records in, reports out.

Every estimate is the mastery estimate (paced P(L) x predicted recall, the one that decides
mastery: ``tracking.estimate_of``) and every status comes from ``tracking.status_from``. Where a
student has fewer than ``min_attempts`` answers on a skill, the report says "not enough data"
instead of printing a confident number.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from app.domain.bkt import BktParams
from app.domain.content import ContentGraph
from app.domain.memory import Memory
from app.domain.tracking import (
    DEFAULT_RULES,
    HYPOTHESES,
    MasteryRules,
    MasteryStatus,
    SkillState,
    StudentModel,
    estimate_of,
    params_for,
    status_from,
)


@dataclass(frozen=True)
class ReportConfig:
    rules: MasteryRules = DEFAULT_RULES  # what "mastered", "due for review", "needs relearning" mean
    min_attempts: int = DEFAULT_RULES.min_correct  # fewer answers on a skill: "not enough data"
    horizon: int = 50  # predictions of attempts to mastery stop here
    wheel_spin_attempts: int = 10  # this many answers without mastery: wheel-spinning
    inactive_days: float = 7.0
    slow_speed: float = 0.6  # posterior mean speed factor at or below which pace is "much slower"
    slow_speed_min_answers: int = 20  # ...once there are this many answers to judge by
    stuck_share: float = 0.3  # share of the students practising a skill who wheel-spin on it
    stuck_min_students: int = 2


def judged_speed(speed: float, answers: int, config: ReportConfig) -> float | None:
    """The student's pace, once there are ``slow_speed_min_answers`` answers to tell it by: fewer leave the
    posterior close to its prior, and a number then would be the model's assumption, not the student's."""
    return speed if answers >= config.slow_speed_min_answers else None


def speed_reason(speed: float | None) -> str | None:
    """Why a published pace is missing."""
    return "not_enough_answers" if speed is None else None


# --- a student's report ---------------------------------------------------------------------


@dataclass(frozen=True)
class SkillReport:
    skill_id: str
    name: str
    prerequisites: list[str]
    depth: int  # 0 without prerequisites, else 1 + the deepest prerequisite: groups along the graph
    # "mastered", "due_for_review", "needs_relearning", "learning", "ready" (not started, prerequisites
    # earned), "locked"
    status: str
    enough_data: bool
    p_mastery: float | None  # the mastery estimate now; None when not enough data
    attempts: int
    correct: int
    accuracy: float | None  # None when not enough data
    mastered: bool
    mastered_at: datetime | None
    attempts_at_mastery: int | None
    last_practiced_at: datetime | None
    predicted_attempts_to_mastery: int | None  # None: mastered, not enough data, or beyond horizon
    prediction: str  # "mastered", "estimate", "not_enough_data", "beyond_horizon"
    recall: float | None  # predicted recall of an earned skill now (FSRS)
    review_due: bool  # earned, and due for review or needing relearning
    # The mastery estimate now, even below ``min_attempts`` (the student's own page shows it with a "just
    # started" note: it is the number their result pages showed); ``p_mastery`` is None there.
    estimate: float = 0.0
    unit: str = ""  # the curriculum unit (content), for grouping on the pages


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
    answers: int  # answers recorded (an answer to an exercise of two skills counts once)

    @property
    def speed_reason(self) -> str | None:
        return speed_reason(self.speed)


def expected_attempts_to_mastery(
    state: SkillState | None,
    speed_weights: Sequence[float],
    params: BktParams,
    rules: MasteryRules,
    horizon: int,
) -> int | None:
    """Opportunities until the model EXPECTS the skill to be earned (None beyond ``horizon``).

    The posterior is a martingale, so the expected paced P(L) after n more answers is the
    learning transition applied n times, per hypothesis, averaged over the posterior; earning
    also needs ``rules.min_correct`` credited answers, which at best come one per answer.
    """
    p_by = list(state.p_by_speed) if state else [params.prior * a for _, a, _ in HYPOTHESES]
    hypotheses = [params_for(params, k, a, rules.guess_floor) for k, a, _ in HYPOTHESES]
    still_needed = max(0, rules.min_correct - (state.correct_count if state else 0))
    for n in range(horizon + 1):
        paced = sum(w * p for w, p in zip(speed_weights, p_by, strict=True))
        if n >= still_needed and paced >= rules.threshold:
            return n
        p_by = [p * (1 - hp.forget) + (1 - p) * hp.learn for p, hp in zip(p_by, hypotheses, strict=True)]
    return None


def build_student_report(
    graph: ContentGraph,
    params: Mapping[str, BktParams],
    model: StudentModel,
    now: datetime,
    config: ReportConfig,
    *,
    answers: int | None = None,
) -> StudentReport:
    """Per skill (prerequisites first): status, mastery estimate, attempts, accuracy, predicted attempts
    still needed at the student's pace, review due; and the summary along the prerequisite graph.

    ``answers``: the student's answer count (the counter kept with every answer). Without it, the sum of
    the skills' attempts, which counts an exercise of two skills twice.
    """
    rules = config.rules
    status = {s: model.status(s, params[s], now, rules) for s in graph.skill_order}
    earned = {s for s, st in status.items() if st in _EARNED}
    open_set = {s for s in earned if status[s] is not MasteryStatus.NEEDS_RELEARNING}
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
        is_earned = skill_id in earned
        estimate = model.estimate(skill_id, params[skill_id], now, rules)
        prereqs_done = all(p in open_set for p in skill.prerequisites)
        shown = str(status[skill_id])
        if status[skill_id] is MasteryStatus.NOT_STARTED:
            shown = "ready" if prereqs_done else "locked"
        if is_earned:
            predicted, prediction = None, "mastered"
        elif not enough:
            predicted, prediction = None, "not_enough_data"
        else:
            predicted = expected_attempts_to_mastery(
                state, model.speed_weights, params[skill_id], rules, config.horizon
            )
            prediction = "estimate" if predicted is not None else "beyond_horizon"
        rows.append(
            SkillReport(
                skill_id=skill_id,
                name=skill.name,
                prerequisites=list(skill.prerequisites),
                depth=depth[skill_id],
                status=shown,
                enough_data=enough,
                p_mastery=estimate if enough or is_earned else None,
                attempts=attempts,
                correct=state.correct_count if state else 0,
                accuracy=(state.correct_count / attempts) if state and enough else None,
                mastered=status[skill_id] is MasteryStatus.MASTERED,
                mastered_at=state.mastered_at if state else None,
                attempts_at_mastery=state.attempts_at_mastery if state else None,
                last_practiced_at=state.last_practiced_at if state else None,
                predicted_attempts_to_mastery=predicted,
                prediction=prediction,
                recall=model.recall(skill_id, now, rules) if is_earned else None,
                review_due=status[skill_id] in (MasteryStatus.DUE_FOR_REVIEW, MasteryStatus.NEEDS_RELEARNING),
                estimate=estimate,
                unit=skill.unit,
            )
        )
    answers_seen = sum(r.attempts for r in rows)
    last = max((r.last_practiced_at for r in rows if r.last_practiced_at), default=None)
    return StudentReport(
        skills=rows,
        skills_mastered=sum(r.mastered for r in rows),
        skills_total=len(rows),
        ready=[
            r.skill_id
            for r in rows
            if r.status == "ready" or (r.status == "learning" and all(p in open_set for p in r.prerequisites))
        ],
        locked=sum(r.status == "locked" for r in rows),
        reviews_due=[r.skill_id for r in rows if r.review_due],
        last_activity_at=last,
        speed=judged_speed(model.speed, answers_seen, config),
        answers=answers if answers is not None else answers_seen,
    )


_EARNED = (MasteryStatus.MASTERED, MasteryStatus.DUE_FOR_REVIEW, MasteryStatus.NEEDS_RELEARNING)


# --- a class report -------------------------------------------------------------------------


@dataclass(frozen=True)
class SkillRecord:
    """One student's standing on one skill (as of the report's end date)."""

    p_by_hypothesis: Sequence[float]  # P(L | hypothesis) after the last answer by then
    attempts: int
    correct: int
    mastered_at: datetime | None
    attempts_at_mastery: int | None
    last_practiced_at: datetime | None
    memory: Memory | None = None  # as of the end date (None: not earned by then)


@dataclass(frozen=True)
class StudentRecord:
    student_id: str
    external_id: str
    speed: float  # posterior mean speed factor
    weights: Sequence[float]  # the hypothesis posterior (tracking.HYPOTHESES)
    answers: int  # answers up to the end date
    answers_in_window: int
    last_active_at: datetime | None
    skills: Mapping[str, SkillRecord] = field(default_factory=dict)


@dataclass(frozen=True)
class Cell:
    p_mastery: float | None  # the mastery estimate at the end date; None: not enough data
    attempts: int
    mastered: bool  # status "mastered" at the end date
    status: str = "not_started"  # tracking.MasteryStatus
    estimate: float | None = None  # the mastery estimate, also below min_attempts (None: not started)
    correct: int = 0  # credited answers (right, unhinted) on the skill by the end date

    @property
    def enough_data(self) -> bool:
        return self.p_mastery is not None


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
    unit: str = ""  # the curriculum unit (content), for grouping on the pages


@dataclass(frozen=True)
class ClassStudent:
    student_id: str
    external_id: str
    cells: list[Cell]  # aligned with ClassReport.skills
    skills_mastered: int
    answers: int
    answers_in_window: int
    last_active_at: datetime | None
    speed: float | None  # posterior mean speed factor; None until there are enough answers
    needs_help: list[HelpReason]

    @property
    def speed_reason(self) -> str | None:
        return speed_reason(self.speed)


@dataclass(frozen=True)
class ClassReport:
    skills: list[ClassSkill]
    students: list[ClassStudent]
    stuck_skills: list[str]
    since: datetime | None
    until: datetime


def build_class_report(
    graph: ContentGraph,
    students: Sequence[StudentRecord],
    config: ReportConfig,
    *,
    until: datetime,
    since: datetime | None = None,
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
            earned = rec.mastered_at is not None and rec.mastered_at <= until
            memory = rec.memory if earned else None
            level = estimate_of(record.weights, rec.p_by_hypothesis, memory, until, config.rules)
            status = status_from(rec.attempts, earned, level, config.rules)
            cells.append(
                Cell(
                    level if rec.attempts >= config.min_attempts or earned else None,
                    rec.attempts,
                    status is MasteryStatus.MASTERED,
                    str(status),
                    level,
                    rec.correct,
                )
            )
            name = graph.skills[skill_id].name
            if not earned and rec.attempts >= config.wheel_spin_attempts:
                reasons.append(
                    HelpReason(
                        "wheel_spinning", skill_id, f"{rec.attempts} answers on {name} without mastering it"
                    )
                )
            if status is MasteryStatus.NEEDS_RELEARNING:
                reasons.append(
                    HelpReason(
                        "review_overdue",
                        skill_id,
                        f"{name} was mastered but is probably forgotten: it needs a review",
                    )
                )
        if record.last_active_at is None:
            reasons.append(HelpReason("inactive", None, "no answers yet"))
        else:
            idle = (until - record.last_active_at).total_seconds() / 86400
            if idle >= config.inactive_days:
                reasons.append(HelpReason("inactive", None, f"no activity for {int(idle)} days"))
        if record.answers >= config.slow_speed_min_answers and record.speed <= config.slow_speed:
            reasons.append(
                HelpReason("slow_pace", None, f"learning at {record.speed:.1f}× the pace the model expects")
            )
        out_students.append(
            ClassStudent(
                student_id=record.student_id,
                external_id=record.external_id,
                cells=cells,
                skills_mastered=sum(c.mastered for c in cells),
                answers=record.answers,
                answers_in_window=record.answers_in_window,
                last_active_at=record.last_active_at,
                speed=judged_speed(record.speed, record.answers, config),
                needs_help=reasons,
            )
        )

    out_skills = []
    for index, skill_id in enumerate(skill_ids):
        column = [s.cells[index] for s in out_students]
        at_mastery = [
            r.attempts_at_mastery
            for s in students
            if (r := s.skills.get(skill_id)) is not None
            and r.mastered_at is not None
            and r.mastered_at <= until
            and r.attempts_at_mastery is not None
        ]
        practising = sum(c.attempts > 0 for c in column)
        spinning = sum(c.attempts >= config.wheel_spin_attempts and not c.mastered for c in column)
        out_skills.append(
            ClassSkill(
                skill_id=skill_id,
                name=graph.skills[skill_id].name,
                share_mastered=(sum(c.mastered for c in column) / len(column)) if column else 0.0,
                mastered=sum(c.mastered for c in column),
                practising=practising,
                median_attempts_to_mastery=float(statistics.median(at_mastery)) if at_mastery else None,
                wheel_spinning=spinning,
                stuck=spinning >= config.stuck_min_students and spinning >= config.stuck_share * practising,
                unit=graph.skills[skill_id].unit,
            )
        )
    return ClassReport(
        skills=out_skills,
        students=out_students,
        stuck_skills=[s.skill_id for s in out_skills if s.stuck],
        since=since,
        until=until,
    )
