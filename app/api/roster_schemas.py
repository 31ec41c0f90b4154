"""Schemas of the roster operations: the school's students as a list, and who is in a class."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from app.api.schemas import (
    EXTERNAL_ID_AS_SENT,
    NO_NUL,
    ExternalId,
    OutputSchema,
    StudentSchema,
    UtcDateTime,
    WholeNumber,
)
from app.extensions import MAX_ROW_ID
from app.services.people.rosters import MAX_PER_PAGE, STUDENT_SORTS

# Students one enrolment request may name: a class or two of a roster, well under the body size limit.
MAX_ENROL = 500
# The page number's bound: far beyond any roster, and (page - 1) x per_page stays a 64-bit OFFSET.
MAX_PAGE = 2**31 - 1


class StudentListQuerySchema(Schema):
    external_id = ExternalId(
        validate=EXTERNAL_ID_AS_SENT,
        metadata={
            "description": "Exactly this external id, surrounding spaces removed (as POST /students does)."
        },
    )
    prefix = fields.String(
        data_key="q",
        validate=[validate.Length(1, 200), validate.Regexp(NO_NUL)],
        metadata={
            "description": "External ids that start with this, whatever the case (letters A-Z on every "
            "database; PostgreSQL folds other letters too)."
        },
    )
    class_id = WholeNumber(
        strict=False,
        validate=validate.Range(1, MAX_ROW_ID),
        metadata={"description": "Students of this class (404 when the caller cannot see the class)."},
    )
    active_since = UtcDateTime(
        metadata={
            "description": "Students whose latest answer is at or after this time (ISO 8601; UTC without "
            "an offset). Students who never answered are left out."
        }
    )
    active_before = UtcDateTime(
        metadata={
            "description": "Students whose latest answer is before this time (ISO 8601; UTC without an "
            "offset). Students who never answered are left out."
        }
    )
    sort = fields.String(
        load_default="external_id",
        validate=validate.OneOf(STUDENT_SORTS),
        metadata={
            "description": "The order; a leading '-' reverses it. last_active_at: students who never "
            "answered come last either way. Equal values are ordered by id, so pages are stable; "
            "external_id is compared by Unicode code point."
        },
    )
    page = WholeNumber(
        strict=False,
        load_default=1,
        validate=validate.Range(1, MAX_PAGE),
        metadata={"description": "From 1."},
    )
    per_page = WholeNumber(
        strict=False,
        load_default=50,
        validate=validate.Range(1, MAX_PER_PAGE),
        metadata={"description": f"Students per page, 1 to {MAX_PER_PAGE}."},
    )


class StudentListItemSchema(StudentSchema):
    # Described as in the reports (one name, one meaning: tests/api/test_contract.py).
    last_active_at = fields.DateTime(
        allow_none=True,
        metadata={"description": "The latest answer's time. Null: the student never answered."},
    )
    answers = fields.Integer(
        metadata={
            "description": "Answers recorded (an answer to an exercise of two skills counts once). Answers "
            "removed by the retention policy still count."
        }
    )


class StudentPageSchema(OutputSchema):
    items = fields.List(fields.Nested(StudentListItemSchema))
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer(metadata={"description": "Students matching the filters, over all pages."})
    next_page = fields.Integer(
        allow_none=True, metadata={"description": "The page after this one; null on the last page."}
    )


class ClassEnrolRequestSchema(Schema):
    """Send exactly one of ``student_ids`` and ``external_ids``."""

    # Stated in the document too (see app.api.contract.ContractPlugin).
    EXACTLY_ONE_OF = ("student_ids", "external_ids")

    student_ids = fields.List(
        fields.String(validate=[validate.Length(1, 36), validate.Regexp(NO_NUL)]),
        validate=validate.Length(1, MAX_ENROL),
        metadata={"description": "The service's ids of students of the school."},
    )
    external_ids = fields.List(
        ExternalId(validate=EXTERNAL_ID_AS_SENT),
        validate=validate.Length(1, MAX_ENROL),
        metadata={
            "description": "External ids of students of the school (surrounding spaces removed); students "
            "are not created here: create them first with POST /students."
        },
    )

    @validates_schema
    def one_list(self, data: dict[str, Any], **kwargs: Any) -> None:
        if ("student_ids" in data) == ("external_ids" in data):
            raise ValidationError("send exactly one of 'student_ids' and 'external_ids'.")


class ClassEnrolResultSchema(OutputSchema):
    class_id = fields.Integer()
    enrolled = fields.List(
        fields.String(), metadata={"description": "Ids of the students added now, in the order sent."}
    )
    already_enrolled = fields.List(
        fields.String(), metadata={"description": "Ids of the students who were in the class already."}
    )


class ClassRemovalSchema(OutputSchema):
    class_id = fields.Integer()
    student_id = fields.String()
    removed = fields.Boolean(metadata={"description": "Always true: the student is no longer in the class."})
