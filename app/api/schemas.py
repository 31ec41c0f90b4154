"""Marshmallow schemas: they validate requests and generate the OpenAPI document."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from app.domain.content import ANSWER_KINDS
from app.domain.external_ids import EXTERNAL_ID, EXTERNAL_ID_RULE, RAW_EXTERNAL_ID, SPACES, clean_external_id
from app.domain.reasons import Reason, ServedPolicy
from app.domain.reports import ReportConfig
from app.domain.tracking import MasteryStatus
from app.settings import ORGANISATIONAL_GROUPS, Settings

ONE_DAY_MS = 24 * 60 * 60 * 1000
# Every number with a fraction the API sends is rounded to this many decimal places: float noise
# (0.8968750000000001) is not a fact, and six places keep what the tracker is tested to (1e-6 and better).
DECIMALS = 6
# Strings the service can store: no NUL character (PostgreSQL refuses it). Stated in the document, so that
# generated clients and fuzzers know it (the JSON parser refuses it with a 400 that names it).
NO_NUL = r"^[^\u0000]*$"
# Text that is more than spaces (the service strips surrounding whitespace, then needs something left): in
# the regex dialect Python and JSON Schema read alike, the whitespace Python's str.strip() removes.
NOT_BLANK = rf"^[^\u0000]*[^\u0000\t-\r\x1c-\x1f{SPACES}][^\u0000]*$"


def rounded(value: Any) -> Any:
    """``value`` with every float in it (nested in dicts and lists too) rounded to ``DECIMALS`` places."""
    if isinstance(value, float):
        return round(value, DECIMALS)
    if isinstance(value, dict):
        return {key: rounded(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [rounded(item) for item in value]
    return value


def _described(metadata: dict[str, Any] | None, suffix: str, **schema: Any) -> dict[str, Any]:
    metadata = dict(metadata or {})
    description = metadata.get("description", "")
    metadata["description"] = f"{description} {suffix}".strip()
    return {**schema, **metadata}


class Number(fields.Float):
    """A number with a fraction, rounded to ``DECIMALS`` places."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> float | None:
        if value is None:
            return None
        return round(float(value), DECIMALS)


class Probability(Number):
    """A probability or a share: in [0, 1], rounded to ``DECIMALS`` places (said in its description)."""

    def __init__(self, *, metadata: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(
            metadata=_described(
                metadata, f"In [0, 1], rounded to {DECIMALS} decimal places.", minimum=0, maximum=1
            ),
            **kwargs,
        )


class RoundedDict(fields.Dict):
    """A free-form object whose floats, however deep, are rounded to ``DECIMALS`` places."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return rounded(super()._serialize(value, attr, obj, **kwargs))  # type: ignore[no-untyped-call]


class OutputSchema(Schema):
    """A response body. Every field is always sent (``null`` where it allows none), so the document marks
    them all ``required``: typed clients then need no "is it there?" checks. A field that may be absent
    says so with ``metadata={"optional": True}``. New fields may appear in later versions, so the
    document does not forbid properties it does not list (``unknown = EXCLUDE`` leaves that open)."""

    class Meta:
        unknown = EXCLUDE

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for field in self.fields.values():
            field.required = not field.metadata.get("optional", False)


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


_INTEGRAL_TEXT = re.compile(r"-?[0-9]+\.0*")


class WholeNumber(fields.Integer):
    """An integer as JSON Schema counts them: ``5`` and ``5.0`` (not ``5.5``, ``true`` or ``"5"`` in a body;
    a query's text ``"5"`` is read as 5). Generated clients may send an integer as a float."""

    def __init__(self, *, strict: bool = True, **kwargs: Any) -> None:
        super().__init__(strict=strict, **kwargs)

    def _validated(self, value: Any) -> int:
        if isinstance(value, str) and not self.strict and _INTEGRAL_TEXT.fullmatch(value):
            value = int(value.split(".")[0])  # a query's "5.0"
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        return super()._validated(value)


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


REMOVED_IN = "2.0.0"


def deprecated(field: fields.Field[Any], *, use: str) -> fields.Field[Any]:
    """An old name kept for one more version: marked ``deprecated`` in the document, and the answers that
    carry it send a ``Deprecation`` header (docs/API_CHANGELOG.md lists them)."""
    description = field.metadata.get("description", "")
    field.dump_only = True  # it may read the same attribute as its new name (only one may be loaded)
    field.metadata = {
        **field.metadata,
        "deprecated": True,
        "description": f"Deprecated, removed in {REMOVED_IN}: use {use}. {description}".strip(),
    }
    return field


def has_deprecated_fields(schema: Schema) -> bool:
    """Whether ``schema`` or a schema nested in it sends a deprecated field."""
    for field in schema.fields.values():
        if field.metadata.get("deprecated"):
            return True
        inner = field.inner if isinstance(field, fields.List) else field
        if isinstance(inner, fields.Nested) and has_deprecated_fields(inner.schema):
            return True
    return False


MAX_ANSWER_ITEMS = 50  # choices of a multiple_select, items of an ordered exercise


class AnswerText(fields.Field[str | list[str]]):
    """The student's answer as they typed it: a string, or a JSON number (sent as typed, e.g. ``500``,
    ``2.5``). Numbers become their shortest decimal text, so ``500`` and ``"500"`` are the same answer.
    A multiple_select or ordered exercise takes a list of strings (the chosen choices; the items in order)."""

    default_error_messages = {
        "invalid": "Must be a string, a number, or a list of strings.",
        "length": "Must be 1 to 1000 characters long.",
        "items": f"Must be a list of 1 to {MAX_ANSWER_ITEMS} strings, each 1 to 1000 characters long.",
    }

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str | list[str]:
        if isinstance(value, list):
            if not 1 <= len(value) <= MAX_ANSWER_ITEMS or not all(
                isinstance(v, str) and 1 <= len(v) <= 1000 and "\x00" not in v for v in value
            ):
                raise self.make_error("items")
            return value
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise self.make_error("invalid")
        text = value if isinstance(value, str) else repr(value)
        if not 1 <= len(text) <= 1000:
            raise self.make_error("length")
        return text


STRING_ANSWER = {"type": "string", "minLength": 1, "maxLength": 1000, "pattern": NO_NUL}
LIST_ANSWER = {"type": "array", "minItems": 1, "maxItems": MAX_ANSWER_ITEMS, "items": STRING_ANSWER}


# --- students ---------------------------------------------------------------------------------------


# The external id rule as a client can check it before sending (the document's pattern and maxLength);
# the field then strips the surrounding spaces. tests/unit/test_external_ids.py holds the two to one rule.
EXTERNAL_ID_AS_SENT = [
    validate.Length(max=200, error=EXTERNAL_ID_RULE),
    validate.Regexp(RAW_EXTERNAL_ID, error=EXTERNAL_ID_RULE),
]


class StudentCreateSchema(Schema):
    external_id = ExternalId(
        required=True,
        validate=EXTERNAL_ID_AS_SENT,
        metadata={
            "description": "The app's own pseudonymous id for the student (no names); surrounding "
            "spaces are removed."
        },
    )


class StudentSchema(OutputSchema):
    id = fields.String(metadata={"description": "The service's id for the student."})
    external_id = fields.String(metadata={"description": "The app's (or roster's) pseudonymous id."})
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


class DeletionSchema(OutputSchema):
    deleted = fields.Dict(
        keys=fields.String(), values=fields.Integer(), metadata={"description": "Rows deleted per table."}
    )


class ExportQuerySchema(Schema):
    format = fields.String(
        load_default="json",
        validate=validate.OneOf(["json", "csv"]),
        metadata={"description": "json (one document) or csv (a ZIP of CSV files)."},
    )


# --- content ----------------------------------------------------------------------------------------


class ExerciseSchema(OutputSchema):
    """An exercise as shown to a student: never the accepted answers nor the worked solution."""

    id = fields.String()
    skill_ids = fields.List(fields.String())
    prompt = fields.String()
    answer_kind = fields.String(metadata={"enum": list(ANSWER_KINDS)})
    choices = fields.List(
        fields.String(),
        metadata={"description": "The choices of a multiple_choice or multiple_select exercise; else empty."},
    )
    items = fields.List(
        fields.String(),
        metadata={
            "description": "The items of an ordered exercise, shuffled, for the student to put in order "
            "(the answer lists them all, in the student's order); else empty."
        },
    )
    variables = fields.List(
        fields.String(),
        metadata={"description": "The variables an expression answer may use (e.g. x); else empty."},
    )
    units = fields.List(
        fields.String(),
        metadata={
            "description": "Accepted spellings of a numeric answer's unit (an answer may end with one, "
            'e.g. "12 cm"; another unit is wrong); else empty.'
        },
    )
    difficulty = Number(metadata={"description": "In [0, 1] (0 easiest).", "minimum": 0, "maximum": 1})
    hints = fields.List(fields.String(), metadata={"description": "In the order to show them; may be empty."})


class SkillParametersSchema(OutputSchema):
    version = fields.Integer(metadata={"description": "Increases with every change of the parameters."})
    source = fields.String(metadata={"enum": ["content", "default", "fitted"]})
    prior = Probability(metadata={"description": "P(L0): knowing the skill before any practice."})
    learn = Probability(metadata={"description": "P(T): learning it at one practice opportunity."})
    guess = Probability(metadata={"description": "P(G): a right answer without knowing it."})
    slip = Probability(metadata={"description": "P(S): a wrong answer despite knowing it."})
    forget = Probability(metadata={"description": "P(F) per opportunity (0 in standard BKT)."})


class SkillSchema(OutputSchema):
    id = fields.String()
    name = fields.String()
    description = fields.String()
    prerequisites = fields.List(fields.String(), metadata={"description": "Skill ids."})
    exercise_count = fields.Integer()
    parameters = fields.Nested(SkillParametersSchema)


# --- the next exercise ------------------------------------------------------------------------------


REASONS = [reason.value for reason in Reason]
SERVED_POLICIES = [policy.value for policy in ServedPolicy]
STATUSES = [str(status) for status in MasteryStatus]

P_MASTERY = "Standard BKT P(L) of the skill under its parameters (exactly what pyBKT computes)."
P_MASTERY_PACED = (
    "P(L) of the skill given the student's own pace and prior knowledge, as of their last answer on it "
    "(no forgetting)."
)
MASTERY_ESTIMATE = (
    "The mastery estimate: p_mastery_paced times the predicted recall now. It decides `status` and "
    "selection, and it is the number every screen shows."
)


class NextExerciseQuerySchema(Schema):
    seed = WholeNumber(
        strict=False,
        validate=validate.Range(0, 2**63 - 1),
        metadata={"description": "Makes the choice reproducible; default: the student's state."},
    )


class NextExerciseSchema(OutputSchema):
    exercise = fields.Nested(
        ExerciseSchema,
        allow_none=True,
        metadata={
            "description": "null when there is nothing to practise (reason all_mastered, nothing_ready)."
        },
    )
    skill_id = fields.String(allow_none=True, metadata={"description": "The skill the exercise practises."})
    reason = fields.String(metadata={"enum": REASONS})
    explanation = fields.String(metadata={"description": "The reason in plain language, for the student."})
    policy = fields.String(metadata={"enum": SERVED_POLICIES})
    details = RoundedDict(
        metadata={
            "description": "Machine-readable reason: the chosen skill's estimates, the scores that decided, "
            f"alternatives, skills blocked by prerequisites, target and predicted success (numbers rounded "
            f"to {DECIMALS} decimal places)."
        }
    )
    recommendation_id = fields.Integer(
        allow_none=True, metadata={"description": "Send nothing back: the next answer is linked to it."}
    )
    p_mastery = Probability(allow_none=True, metadata={"description": P_MASTERY})
    p_mastery_paced = Probability(allow_none=True, metadata={"description": P_MASTERY_PACED})
    mastery_estimate = Probability(allow_none=True, metadata={"description": MASTERY_ESTIMATE})


class RecommendationSchema(OutputSchema):
    id = fields.Integer()
    created_at = fields.DateTime()
    exercise_id = fields.String(allow_none=True)
    skill_id = fields.String(allow_none=True)
    policy = fields.String(metadata={"enum": SERVED_POLICIES})
    reason = fields.String(metadata={"enum": REASONS})
    explanation = fields.String()
    details = RoundedDict()
    response_id = fields.Integer(allow_none=True, metadata={"description": "The answer that followed."})
    correct = fields.Boolean(allow_none=True, metadata={"description": "Whether that answer was right."})


# --- answers ----------------------------------------------------------------------------------------


class AnswerCreateSchema(Schema):
    """Send exactly one of ``answer`` (graded here) and ``correct`` (graded by the app)."""

    # Stated in the document too, as "not (both, or neither)": see ContractPlugin.
    EXACTLY_ONE_OF = ("answer", "correct")

    exercise_id = fields.String(required=True, validate=validate.Length(1, 100))
    answer = AnswerText(
        metadata={
            "description": 'The student\'s answer, as typed; a string or a JSON number (500 and "500" are '
            "the same answer), or for a multiple_select or ordered exercise a list of strings (the chosen "
            "choices; all the items, in the student's order). The service grades it."
        },
    )
    correct = JsonBoolean(
        metadata={
            "description": "Set instead of answer when the app graded the answer itself (a learning "
            "app's key only: a signed-in session gets 403 and must send answer)."
        },
    )
    response_time_ms = WholeNumber(
        validate=validate.Range(0, ONE_DAY_MS), metadata={"description": "Milliseconds."}
    )
    client_response_id = fields.String(
        validate=validate.Length(1, 100),
        metadata={
            "description": "Your id for this answer: a retry with the same id records nothing and returns "
            "the first result (200); the same id for a different answer is a 409."
        },
    )
    hints_used = WholeNumber(
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


class SkillStepSchema(OutputSchema):
    skill_id = fields.String()
    p_mastery_before = Probability(metadata={"description": "Standard BKT P(L) before the answer."})
    p_correct = Probability(metadata={"description": "Standard BKT P(correct), predicted before it."})
    p_mastery_after = Probability(metadata={"description": "Standard BKT P(L) after the answer."})
    p_mastery_paced_after = Probability(
        allow_none=True,
        metadata={"description": "P(L) given the student's pace and prior knowledge, after the answer."},
    )
    mastery_estimate_before = Probability(
        allow_none=True,
        attribute="estimate_before",
        metadata={"description": "The mastery estimate just before the answer (what the screens showed)."},
    )
    mastery_estimate_after = Probability(
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


class AnswerResultSchema(OutputSchema):
    id = fields.Integer(metadata={"description": "The answer's id."})
    exercise_id = fields.String(allow_none=True, metadata={"description": "null once the exercise is gone."})
    correct = fields.Boolean()
    graded_by = fields.String(metadata={"enum": ["server", "app"]})
    correct_answer = fields.String(
        metadata={
            "description": "An accepted answer (all the right choices, or the items in order, as one text)."
        }
    )
    feedback = fields.String(
        allow_none=True,
        metadata={
            "description": "Why a wrong answer is wrong, when grading can tell (an expression it could not "
            "read, a fraction not in simplest form, a wrong unit); else null."
        },
    )
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
    p_mastery = fields.Dict(
        keys=fields.String(),
        values=Probability(),
        attribute="mastery",
        metadata={"description": "Per skill of the exercise, after this answer: " + P_MASTERY},
    )
    p_mastery_paced = fields.Dict(
        keys=fields.String(),
        values=Probability(allow_none=True),
        attribute="mastery_paced",
        metadata={"description": "Per skill of the exercise, after this answer: " + P_MASTERY_PACED},
    )
    mastery_estimate = fields.Dict(
        keys=fields.String(),
        values=Probability(allow_none=True),
        attribute="estimates",
        metadata={"description": "Per skill of the exercise, after this answer: " + MASTERY_ESTIMATE},
    )
    skills = fields.List(fields.Nested(SkillStepSchema))
    mastery = deprecated(
        fields.Dict(keys=fields.String(), values=Probability()), use="p_mastery (the same values)"
    )
    mastery_paced = deprecated(
        fields.Dict(keys=fields.String(), values=Probability(allow_none=True)),
        use="p_mastery_paced (the same values)",
    )


# --- progress and reports ---------------------------------------------------------------------------

SPEED = (
    "Posterior mean learning-speed factor from the student's answers (1 = the pace the skills' parameters "
    "expect, 2 = twice as fast; the model weighs 1/8 to 8). null until the student has enough answers to "
    f"tell a pace ({ReportConfig().slow_speed_min_answers} by default, REPORTS slow_speed_min_answers): "
    "speed_reason says so."
)
SPEED_REASONS = ["not_enough_answers"]


class PaceMixin(Schema):
    speed = Number(allow_none=True, metadata={"description": SPEED})
    speed_reason = fields.String(
        allow_none=True,
        metadata={
            "enum": [*SPEED_REASONS, None],
            "description": "Why speed is null (not_enough_answers); null when speed is given.",
        },
    )


class SkillProgressSchema(OutputSchema):
    skill_id = fields.String()
    name = fields.String()
    p_mastery = Probability(metadata={"description": P_MASTERY})
    p_mastery_paced = Probability(metadata={"description": P_MASTERY_PACED})
    mastery_estimate = Probability(attribute="mastery", metadata={"description": MASTERY_ESTIMATE})
    status = fields.String(
        metadata={
            "enum": STATUSES,
            "description": "not_started; learning (not yet earned); mastered (earned: the estimate "
            "reached the threshold with enough right answers, and is still at or above the review "
            "level); due_for_review; needs_relearning.",
        }
    )
    p_correct = Probability(metadata={"description": "Predicted P(correct) on the next answer, now."})
    attempts = fields.Integer(metadata={"description": "Answers on the skill."})
    correct_count = fields.Integer(
        metadata={"description": "Credited answers on the skill: right, and without a hint."}
    )
    mastered = fields.Boolean(metadata={"description": "status == mastered."})
    mastered_at = fields.DateTime(allow_none=True, metadata={"description": "When it was first earned."})
    last_practiced_at = fields.DateTime(allow_none=True)
    recall = Probability(
        allow_none=True,
        metadata={
            "description": "Predicted recall of an earned skill now (FSRS memory model); null before it is "
            "earned."
        },
    )
    review_due = fields.Boolean(metadata={"description": "status is due_for_review or needs_relearning."})


class ProgressSchema(PaceMixin, OutputSchema):
    student_id = fields.String()
    mastery_threshold = Probability(
        metadata={"description": "The mastery estimate a skill must reach to be earned."}
    )
    personalized = fields.Boolean()
    prior_knowledge = Number(
        allow_none=True,
        metadata={
            "description": "Posterior mean prior-knowledge scale (1 = the skills' priors, 0 = starting from "
            "scratch); null with speed, for the same reason."
        },
    )
    min_correct = fields.Integer(
        metadata={"description": "Right, unhinted answers a skill needs before it can be declared mastered."}
    )
    answers = fields.Integer(
        metadata={"description": "Answers recorded (an answer to an exercise of two skills counts once)."}
    )
    skills_mastered = fields.Integer()
    skills_total = fields.Integer()
    skills = fields.List(fields.Nested(SkillProgressSchema))


REPORT_ESTIMATE_NULL = (
    "Unlike p_mastery elsewhere, this is the mastery estimate, null below a few answers (enough_data false)."
)


class SkillReportSchema(OutputSchema):
    skill_id = fields.String()
    name = fields.String()
    unit = fields.String(metadata={"description": "The skill's curriculum unit (content); may be empty."})
    prerequisites = fields.List(fields.String())
    depth = fields.Integer(metadata={"description": "Steps from a skill without prerequisites."})
    status = fields.String(
        metadata={
            "enum": ["mastered", "due_for_review", "needs_relearning", "learning", "ready", "locked"],
            "description": "ready / locked: not started, its prerequisites earned or not.",
        }
    )
    enough_data = fields.Boolean(
        metadata={"description": "False below a few answers: accuracy and predictions are null then."}
    )
    mastery_estimate = Probability(
        attribute="estimate",
        metadata={"description": MASTERY_ESTIMATE + " Given however few the answers (see enough_data)."},
    )
    attempts = fields.Integer(metadata={"description": "Answers on the skill."})
    correct_count = fields.Integer(
        attribute="correct",
        metadata={"description": "Credited answers on the skill: right, and without a hint."},
    )
    accuracy = Probability(
        allow_none=True,
        metadata={"description": "correct_count / attempts; null when not enough data."},
    )
    mastered = fields.Boolean(metadata={"description": "status == mastered."})
    mastered_at = fields.DateTime(allow_none=True)
    attempts_at_mastery = fields.Integer(allow_none=True)
    last_practiced_at = fields.DateTime(allow_none=True)
    predicted_attempts_to_mastery = fields.Integer(
        allow_none=True, metadata={"description": "Answers still needed at the student's pace (expected)."}
    )
    prediction = fields.String(
        metadata={"enum": ["mastered", "estimate", "not_enough_data", "beyond_horizon"]}
    )
    recall = Probability(allow_none=True, metadata={"description": "As in progress."})
    review_due = fields.Boolean()
    p_mastery = deprecated(
        Probability(allow_none=True, metadata={"description": REPORT_ESTIMATE_NULL}),
        use="mastery_estimate with enough_data",
    )
    correct = deprecated(fields.Integer(), use="correct_count (the same value)")


class StudentReportSchema(PaceMixin, OutputSchema):
    student_id = fields.String()
    external_id = fields.String()
    generated_at = fields.DateTime()
    skills_mastered = fields.Integer()
    skills_total = fields.Integer()
    ready = fields.List(fields.String(), metadata={"description": "Skills whose prerequisites are mastered."})
    locked = fields.Integer(metadata={"description": "Skills with a prerequisite not yet mastered."})
    reviews_due = fields.List(fields.String())
    last_active_at = fields.DateTime(
        allow_none=True, attribute="last_activity_at", metadata={"description": "The latest answer's time."}
    )
    answers = fields.Integer(
        metadata={"description": "Answers recorded (an answer to an exercise of two skills counts once)."}
    )
    skills = fields.List(fields.Nested(SkillReportSchema))
    last_activity_at = deprecated(fields.DateTime(allow_none=True), use="last_active_at (the same value)")


class ReportWindowSchema(Schema):
    since = UtcDateTime(metadata={"description": "Count activity from here; must not be after until."})
    until = UtcDateTime(metadata={"description": "Report as of (default now)."})

    @validates_schema
    def check_order(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("since") and data.get("until") and data["since"] > data["until"]:
            raise ValidationError("since must not be after until", "since")


# --- classes ----------------------------------------------------------------------------------------


class ClassSchema(OutputSchema):
    id = fields.Integer()
    name = fields.String()
    teacher = fields.String(metadata={"description": "The owning teacher's name."})
    student_count = fields.Integer()
    created_at = fields.DateTime()


class ClassMemberSchema(OutputSchema):
    id = fields.String(metadata={"description": "The service's id for the student."})
    external_id = fields.String()
    answers = fields.Integer(
        attribute="attempts",
        metadata={"description": "Answers recorded (an answer to an exercise of two skills counts once)."},
    )
    skills_mastered = fields.Integer()
    last_active_at = fields.DateTime(allow_none=True)
    attempts = deprecated(fields.Integer(), use="answers (the same value)")


class ClassDetailSchema(ClassSchema):
    students = fields.List(fields.Nested(ClassMemberSchema))


class ClassReportCellSchema(OutputSchema):
    mastery_estimate = Probability(
        allow_none=True,
        attribute="estimate",
        metadata={"description": MASTERY_ESTIMATE + " At the report's end; null: not started."},
    )
    enough_data = fields.Boolean(metadata={"description": "False below a few answers on the skill."})
    attempts = fields.Integer(metadata={"description": "Answers on the skill."})
    correct_count = fields.Integer(
        attribute="correct",
        metadata={"description": "Credited answers on the skill: right, and without a hint."},
    )
    mastered = fields.Boolean()
    status = fields.String(metadata={"enum": STATUSES})
    p_mastery = deprecated(
        Probability(allow_none=True, metadata={"description": REPORT_ESTIMATE_NULL}),
        use="mastery_estimate with enough_data",
    )
    correct = deprecated(fields.Integer(), use="correct_count (the same value)")


class HelpReasonSchema(OutputSchema):
    kind = fields.String(metadata={"enum": ["wheel_spinning", "inactive", "review_overdue", "slow_pace"]})
    skill_id = fields.String(allow_none=True)
    detail = fields.String(metadata={"description": "In words, for the teacher."})


class ClassSkillSchema(OutputSchema):
    skill_id = fields.String()
    name = fields.String()
    share_mastered = Probability(metadata={"description": "Share of the class's students with it mastered."})
    mastered = fields.Integer(metadata={"description": "Students with it mastered."})
    practising = fields.Integer(metadata={"description": "Students with at least one answer on it."})
    median_attempts_to_mastery = Number(
        allow_none=True, metadata={"description": "Over the students who mastered it; null: none did."}
    )
    wheel_spinning = fields.Integer(metadata={"description": "Students wheel-spinning on it."})
    stuck = fields.Boolean()


class ClassStudentSchema(PaceMixin, OutputSchema):
    student_id = fields.String()
    external_id = fields.String()
    cells = fields.List(
        fields.Nested(ClassReportCellSchema), metadata={"description": "Aligned with 'skills'."}
    )
    skills_mastered = fields.Integer()
    answers = fields.Integer(
        metadata={"description": "Answers recorded (an answer to an exercise of two skills counts once)."}
    )
    answers_in_window = fields.Integer(metadata={"description": "Of those, since `since`."})
    last_active_at = fields.DateTime(allow_none=True)
    needs_help = fields.List(fields.Nested(HelpReasonSchema))


class ClassReportSchema(OutputSchema):
    class_id = fields.Integer()
    name = fields.String()
    since = fields.DateTime(allow_none=True)
    until = fields.DateTime()
    skills = fields.List(fields.Nested(ClassSkillSchema))
    students = fields.List(fields.Nested(ClassStudentSchema))
    stuck_skills = fields.List(fields.String())


# --- bias checks and group attributes ---------------------------------------------------------------


class GroupAttributesSchema(Schema):
    @staticmethod
    def document_extras(settings: Settings) -> dict[str, dict[str, Any]]:
        """The attributes this deployment records (GROUP_ATTRIBUTES) and their values, exactly."""
        allowed = settings.group_attributes
        return {
            "values": {
                "properties": {name: {"type": "string", "enum": list(v)} for name, v in allowed.items()},
                "additionalProperties": False,
                "minProperties": 1,
            }
        }

    values = fields.Dict(
        keys=fields.String(),
        values=fields.String(),
        required=True,
        metadata={"description": 'attribute -> value, e.g. {"gender": "female"}.'},
    )
    consent_given_by = fields.String(
        required=True,
        validate=[validate.Length(1, 100), validate.Regexp(NOT_BLANK, error="Say who gave consent.")],
        metadata={"description": "Who gave consent: 'parent', 'student', ..."},
    )


class GroupAttributesResultSchema(OutputSchema):
    recorded = fields.List(fields.String(), metadata={"description": "The attributes now recorded."})


class DeclineResultSchema(OutputSchema):
    removed = fields.Integer(metadata={"description": "Group attributes deleted."})


class BiasCheckRequestSchema(Schema):
    @staticmethod
    def document_extras(settings: Settings) -> dict[str, dict[str, Any]]:
        """The groups a check can compare: the school's structure, then the recorded attributes."""
        return {"attribute": {"enum": [*ORGANISATIONAL_GROUPS, *settings.group_attributes]}}

    attribute = fields.String(
        required=True,
        validate=validate.Length(1, 40),
        metadata={"description": "school, class, or a recorded group attribute (GROUP_ATTRIBUTES)."},
    )
    skills = fields.List(fields.String(validate=validate.Length(1, 100)), validate=validate.Length(max=500))
    since = UtcDateTime(metadata={"description": "Count answers from here; must not be after until."})
    until = UtcDateTime()
    bootstrap = WholeNumber(validate=validate.Range(50, 5000))
    seed = WholeNumber(validate=validate.Range(0, 2**31 - 1))
    diagnostic = JsonBoolean(
        load_default=False,
        metadata={
            "description": "Also fit pyBKT with one learn rate per group (multilearn) on the busiest skills."
        },
    )


class BiasCheckSchema(OutputSchema):
    id = fields.Integer()
    created_at = fields.DateTime()
    actor = fields.String()
    attribute = fields.String()
    report = RoundedDict(
        metadata={
            "description": "Groups, estimates with intervals, tests, flags, settings, "
            "data window, model versions, caveats. Aggregates only."
        }
    )


class BiasCheckListSchema(OutputSchema):
    id = fields.Integer()
    created_at = fields.DateTime()
    attribute = fields.String()


class ApiErrorSchema(OutputSchema):
    """Every error of the API, whatever its status."""

    code = fields.Integer(metadata={"description": "The HTTP status."})
    status = fields.String(metadata={"description": "The HTTP status's phrase."})
    message = fields.String(metadata={"description": "What is wrong, in words."})
    errors = fields.Dict(
        metadata={
            "optional": True,
            "description": "When fields are at fault: where (json, query) -> field -> messages.",
        }
    )
    request_id = fields.String(
        metadata={
            "description": "The request's id, also in the X-Request-Id header: the client's own when it sent "
            "a valid one (1-128 characters of A-Z a-z 0-9 . _ -), else one the service made. Quote it when "
            "reporting a problem: every log line of the request carries it."
        }
    )
