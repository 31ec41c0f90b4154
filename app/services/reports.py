"""Reports read from the database: the student's own, the class view, and mastery over time.

Current state comes from the mastery table (one row per student and skill, kept up to date
with every answer), so a class report never reads response rows into Python. A date window
is answered with SQL aggregates over the response log (counts, and the last step per skill).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import Row, case, func, select, tuple_
from sqlalchemy.orm import Session

from app.domain.access import Principal
from app.domain.reports import (
    ClassReport,
    ReportConfig,
    SkillRecord,
    StudentRecord,
    StudentReport,
    build_class_report,
    build_student_report,
)
from app.domain.tracking import SPEED_PRIOR, SPEEDS
from app.models import ClassMembership, Mastery, Response, ResponseSkill, SchoolClass, Student, utcnow
from app.services.access import find_class, record_access
from app.services.content import current_snapshot
from app.services.student_models import load_model
from app.services.tutoring import get_student, policy_config

CHUNK = 500


def report_config() -> ReportConfig:
    policy = policy_config()
    overrides = dict(current_app.config.get("REPORTS", {}))
    return ReportConfig(**{
        "mastery_threshold": policy.mastery_threshold, "wheel_spin_attempts": policy.wheel_spin_attempts,
        "review_half_life_days": policy.review_half_life_days, **overrides,
    })


def student_report(session: Session, principal: Principal, student_id: str) -> tuple[Student, StudentReport]:
    student = get_student(session, principal, student_id, "report")
    snapshot = current_snapshot(session)
    model, _ = load_model(session, student)
    report = build_student_report(snapshot.graph, snapshot.params, model, utcnow(), report_config(),
                                  review_threshold=policy_config().review_threshold)
    return student, report


@dataclass(frozen=True)
class ClassReportResult:
    klass: SchoolClass
    report: ClassReport


def class_report(
    session: Session, principal: Principal, class_id: int, *,
    since: datetime | None = None, until: datetime | None = None,
) -> ClassReportResult:
    """The class report as of ``until`` (default now), counting activity since ``since``."""
    klass = find_class(session, principal, class_id)
    snapshot = current_snapshot(session)
    members = session.execute(
        select(Student.id, Student.external_id, Student.speed_weights, Student.answer_count,
               Student.last_answer_at)
        .join(ClassMembership, ClassMembership.student_id == Student.id)
        .where(ClassMembership.class_id == klass.id)).all()
    ids = [m.id for m in members]
    record_access(session, principal, ids, "class report")
    weights = {m.id: list(m.speed_weights or SPEED_PRIOR) for m in members}
    # Core columns: this is the one query whose size grows with students × skills.
    table = Mastery.__table__
    mastery = _chunked(session, ids, lambda chunk: select(
        table.c.student_id, table.c.skill_id, table.c.p_by_speed, table.c.attempts, table.c.correct_count,
        table.c.mastered_at, table.c.attempts_at_mastery, table.c.updated_at, table.c.review_successes,
    ).where(table.c.student_id.in_(chunk)))
    if until is None and since is None:
        end = utcnow()
        skills: dict[str, dict[str, SkillRecord]] = {sid: {} for sid in ids}
        for row in mastery:
            skills[row.student_id][row.skill_id] = SkillRecord(
                p_mastery=_paced(weights[row.student_id], row.p_by_speed), attempts=row.attempts,
                correct=row.correct_count, mastered_at=row.mastered_at,
                attempts_at_mastery=row.attempts_at_mastery, last_practiced_at=row.updated_at,
                review_successes=row.review_successes)
        # The counters kept with every answer: no need to count the log.
        answers = {m.id: (m.answer_count, m.answer_count, m.last_answer_at) for m in members}
    else:
        end = until or utcnow()
        skills = _skills_as_of(session, ids, end, mastery)
        answers = {row.student_id: (int(row.answers), int(row.in_window or 0), row.last_at)
                   for row in _chunked(session, ids, lambda chunk: select(
                       Response.student_id, func.count().label("answers"),
                       func.sum(case((Response.created_at >= since, 1), else_=0) if since else 1)
                       .label("in_window"),
                       func.max(Response.created_at).label("last_at"),
                   ).where(Response.student_id.in_(chunk), Response.created_at <= end)
                   .group_by(Response.student_id))}
    records = []
    for member in members:
        total, in_window, last_at = answers.get(member.id, (0, 0, None))
        records.append(StudentRecord(
            student_id=member.id, external_id=member.external_id,
            speed=sum(w * k for w, k in zip(weights[member.id], SPEEDS, strict=True)),
            answers=total, answers_in_window=in_window, last_active_at=last_at, skills=skills[member.id]))
    report = build_class_report(snapshot.graph, records, report_config(), until=end, since=since)
    return ClassReportResult(klass, report)


def _paced(weights: list[float], p_by_speed: Iterable[float]) -> float:
    return sum(w * p for w, p in zip(weights, p_by_speed, strict=True))


def _chunked(session: Session, ids: list[str], query: object) -> list[Row[tuple[object, ...]]]:
    rows: list[Row[tuple[object, ...]]] = []
    for start in range(0, len(ids), CHUNK):
        rows.extend(session.execute(query(ids[start:start + CHUNK])).all())  # type: ignore[operator]
    return rows


def _skills_as_of(
    session: Session, ids: list[str], end: datetime, mastery: list[Row[tuple[object, ...]]],
) -> dict[str, dict[str, SkillRecord]]:
    """Each student's standing per skill at ``end``: counts and the last traced step, by SQL aggregates."""
    steps = _chunked(session, ids, lambda chunk: select(
        Response.student_id, ResponseSkill.skill_id, func.count().label("attempts"),
        func.sum(case((Response.credited, 1), else_=0)).label("correct"),
        func.max(Response.id).label("last_id"), func.max(Response.created_at).label("last_at"),
    ).join(Response, Response.id == ResponseSkill.response_id)
     .where(Response.student_id.in_(chunk), Response.created_at <= end)
     .group_by(Response.student_id, ResponseSkill.skill_id))
    keys = [(row.last_id, row.skill_id) for row in steps]
    level: dict[tuple[int, str], float] = {}
    for start in range(0, len(keys), CHUNK):
        level.update({(r.response_id, r.skill_id): r.p for r in session.execute(
            select(ResponseSkill.response_id, ResponseSkill.skill_id,
                   func.coalesce(ResponseSkill.p_mastery_paced_after,
                                 ResponseSkill.p_mastery_after).label("p"))
            .where(tuple_(ResponseSkill.response_id, ResponseSkill.skill_id)
                   .in_(keys[start:start + CHUNK])))})
    current = {(row.student_id, row.skill_id): row for row in mastery}
    out: dict[str, dict[str, SkillRecord]] = {sid: {} for sid in ids}
    for row in steps:
        now_row = current.get((row.student_id, row.skill_id))
        out[row.student_id][row.skill_id] = SkillRecord(
            p_mastery=level[(row.last_id, row.skill_id)], attempts=int(row.attempts),
            correct=int(row.correct),
            mastered_at=now_row.mastered_at if now_row else None,
            attempts_at_mastery=now_row.attempts_at_mastery if now_row else None,
            last_practiced_at=row.last_at,
            review_successes=now_row.review_successes if now_row else 0)
    return out


@dataclass(frozen=True)
class MasteryPoint:
    at: datetime
    skill_id: str
    p_mastery: float  # paced P(L) after the answer


def mastery_history(session: Session, principal: Principal, student_id: str,
                    limit: int = 400) -> list[MasteryPoint]:
    """The student's paced P(L) after each of their latest answers, oldest first."""
    student = get_student(session, principal, student_id, "mastery history")
    rows = session.execute(
        select(Response.created_at, ResponseSkill.skill_id,
               func.coalesce(ResponseSkill.p_mastery_paced_after, ResponseSkill.p_mastery_after))
        .join(ResponseSkill, ResponseSkill.response_id == Response.id)
        .where(Response.student_id == student.id)
        .order_by(Response.id.desc(), ResponseSkill.position).limit(limit)).all()
    return [MasteryPoint(at, skill_id, float(p)) for at, skill_id, p in reversed(rows)]
