"""A student's data rights: export (JSON, or a ZIP of CSV files), deletion, and retention.

What each table holds and how export, deletion and retention treat it: docs/DATA.md.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal
from app.domain.errors import UnknownStudent
from app.models import (
    AccessLogEntry,
    ClassMembership,
    ConsentEvent,
    DeletionRecord,
    GroupAttribute,
    LearningApp,
    Mastery,
    Recommendation,
    Response,
    ResponseSkill,
    School,
    SchoolClass,
    StaffUser,
    Student,
    StudentBaseline,
    StudentCredential,
    utcnow,
)
from app.services.access import find_student
from app.services.content import read_snapshot
from app.services.groups import student_groups
from app.services.mastery import baseline_skills, replay_models
from app.services.student_models import refresh_answer_counts

HOW_IT_WORKS = """\
How the tutor estimates what you know, and chooses what you practise

1. Every skill starts with a probability that you already know it (the skill's "prior").
2. After each answer, that probability is updated with Bayesian knowledge tracing: a right answer makes
   it more likely you know the skill (unless it could have been a lucky guess), a wrong answer makes it
   less likely (unless it could have been a slip). Then it rises a little, because practising teaches.
   How much each of these counts is set per skill: guess, slip and learning rates, fitted from many
   students' answers (or set by the authors of the exercises).
3. The tutor also estimates how quickly YOU learn, from your own answers only (never from who you are),
   and uses that pace in the estimate. A skill counts as mastered when that estimate reaches {threshold:.0%}.
4. The next exercise comes from a skill whose prerequisites you have mastered and where one more exercise
   is expected to help most; within it, one you are likely, but not certain, to get right (about
   {target:.0%}). Skills you mastered a while ago come back for review. If you keep struggling with a
   skill, the tutor goes back to its prerequisites. Every recommendation is stored with the reason it
   was made (see "recommendations").
5. If personalization is switched off, exercises come in the fixed order of the curriculum and nothing
   about you is used to choose them.
The numbers in this export are the ones the tutor used.
"""


@dataclass(frozen=True)
class StudentExport:
    """Everything stored about one student, grouped by kind."""

    sections: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return self.sections


def export_student(session: Session, principal: Principal, student_id: str, *, threshold: float,
                   target_success: float) -> StudentExport:
    student = find_student(session, principal, student_id, Action.READ_STUDENT, what="export")
    school = session.get(School, student.school_id)
    app = session.get(LearningApp, student.app_id) if student.app_id else None
    credential = session.get(StudentCredential, student.id)
    baseline = session.get(StudentBaseline, student.id)
    classes = session.execute(
        select(SchoolClass.name, StaffUser.name, ClassMembership.added_at)
        .join(ClassMembership, ClassMembership.class_id == SchoolClass.id)
        .join(StaffUser, StaffUser.id == SchoolClass.teacher_id)
        .where(ClassMembership.student_id == student.id).order_by(ClassMembership.added_at)).all()
    responses = list(session.scalars(
        select(Response).where(Response.student_id == student.id).order_by(Response.id)))
    steps: dict[int, list[ResponseSkill]] = {}
    for step in session.scalars(select(ResponseSkill).join(Response, Response.id == ResponseSkill.response_id)
                                .where(Response.student_id == student.id)
                                .order_by(ResponseSkill.response_id, ResponseSkill.position)):
        steps.setdefault(step.response_id, []).append(step)
    sections: dict[str, Any] = {
        "exported_at": utcnow(),
        "how_it_works": HOW_IT_WORKS.format(threshold=threshold, target=target_success),
        "profile": {
            "id": student.id, "external_id": student.external_id, "school": school.name if school else None,
            "created_at": student.created_at, "created_by_app": app.name if app else None,
            "personalized": student.personalized,
            "personalization_changed_at": student.personalization_changed_at,
            "personalization_changed_by": student.personalization_changed_by,
            "pace_weights": student.speed_weights, "answer_count": student.answer_count,
            "last_answer_at": student.last_answer_at,
        },
        "sign_in": None if credential is None else {
            "personal_code_issued_at": credential.issued_at, "last_sign_in_at": credential.last_login_at,
            "note": "Only a one-way hash of the personal code is stored; it is not part of the export.",
        },
        "classes": [{"name": name, "teacher": teacher, "joined_at": joined}
                    for name, teacher, joined in classes],
        "responses": [{
            "id": r.id, "created_at": r.created_at, "exercise_id": r.exercise_id, "answer": r.answer,
            "correct": r.correct, "graded_by": r.graded_by, "response_time_ms": r.response_time_ms,
            "client_response_id": r.client_response_id, "recommendation_id": r.recommendation_id,
            "skills": [{"skill_id": s.skill_id, "p_mastery_before": s.p_mastery_before,
                        "p_correct": s.p_correct, "p_mastery_after": s.p_mastery_after,
                        "p_mastery_paced_after": s.p_mastery_paced_after} for s in steps.get(r.id, [])],
        } for r in responses],
        "mastery": [{
            "skill_id": m.skill_id, "p_mastery": m.p_mastery, "p_by_speed": m.p_by_speed,
            "attempts": m.attempts, "correct": m.correct_count, "mastered_at": m.mastered_at,
            "attempts_at_mastery": m.attempts_at_mastery, "last_practiced_at": m.updated_at,
            "review_successes": m.review_successes,
        } for m in session.scalars(select(Mastery).where(Mastery.student_id == student.id)
                                   .order_by(Mastery.skill_id))],
        "purged_history": None if baseline is None else {
            "answers_purged": baseline.answer_count, "purged_before": baseline.purged_before,
            "state_then": baseline.skills,
            "note": "Answers older than the retention period were deleted; the state they led to was kept.",
        },
        "recommendations": [{
            "id": rec.id, "created_at": rec.created_at, "exercise_id": rec.exercise_id,
            "skill_id": rec.skill_id, "policy": rec.policy, "reason": rec.reason,
            "explanation": rec.explanation, "details": rec.details,
        } for rec in session.scalars(select(Recommendation).where(Recommendation.student_id == student.id)
                                     .order_by(Recommendation.id))],
        "group_attributes": student_groups(session, student.id),
        "consents": [{
            "kind": c.kind, "granted": c.granted, "scope": c.scope, "actor": c.actor, "given_by": c.given_by,
            "at": c.created_at,
        } for c in session.scalars(select(ConsentEvent).where(ConsentEvent.student_id == student.id)
                                   .order_by(ConsentEvent.id))],
        "access_log": [{
            "at": a.created_at, "who": a.actor_name, "actor": a.actor, "what": a.what,
        } for a in session.scalars(select(AccessLogEntry).where(AccessLogEntry.student_id == student.id)
                                   .order_by(AccessLogEntry.id))],
    }
    return StudentExport(sections)


def export_zip(export: StudentExport) -> bytes:
    """The export as CSV files (one per section) in a ZIP, with the explanation as a text file."""
    data = export.sections
    tables: dict[str, list[dict[str, Any]]] = {
        "profile.csv": [{"field": k, "value": v} for k, v in data["profile"].items()],
        "classes.csv": data["classes"],
        "responses.csv": [{**{k: v for k, v in r.items() if k != "skills"}, **step}
                          for r in data["responses"] for step in (r["skills"] or [{}])],
        "mastery.csv": data["mastery"],
        "recommendations.csv": data["recommendations"],
        "consents.csv": data["consents"],
        "group_attributes.csv": [{"attribute": k, "value": v} for k, v in data["group_attributes"].items()],
        "access_log.csv": data["access_log"],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("how_it_works.txt", data["how_it_works"])
        for name, rows in tables.items():
            bundle.writestr(name, _csv(rows))
    return buffer.getvalue()


def _csv(rows: list[dict[str, Any]]) -> str:
    out = io.StringIO()
    columns = list(dict.fromkeys(k for row in rows for k in row))
    writer = csv.DictWriter(out, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(v) for k, v in row.items()})
    return out.getvalue()


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, default=str)
    text = str(value)
    # A cell starting with = + - @ runs as a formula in spreadsheets.
    return "'" + text if text[:1] in ("=", "+", "-", "@") and not _is_number(text) else text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


# --- deletion ----------------------------------------------------------------------------------


def delete_student(session: Session, student_id: str, *, by: Principal | None, actor: str = "operator"
                   ) -> dict[str, int]:
    """Remove the student and everything derived from them, in one transaction; rows deleted per table.

    ``by``: the caller (an app or admin; None for the operator's CLI).
    """
    if by is not None:
        student = find_student(session, by, student_id, Action.DELETE_STUDENT, lock=True)
        actor = by.actor
    else:
        found = session.get(Student, student_id, with_for_update=True)
        if found is None:
            raise UnknownStudent(student_id)
        student = found
    responses = select(Response.id).where(Response.student_id == student.id).scalar_subquery()
    counts: dict[str, int] = {}
    for table, condition in (
        (ResponseSkill, ResponseSkill.response_id.in_(responses)),
        (Response, Response.student_id == student.id),
        (Recommendation, Recommendation.student_id == student.id),
        (Mastery, Mastery.student_id == student.id),
        (StudentBaseline, StudentBaseline.student_id == student.id),
        (ClassMembership, ClassMembership.student_id == student.id),
        (StudentCredential, StudentCredential.student_id == student.id),
        (ConsentEvent, ConsentEvent.student_id == student.id),
        (GroupAttribute, GroupAttribute.student_id == student.id),
        (AccessLogEntry, AccessLogEntry.student_id == student.id),
        (Student, Student.id == student.id),
    ):
        result = session.execute(delete(table).where(condition))
        counts[table.__tablename__] = int(result.rowcount or 0)  # type: ignore[attr-defined]
    session.add(DeletionRecord(school_id=student.school_id, actor=actor, rows_deleted=counts))
    session.commit()
    return counts


# --- retention ---------------------------------------------------------------------------------


@dataclass
class PurgeReport:
    responses_before: datetime
    access_log_before: datetime
    dry_run: bool
    counts: dict[str, int] = field(default_factory=dict)
    students_folded: int = 0


def purge_expired(session: Session, *, response_days: int, access_log_days: int, threshold: float,
                  dry_run: bool = False, now: datetime | None = None) -> PurgeReport:
    """Delete answers, recommendations and access-log entries older than their retention, in one
    transaction.

    Mastery stays as it is: the current state is kept, the raw history goes. So that the stored state
    still equals a replay of what is left, each affected student's state at the cut-off is folded into
    ``student_baselines`` (replays start there).
    """
    now = now or utcnow()
    report = PurgeReport(now - timedelta(days=response_days), now - timedelta(days=access_log_days), dry_run)
    old_responses = select(Response.id).where(Response.created_at < report.responses_before)
    report.counts = {
        "responses": _count(session, Response, Response.created_at < report.responses_before),
        "response_skills": _count(session, ResponseSkill, ResponseSkill.response_id.in_(old_responses)),
        "recommendations": _count(session, Recommendation,
                                  Recommendation.created_at < report.responses_before),
        "access_log": _count(session, AccessLogEntry, AccessLogEntry.created_at < report.access_log_before),
    }
    affected = list(session.scalars(select(Response.student_id).distinct()
                                    .where(Response.created_at < report.responses_before)))
    report.students_folded = len(affected)
    if dry_run:
        session.rollback()
        return report
    params = read_snapshot(session).params
    for student_id, model, steps in replay_models(session, params, threshold, affected,
                                                  before=report.responses_before):
        baseline = session.get(StudentBaseline, student_id)
        folded = len({s.response_id for s in steps})
        last = max((s.created_at for s in steps), default=None)
        if baseline is None:
            baseline = StudentBaseline(student_id=student_id, answer_count=0)
            session.add(baseline)
        baseline.speed_weights = list(model.speed_weights)
        baseline.skills = baseline_skills(model)
        baseline.answer_count = (baseline.answer_count or 0) + folded
        baseline.last_answer_at = last or baseline.last_answer_at
        baseline.purged_before = report.responses_before
    session.flush()
    session.execute(delete(ResponseSkill).where(ResponseSkill.response_id.in_(old_responses)))
    session.execute(delete(Response).where(Response.created_at < report.responses_before))
    session.execute(delete(Recommendation).where(Recommendation.created_at < report.responses_before))
    session.execute(delete(AccessLogEntry).where(AccessLogEntry.created_at < report.access_log_before))
    refresh_answer_counts(session, affected)
    session.commit()
    return report


def _count(session: Session, model: Any, condition: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(condition)) or 0)
