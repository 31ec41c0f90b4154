"""Marshmallow schemas: they validate requests and generate the OpenAPI document."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.domain.external_ids import EXTERNAL_ID, EXTERNAL_ID_RULE, clean_external_id
from app.domain.reasons import Reason, ServedPolicy
from app.domain.tracking import MasteryStatus

ONE_DAY_MS = 24 * 60 * 60 * 1000


class UtcDateTime(fields.AwareDateTime):
    """An ISO 8601 date-time (UTC when it has no offset), converted to UTC.

    "0001-01-01T00:00:00+01:00" is valid ISO 8601 but lies before year 1 in UTC: refused here, not an
    overflow in the database layer.
    """

    default_error_messages = {"range": "Must lie between years 1 and 9999 in UTC."}

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(default_timezone=UTC, **kwargs)

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> datetime:
        parsed = super()._deserialize(value, attr, data, **kwargs)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise self.make_error("range") from None


class JsonBoolean(fields.Boolean):
    """``true`` or ``false`` only. marshmallow's own sets would take ``1`` and ``"yes"`` too (and even with
    ``truthy={True}``, ``1 in {True}`` holds in Python)."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid", input=value)
        return value


class ExternalId(fields.String):
    """A student's external id, by the rule enrolment uses (``domain.external_ids``): 1-200 printable
    characters, surrounding spaces removed, and something left. (The raw value is held to the documented
    pattern as well, so nothing the OpenAPI document refuses is accepted.)"""

    default_error_messages = {"invalid_id": EXTERNAL_ID_RULE}

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        raw = super()._deserialize(value, attr, data, **kwargs)
        cleaned = clean_external_id(raw) if EXTERNAL_ID.fullmatch(raw) else None
        if cleaned is None:
            raise self.make_error("invalid_id")
        return cleaned


class StudentCreateSchema(Schema):
    external_id = ExternalId(
        required=True,
        # Documented for clients and fuzzers; the field itself applies the full rule.
        validate=validate.Regexp(r"^[^\x00-\x1f\x7f]{1,200}$", error=EXTERNAL_ID_RULE),
        metadata={
            "description": "The app's own pseudonymous id for the student (no names); surrounding "
            "spaces are removed."
        },
    )


class StudentSchema(Schema):
    id = fields.String(metadata={"description": "The service's id for the student."})
    external_id = fields.String()
    created_at = fields.DateTime()
    personalized = fields.Boolean(
        metadata={"description": "False: the student opted out of personalization (fixed order)."}
    )
    personalization_changed_at = fields.DateTime(allow_none=True)


class StudentUpdateSchema(Schema):
    personalized = JsonBoolean(
        required=True,
        metadata={
            "description": "false switches personalization off: the fixed curriculum order, "
            "and nothing about the student is used to adapt."
        },
    )


class ExerciseSchema(Schema):
    """An exercise as shown to a student: never the accepted answers."""

    id = fields.String()
    skill_ids = fields.List(fields.String())
    prompt = fields.String()
    answer_kind = fields.String(metadata={"enum": ["numeric", "multiple_choice", "short_text"]})
    choices = fields.List(fields.String(), metadata={"description": "For multiple_choice only."})
    difficulty = fields.Float(metadata={"description": "In [0, 1]."})
    hints = fields.List(fields.String())


class NextExerciseQuerySchema(Schema):
    seed = fields.Integer(
        strict=False,
        validate=validate.Range(0, 2**63 - 1),
        metadata={"description": "Makes the choice reproducible; default: the student's state."},
    )


REASONS = [reason.value for reason in Reason]
SERVED_POLICIES = [policy.value for policy in ServedPolicy]
STATUSES = [str(status) for status in MasteryStatus]


class NextExerciseSchema(Schema):
    exercise = fields.Nested(ExerciseSchema, allow_none=True)
    skill_id = fields.String(allow_none=True)
    reason = fields.String(metadata={"enum": REASONS})
    explanation = fields.String(metadata={"description": "The reason in plain language."})
    policy = fields.String(metadata={"enum": SERVED_POLICIES})
    details = fields.Dict(
        metadata={
            "description": "Machine-readable reason: the chosen skill's estimates, the scores that decided, "
            "alternatives, skills blocked by prerequisites, target and predicted success."
        }
    )
    recommendation_id = fields.Integer(allow_none=True)
    p_mastery = fields.Float(
        allow_none=True,
        metadata={"description": "Standard BKT P(L) of the chosen skill (what pyBKT computes)."},
    )
    p_mastery_paced = fields.Float(
        allow_none=True,
        metadata={
            "description": "P(L) of the chosen skill given the student's pace and prior knowledge, as of the "
            "last answer (no forgetting)."
        },
    )
    mastery_estimate = fields.Float(
        allow_none=True,
        metadata={
            "description": "The mastery estimate of the chosen skill now (p_mastery_paced x recall): "
            "what decides mastery and selection, and what every screen shows."
        },
    )


class ResponseCreateSchema(Schema):
    exercise_id = fields.String(required=True, validate=validate.Length(1, 100))
    answer = fields.String(
        validate=validate.Length(1, 1000),
        metadata={"description": "The student's answer; the service grades it."},
    )
    correct = JsonBoolean(
        metadata={
            "description": "Set instead of answer when the app graded the answer itself (a learning "
            "app's key only: a signed-in session gets 403 and must send answer)."
        },
    )
    response_time_ms = fields.Integer(strict=True, validate=validate.Range(0, ONE_DAY_MS))
    client_response_id = fields.String(
        validate=validate.Length(1, 100),
        metadata={"description": "A retry with the same id records nothing and returns the first result."},
    )
    hints_used = fields.Integer(
        strict=True,
        load_default=0,
        validate=validate.Range(0, 100),
        metadata={
            "description": "Hints the student saw first: a right answer after a hint is stored as "
            "right but is not counted as evidence of knowing the skill."
        },
    )

    @validates_schema
    def answer_or_correct(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("answer" in data) == ("correct" in data):
            raise ValidationError("send exactly one of 'answer' (graded here) or 'correct'.")


class SkillStepSchema(Schema):
    skill_id = fields.String()
    p_mastery_before = fields.Float(metadata={"description": "Standard BKT P(L) before the answer."})
    p_correct = fields.Float(metadata={"description": "Standard BKT P(correct) predicted before it."})
    p_mastery_after = fields.Float(metadata={"description": "Standard BKT P(L) after the answer."})
    p_mastery_paced_after = fields.Float(
        allow_none=True,
        metadata={"description": "P(L) given the student's pace and prior knowledge, after the answer."},
    )
    mastery_estimate_before = fields.Float(
        allow_none=True,
        attribute="estimate_before",
        metadata={"description": "The mastery estimate just before the answer (what the screens showed)."},
    )
    mastery_estimate_after = fields.Float(
        allow_none=True,
        attribute="estimate_after",
        metadata={"description": "The mastery estimate right after the answer, on the same scale."},
    )
    mastered = fields.Boolean(
        metadata={
            "description": "Its status is `mastered` after the answer: earned, and its estimate at or "
            "above the review level."
        }
    )


class ResponseSchema(Schema):
    id = fields.Integer()
    exercise_id = fields.String()
    correct = fields.Boolean()
    graded_by = fields.String(metadata={"enum": ["server", "app"]})
    correct_answer = fields.String()
    solution = fields.List(
        fields.String(),
        metadata={
            "description": "The worked solution, a few short steps ending with the answer (only ever "
            "sent after an answer)."
        },
    )
    client_response_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    recommendation_id = fields.Integer(
        allow_none=True,
        metadata={"description": "The recommendation this answer followed, if it was the one served last."},
    )
    hints_used = fields.Integer()
    credited = fields.Boolean(
        metadata={"description": "Counted as evidence of knowing: right, without a hint."}
    )
    mastery = fields.Dict(
        keys=fields.String(),
        values=fields.Float(),
        metadata={"description": "Standard BKT P(L) of each skill of the exercise after this answer."},
    )
    mastery_paced = fields.Dict(
        keys=fields.String(),
        values=fields.Float(allow_none=True),
        metadata={
            "description": "P(L) of each skill given the student's pace and prior knowledge, after "
            "this answer."
        },
    )
    mastery_estimate = fields.Dict(
        keys=fields.String(),
        values=fields.Float(allow_none=True),
        attribute="estimates",
        metadata={
            "description": "The mastery estimate of each skill after this answer: what decides and "
            "what the screens show."
        },
    )
    skills = fields.List(fields.Nested(SkillStepSchema))


class SkillProgressSchema(Schema):
    skill_id = fields.String()
    name = fields.String()
    p_mastery = fields.Float(
        metadata={"description": "Standard BKT P(L) under the skill's parameters (what pyBKT computes)."}
    )
    p_mastery_paced = fields.Float(
        metadata={"description": "P(L) given the student's pace and prior knowledge, as of the last answer."}
    )
    mastery_estimate = fields.Float(
        attribute="mastery",
        metadata={
            "description": "The mastery estimate now: p_mastery_paced x recall. It decides `status` "
            "and selection, and every screen shows it."
        },
    )
    status = fields.String(
        metadata={
            "enum": STATUSES,
            "description": "not_started; learning (not yet earned); mastered (earned: the estimate "
            "reached the threshold with enough right answers, and is still at or above the review "
            "level); due_for_review; needs_relearning.",
        }
    )
    p_correct = fields.Float(metadata={"description": "Predicted P(correct) on the next answer, now."})
    attempts = fields.Integer()
    correct_count = fields.Integer(metadata={"description": "Credited answers: right and unhinted."})
    mastered = fields.Boolean(metadata={"description": "status == mastered."})
    mastered_at = fields.DateTime(allow_none=True)
    last_practiced_at = fields.DateTime(allow_none=True)
    recall = fields.Float(
        allow_none=True,
        metadata={
            "description": "Predicted recall of an earned skill now (FSRS memory model); null before it is "
            "earned."
        },
    )
    review_due = fields.Boolean(metadata={"description": "status is due_for_review or needs_relearning."})


class ProgressSchema(Schema):
    student_id = fields.String()
    mastery_threshold = fields.Float()
    personalized = fields.Boolean()
    speed = fields.Float(
        metadata={
            "description": "Posterior mean learning-speed factor from the student's answers (1 = typical)."
        }
    )
    prior_knowledge = fields.Float(
        metadata={
            "description": "Posterior mean prior-knowledge scale (1 = the skills' priors, 0 = starting from "
            "scratch)."
        }
    )
    min_correct = fields.Integer(
        metadata={"description": "Right, unhinted answers a skill needs before it can be declared mastered."}
    )
    skills_mastered = fields.Integer()
    skills_total = fields.Integer()
    skills = fields.List(fields.Nested(SkillProgressSchema))


class RecommendationSchema(Schema):
    id = fields.Integer()
    created_at = fields.DateTime()
    exercise_id = fields.String(allow_none=True)
    skill_id = fields.String(allow_none=True)
    policy = fields.String(metadata={"enum": SERVED_POLICIES})
    reason = fields.String(metadata={"enum": REASONS})
    explanation = fields.String()
    details = fields.Dict()
    response_id = fields.Integer(allow_none=True, metadata={"description": "The answer that followed."})
    correct = fields.Boolean(allow_none=True)


class ParametersSchema(Schema):
    version = fields.Integer()
    source = fields.String(metadata={"enum": ["content", "default", "fitted"]})
    prior = fields.Float()
    learn = fields.Float()
    guess = fields.Float()
    slip = fields.Float()
    forget = fields.Float()


class SkillSchema(Schema):
    id = fields.String()
    name = fields.String()
    description = fields.String()
    prerequisites = fields.List(fields.String())
    exercise_count = fields.Integer()
    parameters = fields.Nested(ParametersSchema)


class ClassSchema(Schema):
    id = fields.Integer()
    name = fields.String()
    teacher = fields.String(metadata={"description": "The owning teacher's name."})
    student_count = fields.Integer()
    created_at = fields.DateTime()


class ClassMemberSchema(Schema):
    id = fields.String(metadata={"description": "The service's id for the student."})
    external_id = fields.String()
    attempts = fields.Integer(metadata={"description": "Answers recorded, all skills."})
    skills_mastered = fields.Integer()
    last_active_at = fields.DateTime(allow_none=True)


class ClassDetailSchema(ClassSchema):
    students = fields.List(fields.Nested(ClassMemberSchema))


class SkillReportSchema(Schema):
    skill_id = fields.String()
    name = fields.String()
    prerequisites = fields.List(fields.String())
    depth = fields.Integer(metadata={"description": "Steps from a skill without prerequisites."})
    status = fields.String(
        metadata={
            "enum": ["mastered", "due_for_review", "needs_relearning", "learning", "ready", "locked"],
            "description": "ready / locked: not started, its prerequisites earned or not.",
        }
    )
    enough_data = fields.Boolean(metadata={"description": "False below a few answers: no estimates then."})
    p_mastery = fields.Float(
        allow_none=True,
        metadata={
            "description": "The mastery estimate now; null: not enough data (fewer than a few answers)."
        },
    )
    mastery_estimate = fields.Float(
        attribute="estimate",
        metadata={
            "description": "The mastery estimate now, however few the answers (as the student's page shows)."
        },
    )
    unit = fields.String(metadata={"description": "The skill's curriculum unit (content); may be empty."})
    attempts = fields.Integer()
    correct = fields.Integer()
    accuracy = fields.Float(allow_none=True)
    mastered = fields.Boolean()
    mastered_at = fields.DateTime(allow_none=True)
    attempts_at_mastery = fields.Integer(allow_none=True)
    last_practiced_at = fields.DateTime(allow_none=True)
    predicted_attempts_to_mastery = fields.Integer(
        allow_none=True, metadata={"description": "Answers still needed at the student's pace (expected)."}
    )
    prediction = fields.String(
        metadata={"enum": ["mastered", "estimate", "not_enough_data", "beyond_horizon"]}
    )
    recall = fields.Float(allow_none=True)
    review_due = fields.Boolean()


class StudentReportSchema(Schema):
    student_id = fields.String()
    external_id = fields.String()
    generated_at = fields.DateTime()
    skills_mastered = fields.Integer()
    skills_total = fields.Integer()
    ready = fields.List(fields.String(), metadata={"description": "Skills whose prerequisites are mastered."})
    locked = fields.Integer()
    reviews_due = fields.List(fields.String())
    last_activity_at = fields.DateTime(allow_none=True)
    speed = fields.Float(
        allow_none=True, metadata={"description": "Pace factor (1 = as fitted); null early on."}
    )
    answers = fields.Integer()
    skills = fields.List(fields.Nested(SkillReportSchema))


class ReportWindowSchema(Schema):
    since = UtcDateTime(metadata={"description": "Count activity from here."})
    until = UtcDateTime(metadata={"description": "Report as of (default now)."})

    @validates_schema
    def check_order(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise ValidationError("since must not be after until", "since")


class CellSchema(Schema):
    p_mastery = fields.Float(
        allow_none=True,
        metadata={"description": "The mastery estimate at the report's end; null below a few answers."},
    )
    mastery_estimate = fields.Float(
        allow_none=True,
        attribute="estimate",
        metadata={"description": "The mastery estimate however few the answers (null: not started)."},
    )
    attempts = fields.Integer()
    correct = fields.Integer(metadata={"description": "Credited answers: right and unhinted."})
    mastered = fields.Boolean()
    status = fields.String(metadata={"enum": STATUSES})


class HelpReasonSchema(Schema):
    kind = fields.String(metadata={"enum": ["wheel_spinning", "inactive", "review_overdue", "slow_pace"]})
    skill_id = fields.String(allow_none=True)
    detail = fields.String()


class ClassSkillSchema(Schema):
    skill_id = fields.String()
    name = fields.String()
    share_mastered = fields.Float()
    mastered = fields.Integer()
    practising = fields.Integer()
    median_attempts_to_mastery = fields.Float(allow_none=True)
    wheel_spinning = fields.Integer()
    stuck = fields.Boolean()


class ClassStudentSchema(Schema):
    student_id = fields.String()
    external_id = fields.String()
    cells = fields.List(fields.Nested(CellSchema), metadata={"description": "Aligned with 'skills'."})
    skills_mastered = fields.Integer()
    answers = fields.Integer()
    answers_in_window = fields.Integer()
    last_active_at = fields.DateTime(allow_none=True)
    speed = fields.Float()
    needs_help = fields.List(fields.Nested(HelpReasonSchema))


class ClassReportSchema(Schema):
    class_id = fields.Integer()
    name = fields.String()
    since = fields.DateTime(allow_none=True)
    until = fields.DateTime()
    skills = fields.List(fields.Nested(ClassSkillSchema))
    students = fields.List(fields.Nested(ClassStudentSchema))
    stuck_skills = fields.List(fields.String())


class ExportQuerySchema(Schema):
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "csv"]),
        metadata={"description": "json (one document) or csv (a ZIP of CSV files)."},
    )


class DeletionSchema(Schema):
    deleted = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "Rows deleted per table."}
    )


class GroupAttributesSchema(Schema):
    values = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": 'attribute -> value, e.g. {"gender": "female"}.'},
    )
    consent_given_by = fields.String(
        required=True,
        validate=validate.Length(1, 100),
        metadata={"description": "Who gave consent: 'parent', 'student', ..."},
    )


class GroupAttributesResultSchema(Schema):
    recorded = fields.List(fields.String())


class DeclineResultSchema(Schema):
    removed = fields.Integer()


class BiasCheckRequestSchema(Schema):
    attribute = fields.String(required=True, validate=validate.Length(1, 40))
    skills = fields.List(fields.String(validate=validate.Length(1, 100)), validate=validate.Length(max=500))
    since = UtcDateTime()
    until = UtcDateTime()
    bootstrap = fields.Integer(strict=True, validate=validate.Range(50, 5000))
    seed = fields.Integer(strict=True, validate=validate.Range(0, 2**31 - 1))
    diagnostic = JsonBoolean(
        load_default=False,
        metadata={
            "description": "Also fit pyBKT with one learn rate per group (multilearn) on the busiest skills."
        },
    )


class BiasCheckSchema(Schema):
    id = fields.Integer()
    created_at = fields.DateTime()
    actor = fields.String()
    attribute = fields.String()
    report = fields.Dict(
        metadata={
            "description": "Groups, estimates with intervals, tests, flags, settings, "
            "data window, model versions, caveats. Aggregates only."
        }
    )


class BiasCheckListSchema(Schema):
    id = fields.Integer()
    created_at = fields.DateTime()
    attribute = fields.String()
