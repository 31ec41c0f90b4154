"""A student's data rights: export (JSON, or a ZIP of CSV files), deletion, and retention.

What each table holds and how export, deletion and retention treat it: docs/DATA.md.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from app import csv_writer
from app.domain.access import Action, Principal
from app.domain.errors import UnknownStudent
from app.domain.tracking import MasteryRules
from app.models import (
    AccessLogEntry,
    ClassMembership,
    ConsentEvent,
    DeletionRecord,
    Exercise,
    GroupAttribute,
    LearningApp,
    LtiAccount,
    LtiContext,
    LtiPlatform,
    LtiResourceLink,
    LtiScore,
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
from app.services.modelling.mastery import (
    REPAIR_CHUNK,
    baseline_skills,
    behind,
    rebuild_mastery,
    replay_models,
)
from app.services.people.access import find_student, record_access
from app.services.tutoring.content import read_snapshot
from app.services.tutoring.student_models import refresh_answer_counts

HOW_IT_WORKS = """\
How the tutor estimates what you know, and chooses what you practise

1. Every skill starts with a probability that you already know it (the skill's "prior").
2. After each answer, that probability is updated with Bayesian knowledge tracing: a right answer makes
   it more likely you know the skill (unless it could have been a lucky guess), a wrong answer makes it
   less likely (unless it could have been a slip). Then it rises a little, because practising teaches.
   How much each of these counts is set per skill: guess, slip and learning rates, fitted from many
   students' answers (or set by the authors of the exercises).
3. The tutor also estimates how quickly YOU learn and how much you knew to begin with, from your own
   answers only (never from who you are), and uses them in the estimate. Once you have learned a skill,
   it also predicts how well you still remember it as days pass (a memory model, FSRS): the mastery
   estimate is "learned, and still remembered". A skill counts as mastered when that estimate reaches
   {threshold:.0%} after at least 3 right answers; it becomes "due for review" when the estimate falls
   as time passes, and a right answer after a gap strengthens the memory more than one right away.
4. The next exercise comes from a skill whose prerequisites you have mastered and where one more exercise
   is expected to help most, switching between a few skills rather than repeating one; within it, one
   you are likely, but not certain, to get right (about {target:.0%}). Skills due for review come back
   at growing intervals. If you keep struggling with a skill, the tutor goes back to its prerequisites.
   Every recommendation is stored with the reason it was made (see "recommendations").
5. If personalization is switched off, exercises come in the fixed order of the curriculum and nothing
   about you is used to choose them.
The numbers in this export are the ones the tutor used.
"""


@dataclass(frozen=True)
class Shown:
    """A stored column that the export shows in another form, under ``field`` (an id as the name it
    stands for)."""

    field: str
    how: str


@dataclass(frozen=True)
class Implied:
    """A stored column that is not a field of its own: the export's structure says it."""

    how: str


@dataclass(frozen=True)
class Withheld:
    """A stored column left out of the export, and why."""

    reason: str


THE_STUDENT = Implied("the student the whole export is about (the profile's id)")

# THE classification of what is stored about a student: every column of every table keyed by a student
# (docs/DATA.md, "Student data"), with the section of the export it appears in. A plain string is the
# field the column is exported under, exactly as stored. A new column or table fails
# tests/services/test_export_completeness.py until it is added here; plain fields are then exported by
# ``_stored`` without further code.
EXPORT_MAP: dict[str, tuple[str, dict[str, str | Shown | Implied | Withheld]]] = {
    "students": (
        "profile",
        {
            "id": "id",
            "school_id": Shown("school", "the school's name"),
            "app_id": Shown("created_by_app", "the name of the app that created the student"),
            "external_id": "external_id",
            "created_at": "created_at",
            "speed_weights": "pace_weights",
            "personalized": "personalized",
            "personalization_changed_at": "personalization_changed_at",
            "personalization_changed_by": "personalization_changed_by",
            "answer_count": "answer_count",
            "last_answer_at": "last_answer_at",
            "parameters_revision": Withheld(
                "a service counter (which parameter revision the student's state was last replayed "
                "under): it says nothing about the student"
            ),
            "sourced_id": "oneroster_sourced_id",
            "pace_drift": Withheld(
                "an index of the answer path (how far the pace posterior has moved, summed over answers): it "
                "says nothing that pace_weights and the answers do not"
            ),
        },
    ),
    "student_credentials": (
        "sign_in",
        {
            "student_id": THE_STUDENT,
            "login_prefix": "personal_code_prefix",
            "code_hash": Withheld(
                "a one-way hash of the personal code: it tells the student nothing, and a copy "
                "of it would let anyone try codes offline"
            ),
            "version": "code_version",
            "issued_at": "personal_code_issued_at",
            "last_login_at": "last_sign_in_at",
        },
    ),
    "class_members": (
        "classes",
        {
            "class_id": Shown("name", "the class's name, with its teacher's name"),
            "student_id": THE_STUDENT,
            "added_at": "joined_at",
            "sourced_id": "oneroster_enrollment_sourced_id",
        },
    ),
    "responses": (
        "responses",
        {
            "id": "id",
            "student_id": THE_STUDENT,
            "exercise_id": "exercise_id",
            "correct": "correct",
            "answer": "answer",
            "graded_by": "graded_by",
            "response_time_ms": "response_time_ms",
            "client_response_id": "client_response_id",
            "created_at": "created_at",
            "recommendation_id": "recommendation_id",
            "hints_used": "hints_used",
        },
    ),
    "response_skills": (
        "responses.skills",
        {
            "response_id": Implied("each answer lists the tracing steps it caused ('skills')"),
            "skill_id": "skill_id",
            "position": "position",
            "parameters_id": "parameters_id",
            "p_mastery_before": "p_mastery_before",
            "p_correct": "p_correct",
            "p_mastery_after": "p_mastery_after",
            "p_mastery_paced_after": "p_mastery_paced_after",
            "estimate_before": "estimate_before",
            "estimate_after": "estimate_after",
        },
    ),
    "mastery": (
        "mastery",
        {
            "student_id": THE_STUDENT,
            "skill_id": "skill_id",
            "p_mastery": "p_mastery",
            "p_not_mastered": Withheld(
                "1 - p_mastery, kept to its own precision for the tracker's next update: it says nothing "
                "that p_mastery does not"
            ),
            "attempts": "attempts",
            "correct_count": "correct",
            "p_by_speed": "p_by_speed",
            "mastered_at": "mastered_at",
            "attempts_at_mastery": "attempts_at_mastery",
            "updated_at": "last_practiced_at",
            "review_successes": "review_successes",
            "parameters_id": "parameters_id",
            "memory_stability": "memory_stability",
            "memory_difficulty": "memory_difficulty",
            "memory_reviewed_at": "memory_reviewed_at",
            "memory_reviews": "memory_reviews",
            "memory_lapses": "memory_lapses",
            "pace_check_at": Withheld(
                "an index of the answer path (when a new pace estimate must look at the skill again): it "
                "says nothing that the exported mastery values do not"
            ),
        },
    ),
    "student_baselines": (
        "purged_history",
        {
            "student_id": THE_STUDENT,
            "speed_weights": "pace_weights_then",
            "answer_count": "answers_purged",
            "last_answer_at": "last_purged_answer_at",
            "skills": "state_then",
            "purged_before": "purged_before",
        },
    ),
    "recommendations": (
        "recommendations",
        {
            "id": "id",
            "student_id": THE_STUDENT,
            "created_at": "created_at",
            "exercise_id": "exercise_id",
            "skill_id": "skill_id",
            "policy": "policy",
            "reason": "reason",
            "explanation": "explanation",
            "details": "details",
            "hints_shown": "hints_shown",
        },
    ),
    "group_attributes": (
        "group_attributes",
        {
            "student_id": THE_STUDENT,
            "attribute": "attribute",
            "value": "value",
            "set_at": "set_at",
            "set_by": "set_by",
        },
    ),
    "consent_events": (
        "consents",
        {
            "id": "id",
            "student_id": THE_STUDENT,
            "kind": "kind",
            "granted": "granted",
            "scope": "scope",
            "actor": "actor",
            "given_by": "given_by",
            "created_at": "at",
        },
    ),
    "lti_accounts": (
        "lms_accounts",
        {
            "id": Withheld("a row number: it says nothing about the student"),
            "platform_id": Shown("lms", "the name of the LMS the student launched the tutor from"),
            "sub": "lms_user_id",
            "student_id": THE_STUDENT,
            "staff_user_id": Withheld("a teacher's account column: always empty on a student's row"),
            "created_at": "first_launch_at",
            "last_launch_at": "last_launch_at",
        },
    ),
    "lti_scores": (
        "lms_scores",
        {
            "id": Withheld("a row number: it says nothing about the student"),
            "resource_link_id": Shown(
                "link",
                "the link's id at the LMS, beside the LMS's name, the course's id there ('course') and what "
                "the link practises ('practises')",
            ),
            "student_id": THE_STUDENT,
            "changes": Withheld(
                "a counter bumped by each answer so the tutor knows a score may have changed (the answers "
                "themselves are under 'responses')"
            ),
            "handled": Withheld("the value of that counter the last check saw: a service counter"),
            "changed_at": "last_change_at",
            "score_given": "score_given",
            "score_maximum": "score_maximum",
            "activity_progress": "activity_progress",
            "grading_progress": "grading_progress",
            "sent_at": "sent_at",
            "attempts": "failed_sends_in_a_row",
            "next_attempt_at": "next_attempt_at",
            "last_error": "last_error",
            "created_at": "first_launch_at",
        },
    ),
    "access_log": (
        "access_log",
        {
            "id": "id",
            "student_id": THE_STUDENT,
            "actor": "actor",
            "actor_name": "who",
            "what": "what",
            "created_at": "at",
        },
    ),
}


def _stored(row: Any) -> dict[str, Any]:
    """The columns of ``row`` that EXPORT_MAP exports as stored, under their export names."""
    _, columns = EXPORT_MAP[row.__tablename__]
    return {field: getattr(row, column) for column, field in columns.items() if isinstance(field, str)}


@dataclass(frozen=True)
class StudentExport:
    """Everything stored about one student, grouped by kind."""

    sections: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return self.sections


def export_student(
    session: Session, principal: Principal, student_id: str, *, threshold: float, target_success: float
) -> StudentExport:
    student = find_student(session, principal, student_id, Action.READ_STUDENT)
    record_access(session, principal, [student.id], "export")  # so the export lists its own read
    school = session.get(School, student.school_id)
    app = session.get(LearningApp, student.app_id) if student.app_id else None
    credential = session.get(StudentCredential, student.id)
    baseline = session.get(StudentBaseline, student.id)
    classes = session.execute(
        select(SchoolClass.name, StaffUser.name, ClassMembership)
        .join(ClassMembership, ClassMembership.class_id == SchoolClass.id)
        .join(StaffUser, StaffUser.id == SchoolClass.teacher_id)
        .where(ClassMembership.student_id == student.id)
        .order_by(ClassMembership.added_at)
    ).all()
    responses = list(
        session.scalars(select(Response).where(Response.student_id == student.id).order_by(Response.id))
    )
    steps: dict[int, list[ResponseSkill]] = {}
    for step in session.scalars(
        select(ResponseSkill)
        .join(Response, Response.id == ResponseSkill.response_id)
        .where(Response.student_id == student.id)
        .order_by(ResponseSkill.response_id, ResponseSkill.position)
    ):
        steps.setdefault(step.response_id, []).append(step)
    # The worked solution the student saw after each answer (content, not their data: shown beside it).
    solutions = (
        dict(
            session.execute(
                select(Exercise.id, Exercise.solution).where(
                    Exercise.id.in_({r.exercise_id for r in responses if r.exercise_id})
                )
            ).all()
        )
        if responses
        else {}
    )

    def rows(model: Any, *order: Any) -> list[dict[str, Any]]:
        return [
            _stored(row)
            for row in session.scalars(select(model).where(model.student_id == student.id).order_by(*order))
        ]

    sections: dict[str, Any] = {
        "exported_at": utcnow(),
        "how_it_works": HOW_IT_WORKS.format(threshold=threshold, target=target_success),
        "profile": {
            **_stored(student),
            "school": school.name if school else None,
            "created_by_app": app.name if app else None,
        },
        "sign_in": None
        if credential is None
        else {
            **_stored(credential),
            "note": "Only a one-way hash of the personal code is stored; it is not part of the export.",
        },
        "classes": [
            {"name": name, "teacher": teacher, **_stored(membership)} for name, teacher, membership in classes
        ],
        "responses": [
            {
                **_stored(r),
                "solution": list(solutions.get(r.exercise_id or "") or []),
                "skills": [_stored(s) for s in steps.get(r.id, [])],
            }
            for r in responses
        ],
        "mastery": rows(Mastery, Mastery.skill_id),
        "purged_history": None
        if baseline is None
        else {
            **_stored(baseline),
            "note": "Answers older than the retention period were deleted; the state they led to was kept.",
        },
        "recommendations": rows(Recommendation, Recommendation.id),
        "group_attributes": rows(GroupAttribute, GroupAttribute.attribute),
        "consents": rows(ConsentEvent, ConsentEvent.id),
        "lms_accounts": [
            {"lms": lms, **_stored(account)}
            for account, lms in session.execute(
                select(LtiAccount, LtiPlatform.name)
                .join(LtiPlatform, LtiPlatform.id == LtiAccount.platform_id)
                .where(LtiAccount.student_id == student.id)
                .order_by(LtiAccount.id)
            ).all()
        ],
        "lms_scores": [
            {
                "lms": lms,
                "course": course,
                "link": link_id,
                "practises": target or "curriculum",
                **_stored(score),
            }
            for score, lms, course, link_id, target in session.execute(
                select(
                    LtiScore,
                    LtiPlatform.name,
                    LtiContext.context_id,
                    LtiResourceLink.resource_link_id,
                    LtiResourceLink.target,
                )
                .join(LtiResourceLink, LtiResourceLink.id == LtiScore.resource_link_id)
                .join(LtiContext, LtiContext.id == LtiResourceLink.context_id)
                .join(LtiPlatform, LtiPlatform.id == LtiContext.platform_id)
                .where(LtiScore.student_id == student.id)
                .order_by(LtiScore.id)
            ).all()
        ],
        "access_log": rows(AccessLogEntry, AccessLogEntry.id),
    }
    session.commit()
    return StudentExport(sections)


FIELD_FILES = ("profile.csv", "sign_in.csv", "purged_history.csv")  # one row per field: field,value


def export_zip(export: StudentExport) -> bytes:
    """The export as CSV files (one per section) in a ZIP, with the explanation as a text file."""
    data = export.sections

    def fields(section: dict[str, Any] | None) -> list[dict[str, Any]]:
        return [{"field": k, "value": v} for k, v in (section or {}).items()]

    tables: dict[str, list[dict[str, Any]]] = {
        "profile.csv": fields(data["profile"]),
        "sign_in.csv": fields(data["sign_in"]),
        "classes.csv": data["classes"],
        "responses.csv": [
            {**{k: v for k, v in r.items() if k != "skills"}, **step}
            for r in data["responses"]
            for step in (r["skills"] or [{}])
        ],
        "mastery.csv": data["mastery"],
        "purged_history.csv": fields(data["purged_history"]),
        "recommendations.csv": data["recommendations"],
        "consents.csv": data["consents"],
        "group_attributes.csv": data["group_attributes"],
        "lms_accounts.csv": data["lms_accounts"],
        "lms_scores.csv": data["lms_scores"],
        "access_log.csv": data["access_log"],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as bundle:
        bundle.writestr("how_it_works.txt", data["how_it_works"])
        for name, rows in tables.items():
            header = ("field", "value") if name in FIELD_FILES else ()
            bundle.writestr(name, csv_writer.table(rows, header))
    return buffer.getvalue()


# --- deletion ----------------------------------------------------------------------------------


def delete_student(
    session: Session, student_id: str, *, by: Principal | None, actor: str = "operator"
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
        (LtiAccount, LtiAccount.student_id == student.id),
        (LtiScore, LtiScore.student_id == student.id),
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


def purge_expired(
    session: Session,
    *,
    response_days: int,
    access_log_days: int,
    rules: MasteryRules,
    dry_run: bool = False,
    now: datetime | None = None,
) -> PurgeReport:
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
        "recommendations": _count(
            session, Recommendation, Recommendation.created_at < report.responses_before
        ),
        "access_log": _count(session, AccessLogEntry, AccessLogEntry.created_at < report.access_log_before),
    }
    affected = list(
        session.scalars(
            select(Response.student_id).distinct().where(Response.created_at < report.responses_before)
        )
    )
    report.students_folded = len(affected)
    if dry_run:
        session.rollback()
        return report
    snapshot = read_snapshot(session)
    params = snapshot.params
    # A student still behind the current parameters (a chunked replay under way) is replayed first, so that
    # their stored state and the baseline folded below come from the same parameters.
    lagging = sorted(
        set(session.scalars(select(Student.id).where(behind(snapshot.parameters_revision)))) & set(affected)
    )
    for start in range(0, len(lagging), REPAIR_CHUNK):
        rebuild_mastery(session, rules=rules, student_ids=lagging[start : start + REPAIR_CHUNK], commit=False)
    for student_id, model, steps in replay_models(
        session, params, rules, affected, before=report.responses_before
    ):
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
