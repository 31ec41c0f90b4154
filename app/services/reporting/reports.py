"""Reports read from the database: the student's own, the class view, and mastery over time.

Current state comes from the mastery table (one row per student and skill, kept up to date
with every answer), so a class report never reads response rows into Python. A date window
is answered with SQL aggregates over the response log (counts, and the last step per skill).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, case, func, select, tuple_
from sqlalchemy.orm import Session

from app.domain.access import Principal
from app.domain.dashboard import Dashboard, RecentAnswers, build_dashboard
from app.domain.memory import Memory
from app.domain.reports import (
    ClassReport,
    ReportConfig,
    SkillRecord,
    StudentRecord,
    StudentReport,
    build_class_report,
    build_student_report,
)
from app.domain.tracking import HYPOTHESES
from app.domain.wording import TeacherReason, for_teacher
from app.models import ClassMembership, Mastery, Response, ResponseSkill, SchoolClass, Student, utcnow
from app.services.people.access import find_class, record_access
from app.services.tutoring.content import current_snapshot, load_exercise
from app.services.tutoring.next_exercise import recommendations_of
from app.services.tutoring.student_models import by_hypothesis, load_model, memory_of, weights_of
from app.services.tutoring.students import get_student
from app.settings import current_settings

CHUNK = 500


def report_config() -> ReportConfig:
    """The policy's rules and wheel-spinning, then any REPORTS mapping (built and checked at start)."""
    return current_settings().reports


def student_report(session: Session, principal: Principal, student_id: str) -> tuple[Student, StudentReport]:
    student = get_student(session, principal, student_id)
    report = _report_of(session, student)
    record_access(session, principal, [student.id], "report")
    session.commit()
    return student, report


def _report_of(session: Session, student: Student) -> StudentReport:
    snapshot = current_snapshot(session)
    model, _ = load_model(session, student, snapshot, current_settings().mastery)  # behind: as replayed
    # The answer counter kept with every answer: the count the class report, its CSV and the API show.
    return build_student_report(
        snapshot.graph, snapshot.params, model, utcnow(), report_config(), answers=student.answer_count
    )


@dataclass(frozen=True)
class StudentPage:
    """What a teacher's page of one student shows."""

    student: Student
    report: StudentReport
    history: list[MasteryPoint]
    recommendations: list[dict[str, Any]]  # the latest, newest first, with the answer that followed
    # Aligned with ``recommendations``: why, in a teacher's words (numbers apart), and the exercise's prompt.
    reasons: list[TeacherReason]
    prompts: list[str | None]


def student_page(
    session: Session, principal: Principal, student_id: str, *, history: int = 400, recommendations: int = 20
) -> StudentPage:
    """The report, mastery over time and the latest recommendations: one read, one access-log row."""
    student = get_student(session, principal, student_id)
    snapshot = current_snapshot(session)
    graph = snapshot.graph
    latest = recommendations_of(session, student.id, recommendations)
    names = {s.id: s.name for s in graph.skills.values()}
    prerequisites = {s.id: s.prerequisites for s in graph.skills.values()}
    reasons = [for_teacher(r["reason"], r["details"], r["skill_id"], names, prerequisites) for r in latest]
    prompts = [_prompt(session, graph, r["exercise_id"]) for r in latest]
    page = StudentPage(
        student,
        _report_of(session, student),
        _history_of(session, student.id, history),
        latest,
        reasons,
        prompts,
    )
    record_access(session, principal, [student.id], "student page")
    session.commit()
    return page


def _prompt(session: Session, graph: Any, exercise_id: str | None) -> str | None:
    if exercise_id is None:
        return None
    exercise = graph.exercises.get(exercise_id) or load_exercise(session, exercise_id)  # retired ones too
    return exercise.prompt if exercise is not None else exercise_id


@dataclass(frozen=True)
class ClassReportResult:
    klass: SchoolClass
    report: ClassReport
    dashboard: Dashboard | None = None  # with ``dashboard=True``: flags and suggested groupings


def class_report(
    session: Session,
    principal: Principal,
    class_id: int,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    dashboard: bool = False,
) -> ClassReportResult:
    """The class report as of ``until`` (default now), counting activity since ``since``; with
    ``dashboard``, also what the teacher should act on (which reads each student's latest answers)."""
    klass = find_class(session, principal, class_id)
    snapshot = current_snapshot(session)
    members = session.execute(
        select(
            Student.id,
            Student.external_id,
            Student.speed_weights,
            Student.answer_count,
            Student.last_answer_at,
        )
        .join(ClassMembership, ClassMembership.student_id == Student.id)
        .where(ClassMembership.class_id == klass.id)
    ).all()
    ids = [m.id for m in members]
    record_access(session, principal, ids, "class report")
    weights = {m.id: weights_of(m.speed_weights) for m in members}
    # Core columns: this is the one query whose size grows with students × skills.
    table = Mastery.__table__
    mastery = _chunked(
        session,
        ids,
        lambda chunk: select(
            table.c.student_id,
            table.c.skill_id,
            table.c.p_by_speed,
            table.c.attempts,
            table.c.correct_count,
            table.c.mastered_at,
            table.c.attempts_at_mastery,
            table.c.updated_at,
            table.c.memory_stability,
            table.c.memory_difficulty,
            table.c.memory_reviewed_at,
            table.c.memory_reviews,
            table.c.memory_lapses,
        ).where(table.c.student_id.in_(chunk)),
    )
    if until is None and since is None:
        end = utcnow()
        skills: dict[str, dict[str, SkillRecord]] = {sid: {} for sid in ids}
        for row in mastery:
            skills[row.student_id][row.skill_id] = SkillRecord(
                p_by_hypothesis=by_hypothesis(list(row.p_by_speed)),
                attempts=row.attempts,
                correct=row.correct_count,
                mastered_at=row.mastered_at,
                attempts_at_mastery=row.attempts_at_mastery,
                last_practiced_at=row.updated_at,
                memory=memory_of(row),
            )
        # The counters kept with every answer: no need to count the log.
        answers = {m.id: (m.answer_count, m.answer_count, m.last_answer_at) for m in members}
    else:
        end = until or utcnow()
        skills = _skills_as_of(session, ids, end, mastery)
        answers = {
            row.student_id: (int(row.answers), int(row.in_window or 0), row.last_at)
            for row in _chunked(
                session,
                ids,
                lambda chunk: (
                    select(
                        Response.student_id,
                        func.count().label("answers"),
                        func.sum(case((Response.created_at >= since, 1), else_=0) if since else 1).label(
                            "in_window"
                        ),
                        func.max(Response.created_at).label("last_at"),
                    )
                    .where(Response.student_id.in_(chunk), Response.created_at <= end)
                    .group_by(Response.student_id)
                ),
            )
        }
    records = []
    for member in members:
        total, in_window, last_at = answers.get(member.id, (0, 0, None))
        records.append(
            StudentRecord(
                student_id=member.id,
                external_id=member.external_id,
                speed=sum(w * h[0] for w, h in zip(weights[member.id], HYPOTHESES, strict=True)),
                weights=weights[member.id],
                answers=total,
                answers_in_window=in_window,
                last_active_at=last_at,
                skills=skills[member.id],
            )
        )
    report = build_class_report(snapshot.graph, records, report_config(), until=end, since=since)
    built = None
    if dashboard:
        built = build_dashboard(
            report, _recent_answers(session, ids, end if until is not None else None), report_config()
        )
    session.commit()  # the access-log rows, recorded above
    return ClassReportResult(klass, report, built)


RECENT_ANSWERS = 10  # DashboardConfig.recent_answers


def _recent_answers(session: Session, ids: list[str], end: datetime | None) -> dict[str, RecentAnswers]:
    """Each student's latest answers (by ``end``): how many, how many right, how many after a hint."""
    out: dict[str, RecentAnswers] = {}
    for start in range(0, len(ids), CHUNK):
        query = select(
            Response.student_id,
            Response.correct,
            Response.hints_used,
            func.row_number()
            .over(partition_by=Response.student_id, order_by=Response.id.desc())
            .label("rank"),
        ).where(Response.student_id.in_(ids[start : start + CHUNK]))
        if end is not None:
            query = query.where(Response.created_at <= end)
        ranked = query.subquery()
        for sid, n, right, hinted in session.execute(
            select(
                ranked.c.student_id,
                func.count(),
                func.sum(case((ranked.c.correct, 1), else_=0)),
                func.sum(case((ranked.c.hints_used > 0, 1), else_=0)),
            )
            .where(ranked.c.rank <= RECENT_ANSWERS)
            .group_by(ranked.c.student_id)
        ):
            out[sid] = RecentAnswers(int(n), int(right or 0), int(hinted or 0))
    return out


def _chunked(session: Session, ids: list[str], query: object) -> list[Row[tuple[object, ...]]]:
    rows: list[Row[tuple[object, ...]]] = []
    for start in range(0, len(ids), CHUNK):
        rows.extend(session.execute(query(ids[start : start + CHUNK])).all())  # type: ignore[operator]
    return rows


def _skills_as_of(
    session: Session,
    ids: list[str],
    end: datetime,
    mastery: list[Row[tuple[object, ...]]],
) -> dict[str, dict[str, SkillRecord]]:
    """Each student's standing per skill at ``end``: counts and the last traced step, by SQL aggregates."""
    steps = _chunked(
        session,
        ids,
        lambda chunk: (
            select(
                Response.student_id,
                ResponseSkill.skill_id,
                func.count().label("attempts"),
                func.sum(case((Response.credited, 1), else_=0)).label("correct"),
                func.max(Response.id).label("last_id"),
                func.max(Response.created_at).label("last_at"),
            )
            .join(Response, Response.id == ResponseSkill.response_id)
            .where(Response.student_id.in_(chunk), Response.created_at <= end)
            .group_by(Response.student_id, ResponseSkill.skill_id)
        ),
    )
    keys = [(row.last_id, row.skill_id) for row in steps]
    level: dict[tuple[int, str], float] = {}
    for start in range(0, len(keys), CHUNK):
        level.update(
            {
                (r.response_id, r.skill_id): r.p
                for r in session.execute(
                    select(
                        ResponseSkill.response_id,
                        ResponseSkill.skill_id,
                        func.coalesce(
                            ResponseSkill.p_mastery_paced_after, ResponseSkill.p_mastery_after
                        ).label("p"),
                    ).where(
                        tuple_(ResponseSkill.response_id, ResponseSkill.skill_id).in_(
                            keys[start : start + CHUNK]
                        )
                    )
                )
            }
        )
    # The trail keeps paced P(L) after each answer, not its parts per hypothesis: as of a past date the
    # report uses that value for every hypothesis (the same average), and the memory as it is now when its
    # last review came before the end date (else the skill counts as not yet reviewed then).
    current = {(row.student_id, row.skill_id): row for row in mastery}
    out: dict[str, dict[str, SkillRecord]] = {sid: {} for sid in ids}
    for row in steps:
        now_row = current.get((row.student_id, row.skill_id))
        memory = memory_of(now_row) if now_row is not None else None
        if memory is not None and memory.last_review_at > end:
            memory = Memory(memory.stability, memory.difficulty, row.last_at)  # approximate: reviewed then
        out[row.student_id][row.skill_id] = SkillRecord(
            p_by_hypothesis=[level[(row.last_id, row.skill_id)]] * len(HYPOTHESES),
            attempts=int(row.attempts),
            correct=int(row.correct),
            mastered_at=now_row.mastered_at if now_row else None,
            attempts_at_mastery=now_row.attempts_at_mastery if now_row else None,
            last_practiced_at=row.last_at,
            memory=memory,
        )
    return out


@dataclass(frozen=True)
class MasteryPoint:
    at: datetime
    skill_id: str
    p_mastery: float  # the mastery estimate right after the answer (older answers: paced P(L))


def mastery_history(
    session: Session, principal: Principal, student_id: str, limit: int = 400
) -> list[MasteryPoint]:
    """The student's mastery estimate after each of their latest answers, oldest first."""
    student = get_student(session, principal, student_id)
    points = _history_of(session, student.id, limit)
    record_access(session, principal, [student.id], "mastery history")
    session.commit()
    return points


def _history_of(session: Session, student_id: str, limit: int) -> list[MasteryPoint]:
    rows = session.execute(
        select(
            Response.created_at,
            ResponseSkill.skill_id,
            func.coalesce(
                ResponseSkill.estimate_after,
                ResponseSkill.p_mastery_paced_after,
                ResponseSkill.p_mastery_after,
            ),
        )
        .join(ResponseSkill, ResponseSkill.response_id == Response.id)
        .where(Response.student_id == student_id)
        .order_by(Response.id.desc(), ResponseSkill.position)
        .limit(limit)
    ).all()
    return [MasteryPoint(at, skill_id, float(p)) for at, skill_id, p in reversed(rows)]
