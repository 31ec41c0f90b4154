"""Database models (SQLAlchemy 2.0 typed). Schema changes go through migrations/."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)
from sqlalchemy import true as sa_true
from sqlalchemy.orm import Mapped, column_property, mapped_column, relationship

from app.extensions import db


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime: use app.models.utcnow()")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets a 64-bit id.
BigId = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    return datetime.now(UTC)


class School(db.Model):  # type: ignore[name-defined]
    """A tenant: every student, class, staff user and learning app belongs to exactly one school."""

    __tablename__ = "schools"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class LearningApp(db.Model):  # type: ignore[name-defined]
    """An API client (a learning app) of one school; it sees that school's students."""

    __tablename__ = "learning_apps"
    # A name is unique within its school only: schools never learn each other's app names.
    __table_args__ = (UniqueConstraint("school_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    keys: Mapped[list[ApiKey]] = relationship(back_populates="app")


class StaffUser(db.Model):  # type: ignore[name-defined]
    """A teacher or a school admin: signs in to the web UI with email and password."""

    __tablename__ = "staff_users"
    __table_args__ = (
        CheckConstraint("role IN ('teacher', 'admin')", name="role"),
        UniqueConstraint("school_id", "sourced_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    # Stored lower-cased: sign-in is case-insensitive on the email.
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(10))
    password_hash: Mapped[str] = mapped_column(String(255))
    # Bumped on password change and sign-out: every session signed in before it ends.
    session_version: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The OneRoster sourcedId of the teacher an import made or matched (None: made any other way).
    sourced_id: Mapped[str | None] = mapped_column(String(255))
    # Set when an admin deactivates them: they can no longer sign in, and their sessions end.
    deactivated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class SchoolClass(db.Model):  # type: ignore[name-defined]
    """A class: owned by one teacher; students join it with its join code."""

    __tablename__ = "classes"
    __table_args__ = (UniqueConstraint("teacher_id", "name"), UniqueConstraint("school_id", "sourced_id"))

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    teacher_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    join_code: Mapped[str] = mapped_column(String(16), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # The OneRoster sourcedId of the class an import made (None: made any other way); stable across renames.
    sourced_id: Mapped[str | None] = mapped_column(String(255))
    # Set when an admin archives it: gone from every class list and scope, its join code signs nobody in;
    # its students and their data stay.
    archived_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class ClassMembership(db.Model):  # type: ignore[name-defined]
    __tablename__ = "class_members"

    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"), primary_key=True)
    student_id: Mapped[str] = mapped_column(
        ForeignKey("students.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    added_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # The OneRoster enrollment's sourcedId when an import made the membership: only those does an import end.
    sourced_id: Mapped[str | None] = mapped_column(String(255))


class ApiKey(db.Model):  # type: ignore[name-defined]
    """An API key. Only a SHA-256 digest is stored; ``prefix`` identifies the key in logs."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    app_id: Mapped[int] = mapped_column(ForeignKey("learning_apps.id", ondelete="CASCADE"))
    prefix: Mapped[str] = mapped_column(String(16), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    app: Mapped[LearningApp] = relationship(back_populates="keys")


class Student(db.Model):  # type: ignore[name-defined]
    """A pseudonymous student of one school: an ``external_id`` chosen by the school or its apps.

    No name or contact data. ``external_id`` is unique within the school, so an app and the
    web UI that use the school's roster ids reach the same student.
    """

    __tablename__ = "students"
    __table_args__ = (
        UniqueConstraint("school_id", "external_id"),
        UniqueConstraint("school_id", "sourced_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=lambda: str(uuid.uuid4()))
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    # The app that created the student (None: enrolled by a teacher, or the app was removed).
    app_id: Mapped[int | None] = mapped_column(ForeignKey("learning_apps.id", ondelete="SET NULL"))
    external_id: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Posterior over app.domain.tracking.HYPOTHESES (speed x prior knowledge; None: the prior).
    speed_weights: Mapped[list[float] | None] = mapped_column(JSON)
    # Total variation the posterior has moved through (the answer path's index with mastery.pace_check_at).
    pace_drift: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    # False: the student opted out of personalization (fixed curriculum order).
    personalized: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_true())
    personalization_changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    personalization_changed_by: Mapped[str | None] = mapped_column(String(100))
    # Kept with every answer (reports read them instead of counting the log).
    answer_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_answer_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The content_state.parameters_revision the mastery rows and pace were computed under: a student with
    # answers whose revision is behind is replayed before their next answer (docs/ARCHITECTURE.md).
    parameters_revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The OneRoster sourcedId of the student an import made or matched (an opaque roster id, never a name or
    # an email; None: made any other way). Their external id is derived from it.
    sourced_id: Mapped[str | None] = mapped_column(String(255))


class StudentCredential(db.Model):  # type: ignore[name-defined]
    """A student's web sign-in: a personal code issued by their teacher (no email needed).

    The code is ``<login_prefix>-<secret>``: the prefix finds the row, only a
    password hash of the whole code is stored.
    """

    __tablename__ = "student_credentials"

    student_id: Mapped[str] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), primary_key=True)
    login_prefix: Mapped[str] = mapped_column(String(8), unique=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    # Bumped when a new code is issued and at sign-out: every session signed in before it ends.
    version: Mapped[int] = mapped_column(Integer, default=0)
    issued_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_login_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Skill(db.Model):  # type: ignore[name-defined]
    __tablename__ = "skills"

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    # "content" (from content/) or "imported" (seen only in an imported log)
    source: Mapped[str] = mapped_column(String(20), default="content")
    # False once the skill disappears from content/: kept because responses refer to it.
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    # Position in prerequisite order, for stable listings.
    position: Mapped[int] = mapped_column(Integer, default=0)
    # The unit of the curriculum it belongs to ("Fractions"); "" when the content gives none.
    unit: Mapped[str] = mapped_column(String(100), default="", server_default="")


class SkillPrerequisite(db.Model):  # type: ignore[name-defined]
    __tablename__ = "skill_prerequisites"

    skill_id: Mapped[str] = mapped_column(ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True)
    prerequisite_id: Mapped[str] = mapped_column(
        ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True
    )


class Exercise(db.Model):  # type: ignore[name-defined]
    __tablename__ = "exercises"
    __table_args__ = (CheckConstraint("difficulty >= 0 AND difficulty <= 1", name="difficulty"),)

    id: Mapped[str] = mapped_column(String(100), primary_key=True)
    prompt: Mapped[str] = mapped_column(Text)
    answer_kind: Mapped[str] = mapped_column(String(20))
    answers: Mapped[list[str]] = mapped_column(JSON)
    choices: Mapped[list[str]] = mapped_column(JSON, default=list)
    hints: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Worked steps; never in the exercise as served before an answer (only with the result).
    solution: Mapped[list[str]] = mapped_column(JSON, default=list, server_default="[]")
    # The grading options that differ from the defaults (tolerance, units, variables, simplest form).
    grading: Mapped[dict[str, object]] = mapped_column(JSON, default=dict, server_default="{}")
    difficulty: Mapped[float] = mapped_column(Float)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)


class ExerciseSkill(db.Model):  # type: ignore[name-defined]
    __tablename__ = "exercise_skills"

    exercise_id: Mapped[str] = mapped_column(ForeignKey("exercises.id", ondelete="CASCADE"), primary_key=True)
    skill_id: Mapped[str] = mapped_column(ForeignKey("skills.id", ondelete="CASCADE"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class SkillParameters(db.Model):  # type: ignore[name-defined]
    """One version of a skill's BKT parameters. Exactly one version per skill is current."""

    __tablename__ = "skill_parameters"
    __table_args__ = (
        UniqueConstraint("skill_id", "version"),
        Index(
            "uq_skill_parameters_current",
            "skill_id",
            unique=True,
            sqlite_where=text("is_current"),
            postgresql_where=text("is_current"),
        ),
        CheckConstraint(
            "prior BETWEEN 0 AND 1 AND learn BETWEEN 0 AND 1 AND forget BETWEEN 0 AND 1 "
            "AND guess >= 0 AND guess < 0.5 AND slip >= 0 AND slip < 0.5",
            name="probabilities",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    skill_id: Mapped[str] = mapped_column(ForeignKey("skills.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    prior: Mapped[float] = mapped_column(Float)
    learn: Mapped[float] = mapped_column(Float)
    guess: Mapped[float] = mapped_column(Float)
    slip: Mapped[float] = mapped_column(Float)
    forget: Mapped[float] = mapped_column(Float, default=0.0)
    # "content" (defaults from content/), "default" (service-wide defaults) or "fitted"
    source: Mapped[str] = mapped_column(String(20))
    is_current: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Set for fitted parameters: the run and the data behind them.
    fit_run_id: Mapped[int | None] = mapped_column(ForeignKey("fit_runs.id"))
    n_students: Mapped[int | None] = mapped_column(Integer)
    n_responses: Mapped[int | None] = mapped_column(Integer)
    log_likelihood: Mapped[float | None] = mapped_column(Float)


class FitRun(db.Model):  # type: ignore[name-defined]
    """One ``fit-params`` run: options, data window, and what happened to each skill."""

    __tablename__ = "fit_runs"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    engine: Mapped[str] = mapped_column(String(100))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    window_start: Mapped[datetime | None] = mapped_column(UtcDateTime)
    window_end: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_response_id: Mapped[int | None] = mapped_column(BigId)
    last_response_id: Mapped[int | None] = mapped_column(BigId)
    n_students: Mapped[int] = mapped_column(Integer)
    n_responses: Mapped[int] = mapped_column(Integer)
    # skill id -> reason, for skills that kept their previous parameters
    skipped: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    rejected: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)


class LogImport(db.Model):  # type: ignore[name-defined]
    """One imported log file, for the audit trail (the rows are in ``responses``)."""

    __tablename__ = "log_imports"

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    file_name: Mapped[str] = mapped_column(String(500))
    sha256: Mapped[str] = mapped_column(String(64))
    format: Mapped[str] = mapped_column(String(20))
    app_id: Mapped[int] = mapped_column(ForeignKey("learning_apps.id", ondelete="CASCADE"))
    rows_read: Mapped[int] = mapped_column(Integer)
    responses_imported: Mapped[int] = mapped_column(Integer)
    duplicates: Mapped[int] = mapped_column(Integer)
    skipped: Mapped[dict[str, int]] = mapped_column(JSON, default=dict)


class ContentState(db.Model):  # type: ignore[name-defined]
    """A single row whose revision changes whenever content or parameters change.

    Each process caches the content graph and compares this revision (one cheap
    query) to know when to reload it.
    """

    __tablename__ = "content_state"

    id: Mapped[int] = mapped_column(primary_key=True)
    revision: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # Bumped (with ``revision``) whenever every student's state must be replayed: new current parameters
    # (fits, changed content defaults) or a full rebuild. Students behind it are replayed in chunks.
    parameters_revision: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Response(db.Model):  # type: ignore[name-defined]
    """One answer, append-only. ``client_response_id`` makes retries idempotent."""

    __tablename__ = "responses"
    __table_args__ = (
        UniqueConstraint("student_id", "client_response_id"),
        Index("ix_responses_student_id_id", "student_id", "id"),
        # "Was this recommendation answered?" on every answer and every next exercise.
        Index("ix_responses_recommendation_id", "recommendation_id"),
        Index("ix_responses_created_at", "created_at"),  # retention purge
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    student_id: Mapped[str] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    # None for responses imported from a log that names only skills.
    exercise_id: Mapped[str | None] = mapped_column(ForeignKey("exercises.id"))
    correct: Mapped[bool] = mapped_column(Boolean)
    answer: Mapped[str | None] = mapped_column(Text)
    # "server" graded ``answer``, "app" sent ``correct``, "import" came from a log file
    graded_by: Mapped[str] = mapped_column(String(10))
    response_time_ms: Mapped[int | None] = mapped_column(Integer)
    client_response_id: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # The recommendation this answer followed (None when the app chose the exercise itself).
    recommendation_id: Mapped[int | None] = mapped_column(
        ForeignKey("recommendations.id", ondelete="SET NULL")
    )
    # Hints seen before answering. A right answer after a hint is not evidence of knowing the skill
    # (the ASSISTments convention the fitted parameters come from): see ``credited``.
    hints_used: Mapped[int] = mapped_column(Integer, default=0, server_default="0")

    skills: Mapped[list[ResponseSkill]] = relationship(
        back_populates="response", cascade="all, delete-orphan", order_by="ResponseSkill.position"
    )


class ResponseSkill(db.Model):  # type: ignore[name-defined]
    """The tracing step a response caused on one skill, with the parameters used."""

    __tablename__ = "response_skills"

    response_id: Mapped[int] = mapped_column(ForeignKey("responses.id", ondelete="CASCADE"), primary_key=True)
    skill_id: Mapped[str] = mapped_column(ForeignKey("skills.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    parameters_id: Mapped[int] = mapped_column(ForeignKey("skill_parameters.id"))
    p_mastery_before: Mapped[float] = mapped_column(Float)
    p_correct: Mapped[float] = mapped_column(Float)
    p_mastery_after: Mapped[float] = mapped_column(Float)
    p_mastery_paced_after: Mapped[float | None] = mapped_column(Float)
    # The mastery estimate (paced P(L) x recall) just before and right after the answer: what the
    # screens show (NULL for answers recorded before it existed).
    estimate_before: Mapped[float | None] = mapped_column(Float)
    estimate_after: Mapped[float | None] = mapped_column(Float)

    response: Mapped[Response] = relationship(back_populates="skills")


class Recommendation(db.Model):  # type: ignore[name-defined]
    """A served next-exercise recommendation and why it was made."""

    __tablename__ = "recommendations"
    __table_args__ = (
        Index("ix_recommendations_student_id_id", "student_id", "id"),
        Index("ix_recommendations_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    student_id: Mapped[str] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    exercise_id: Mapped[str | None] = mapped_column(ForeignKey("exercises.id"))
    skill_id: Mapped[str | None] = mapped_column(ForeignKey("skills.id"))
    policy: Mapped[str] = mapped_column(String(30))
    reason: Mapped[str] = mapped_column(String(40))
    explanation: Mapped[str] = mapped_column(Text)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Hints of the exercise shown to the student so far (the web practice page records them).
    hints_shown: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class Mastery(db.Model):  # type: ignore[name-defined]
    """Current P(L) of a student on a skill (P(L) before their next response)."""

    __tablename__ = "mastery"

    student_id: Mapped[str] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), primary_key=True)
    skill_id: Mapped[str] = mapped_column(ForeignKey("skills.id"), primary_key=True)
    p_mastery: Mapped[float] = mapped_column(Float)
    # Standard BKT P(not L), kept apart from 1 - p_mastery (app/domain/bkt.py, Belief); NULL: 1 - p_mastery.
    p_not_mastered: Mapped[float | None] = mapped_column(Float)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    correct_count: Mapped[int] = mapped_column(Integer, default=0)
    # P(L | hypothesis), one per app.domain.tracking.HYPOTHESES (speed x prior knowledge)
    p_by_speed: Mapped[list[float]] = mapped_column(JSON)
    # First time the skill was earned (the mastery estimate reached the threshold with enough answers).
    mastered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Attempts on the skill when it was first mastered (reports: attempts to mastery).
    attempts_at_mastery: Mapped[int | None] = mapped_column(Integer)
    # Time of the last answer on the skill (drives spaced review).
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    review_successes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    parameters_id: Mapped[int] = mapped_column(ForeignKey("skill_parameters.id"))
    # FSRS memory of the skill once earned (app.domain.memory; all NULL before): stability in days,
    # difficulty 1-10, the last answer that counted as a review, reviews and lapses so far.
    memory_stability: Mapped[float | None] = mapped_column(Float)
    memory_difficulty: Mapped[float | None] = mapped_column(Float)
    memory_reviewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    memory_reviews: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    memory_lapses: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The student's pace_drift at which a new posterior could first earn the skill (app.domain.tracking
    # pace_slack); NULL: not worked out yet (rows a replay or an import wrote): the next answer looks.
    pace_check_at: Mapped[float | None] = mapped_column(Float)


class ConsentEvent(db.Model):  # type: ignore[name-defined]
    """A consent given or withdrawn (personalization; later, group attributes): who, when, for what."""

    __tablename__ = "consent_events"
    __table_args__ = (Index("ix_consent_events_student_id_id", "student_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    student_id: Mapped[str] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))  # "personalization", ...
    granted: Mapped[bool] = mapped_column(Boolean)
    # What the consent covers, when it is about named items (e.g. attributes); else empty.
    scope: Mapped[list[str]] = mapped_column(JSON, default=list)
    actor: Mapped[str] = mapped_column(String(100))  # e.g. "teacher:12", "app:3", "student:<id>", "operator"
    # Who gave (or withdrew) the consent, when someone else records it: "parent", "student", ...
    given_by: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AccessLogEntry(db.Model):  # type: ignore[name-defined]
    """A read of a student's data by someone else (teacher, admin, app): who, what, when.

    Never any answer content.
    """

    __tablename__ = "access_log"
    __table_args__ = (
        Index("ix_access_log_student_id_id", "student_id", "id"),
        Index("ix_access_log_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    student_id: Mapped[str] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(100))
    actor_name: Mapped[str] = mapped_column(String(200))
    what: Mapped[str] = mapped_column(String(40))  # "profile", "progress", "report", "export", ...
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class AdminChange(db.Model):  # type: ignore[name-defined]
    """A change a school admin made from the web (teachers, classes, rosters, codes, API keys): who, when,
    what. Names staff and classes, never a student (a roster change is counted)."""

    __tablename__ = "admin_changes"
    __table_args__ = (Index("ix_admin_changes_school_id_id", "school_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    actor: Mapped[str] = mapped_column(String(100))  # e.g. "admin:3"
    actor_name: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(40))  # "teacher added", "class archived", ...
    subject: Mapped[str] = mapped_column(String(300))  # whom or what, in words
    detail: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class StudentBaseline(db.Model):  # type: ignore[name-defined]
    """The state folded from answers purged under the retention policy: replays of the log start here."""

    __tablename__ = "student_baselines"

    student_id: Mapped[str] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), primary_key=True)
    speed_weights: Mapped[list[float]] = mapped_column(JSON)
    answer_count: Mapped[int] = mapped_column(Integer)
    last_answer_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # skill id -> the SkillState fields (datetimes as ISO 8601 strings)
    skills: Mapped[dict[str, Any]] = mapped_column(JSON)
    purged_before: Mapped[datetime] = mapped_column(UtcDateTime)


class DeletionRecord(db.Model):  # type: ignore[name-defined]
    """That a student was deleted, by whom and when, and how many rows went: nothing that identifies them."""

    __tablename__ = "deletion_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int | None] = mapped_column(ForeignKey("schools.id", ondelete="SET NULL"))
    actor: Mapped[str] = mapped_column(String(100))
    rows_deleted: Mapped[dict[str, int]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class GroupAttribute(db.Model):  # type: ignore[name-defined]
    """A student's group for bias checks (e.g. gender), stored apart from learning data, only with consent.

    Never read by tracing or selection: only ``services/reporting/bias.py`` and exports read this table.
    """

    __tablename__ = "group_attributes"

    student_id: Mapped[str] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), primary_key=True)
    attribute: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(String(60))
    set_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    set_by: Mapped[str] = mapped_column(String(100))


class BiasReport(db.Model):  # type: ignore[name-defined]
    """A stored bias check: aggregates per group only (never an individual's attributes)."""

    __tablename__ = "bias_reports"

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    actor: Mapped[str] = mapped_column(String(100))
    attribute: Mapped[str] = mapped_column(String(40))
    report: Mapped[dict[str, Any]] = mapped_column(JSON)


class SignInThrottle(db.Model):  # type: ignore[name-defined]
    """Failed sign-ins from one client address, shared by every worker (``services/people/throttle.py``).

    ``account_key`` "" is the address's count over every account in the current window; otherwise the
    failures in a row on one account and when the next attempt is allowed (back-off). Both keys are
    HMAC-SHA256 digests keyed with the SECRET_KEY: no address, email or code is stored.
    """

    __tablename__ = "sign_in_throttles"

    address_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    account_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UtcDateTime)
    next_allowed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, index=True)


# The states a job may be in (app.domain.jobs.JobState); the two in which an equal request is the same job.
JOB_STATES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE_JOB = "state IN ('queued', 'running')"


class Job(db.Model):  # type: ignore[name-defined]
    """Long work run by a worker (``services/operations/jobs.py``): the durable record of what was asked, by
    whom, how far it got and what came of it. The queue (Huey) only carries the job's id to a worker."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint(f"state IN {JOB_STATES!r}", name="state"),
        # A client's retry with the same Idempotency-Key is the same job, however long after.
        UniqueConstraint("school_id", "kind", "idempotency_key"),
        # While one is queued or running, the same request (kind and parameters) is that job.
        Index(
            "uq_jobs_active_params",
            "school_id",
            "kind",
            "params_digest",
            unique=True,
            sqlite_where=text(ACTIVE_JOB),
            postgresql_where=text(ACTIVE_JOB),
        ),
        Index("ix_jobs_school_id_id", "school_id", "id"),  # a school's jobs, newest first
        Index("ix_jobs_state_heartbeat_at", "state", "heartbeat_at"),  # stale leases
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(40))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    params_digest: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(20), default="queued")
    progress_done: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int | None] = mapped_column(Integer)
    progress_message: Mapped[str] = mapped_column(String(200), default="")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When the work committed (in the same transaction as the work): a job whose worker stops after that is
    # finished, never run again.
    committed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    idempotency_key: Mapped[str | None] = mapped_column(String(200))
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False)
    # The attempt that holds the job while it runs (a random token) and the worker it runs on: a worker
    # commits the job's work only while the lease is still its own.
    lease: Mapped[str | None] = mapped_column(String(32))
    worker: Mapped[str | None] = mapped_column(String(200))
    task_id: Mapped[str | None] = mapped_column(String(64))  # the queue's message id (to revoke it)


class JobFile(db.Model):  # type: ignore[name-defined]
    """A file a job works on (an uploaded log), kept only until the job ends."""

    __tablename__ = "job_files"

    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


# The observation tracing and fitting use: right, and without a hint.
Response.credited = column_property(Response.correct & (Response.hints_used == 0))


# --- LTI 1.3 (app/services/integration/lti.py; docs/DATA.md "LTI") ------------------------------------


class LtiPlatform(db.Model):  # type: ignore[name-defined]
    """An LMS registered with the tool (issuer + client id), belonging to one school: its launches make the
    school's classes, students and teachers."""

    __tablename__ = "lti_platforms"
    __table_args__ = (UniqueConstraint("issuer", "client_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    school_id: Mapped[int] = mapped_column(ForeignKey("schools.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    issuer: Mapped[str] = mapped_column(String(500))
    client_id: Mapped[str] = mapped_column(String(255))
    auth_login_url: Mapped[str] = mapped_column(String(1000))
    auth_token_url: Mapped[str] = mapped_column(String(1000))
    # The platform's public keys: a key-set URL (fetched at each launch) or a key set pasted in (JWKS JSON).
    key_set_url: Mapped[str | None] = mapped_column(String(1000))
    key_set: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Off by default: launches never store a name or an email; on, a teacher's name is taken from the launch.
    accept_names: Mapped[bool] = mapped_column(Boolean, default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class LtiDeployment(db.Model):  # type: ignore[name-defined]
    __tablename__ = "lti_deployments"
    __table_args__ = (UniqueConstraint("platform_id", "deployment_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    deployment_id: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class LtiToolKey(db.Model):  # type: ignore[name-defined]
    """The tool's own RSA signing keys: the newest unretired one signs; every unretired one is published at
    /.well-known/jwks.json, so a platform that cached the previous key keeps verifying until it is retired."""

    __tablename__ = "lti_tool_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    kid: Mapped[str] = mapped_column(String(64), unique=True)
    private_key_pem: Mapped[str] = mapped_column(Text)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    retired_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LtiLogin(db.Model):  # type: ignore[name-defined]
    """One OIDC login started by a platform: its state (also in the browser's cookie) and nonce; the launch
    that uses it marks it used, in the launch's own transaction, so a nonce is good for one launch only."""

    __tablename__ = "lti_logins"

    state: Mapped[str] = mapped_column(String(100), primary_key=True)
    nonce: Mapped[str] = mapped_column(String(100), unique=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LtiContext(db.Model):  # type: ignore[name-defined]
    """An LMS course (the launch's context) and the class it became; the service endpoints AGS and NRPS
    will call."""

    __tablename__ = "lti_contexts"
    __table_args__ = (UniqueConstraint("platform_id", "context_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    context_id: Mapped[str] = mapped_column(String(255))
    class_id: Mapped[int] = mapped_column(ForeignKey("classes.id", ondelete="CASCADE"), index=True)
    lineitems_url: Mapped[str | None] = mapped_column(String(1000))
    context_memberships_url: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # The AGS scopes the platform granted in the latest launch (the access token asks for these).
    ags_scopes: Mapped[list[str] | None] = mapped_column(JSON)
    # When the class list was last pulled through NRPS (services/integration/lti_roster.py).
    roster_synced_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LtiResourceLink(db.Model):  # type: ignore[name-defined]
    """A placement of the tool in a course; its line item (AGS) when the platform sent one."""

    __tablename__ = "lti_resource_links"
    __table_args__ = (UniqueConstraint("context_id", "resource_link_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    context_id: Mapped[int] = mapped_column(ForeignKey("lti_contexts.id", ondelete="CASCADE"))
    resource_link_id: Mapped[str] = mapped_column(String(255))
    lineitem_url: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    # What the link practises and scores (app.domain.lti_advantage.LinkTarget: "curriculum", "unit:<unit>",
    # "skill:<id>"), from the deep linking choice the platform sends back as a custom parameter; None: the
    # whole curriculum.
    target: Mapped[str | None] = mapped_column(String(300))


class LtiAccount(db.Model):  # type: ignore[name-defined]
    """Who a platform's ``sub`` is here: a student (learners) or a staff user (instructors), never both."""

    __tablename__ = "lti_accounts"
    __table_args__ = (
        UniqueConstraint("platform_id", "sub"),
        CheckConstraint("(student_id IS NULL) <> (staff_user_id IS NULL)", name="one_person"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    sub: Mapped[str] = mapped_column(String(255))
    student_id: Mapped[str | None] = mapped_column(
        ForeignKey("students.id", ondelete="CASCADE"), index=True, unique=True
    )
    staff_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("staff_users.id", ondelete="CASCADE"), index=True, unique=True
    )
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    last_launch_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LtiDeepLink(db.Model):  # type: ignore[name-defined]
    """An instructor's deep linking request (LtiDeepLinkingRequest): where to send the answer, answered once
    (services/integration/lti_deep_linking.py). ``id`` is the random token of the picker's URL."""

    __tablename__ = "lti_deep_links"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("lti_platforms.id", ondelete="CASCADE"))
    context_id: Mapped[int] = mapped_column(ForeignKey("lti_contexts.id", ondelete="CASCADE"))
    staff_user_id: Mapped[int] = mapped_column(ForeignKey("staff_users.id", ondelete="CASCADE"))
    deployment_id: Mapped[str] = mapped_column(String(255))
    return_url: Mapped[str] = mapped_column(String(1000))
    # The platform's opaque ``data``, echoed back in the response as the spec asks.
    data: Mapped[Any] = mapped_column(JSON, nullable=True)
    target: Mapped[str | None] = mapped_column(String(300))  # what the instructor linked (once answered)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow, index=True)
    answered_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class LtiScore(db.Model):  # type: ignore[name-defined]
    """A student's score on one graded link (its AGS line item): the last one the platform accepted, and
    whether a newer state is still to be sent (``changes`` > ``handled``), with the back-off of failed sends
    (services/integration/lti_grades.py)."""

    __tablename__ = "lti_scores"
    __table_args__ = (UniqueConstraint("resource_link_id", "student_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    resource_link_id: Mapped[int] = mapped_column(ForeignKey("lti_resource_links.id", ondelete="CASCADE"))
    student_id: Mapped[str] = mapped_column(ForeignKey("students.id", ondelete="CASCADE"), index=True)
    # Bumped by each of the student's answers; ``handled`` is the value the last finished check saw.
    changes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    handled: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    changed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # The last score the platform accepted (None: nothing sent yet).
    score_given: Mapped[float | None] = mapped_column(Float)
    score_maximum: Mapped[float | None] = mapped_column(Float)
    activity_progress: Mapped[str | None] = mapped_column(String(20))
    grading_progress: Mapped[str | None] = mapped_column(String(20))
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Failed sends in a row while the platform was unreachable, and when to try again (back-off).
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    last_error: Mapped[str | None] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
