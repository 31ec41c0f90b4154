"""Group attributes for bias checks: recorded only with consent, stored apart, never read by the tutor.

Tracing and selection never import this module or the ``group_attributes`` table (a test proves the
recommendations are the same with and without attributes). Organisational groups (school, class) need no
consent and are derived when a check runs.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, Role
from app.domain.errors import InvalidInput
from app.models import ConsentEvent, GroupAttribute, Student, utcnow
from app.services.people.access import find_student
from app.settings import DEFAULT_GROUP_ATTRIBUTES, ORGANISATIONAL_GROUPS, current_settings

DEFAULT_ATTRIBUTES = DEFAULT_GROUP_ATTRIBUTES
ORGANISATIONAL = ORGANISATIONAL_GROUPS


class GroupAttributeError(InvalidInput):
    """Attribute values or a roster that cannot be recorded; the message says which."""


def allowed_attributes() -> dict[str, list[str]]:
    """Attribute -> allowed values: GROUP_ATTRIBUTES (checked at start), or the defaults."""
    return {name: list(values) for name, values in current_settings().group_attributes.items()}


def check_values(values: Mapping[str, str]) -> dict[str, str]:
    allowed = allowed_attributes()
    problems = []
    clean = {}
    for attribute, value in values.items():
        if attribute not in allowed:
            problems.append(f"unknown attribute {attribute!r} (known: {', '.join(sorted(allowed))})")
        elif value.strip() not in allowed[attribute]:
            problems.append(f"{attribute} must be one of {allowed[attribute]}, not {value!r}")
        else:
            clean[attribute] = value.strip()
    if problems:
        raise GroupAttributeError("; ".join(problems))
    if not clean:
        raise GroupAttributeError("no attributes given")
    return clean


def set_group_attributes(
    session: Session,
    principal: Principal,
    student_id: str,
    values: Mapping[str, str],
    *,
    consent_given_by: str,
    commit: bool = True,
) -> dict[str, str]:
    """Record consent (by whom, for which attributes) and the values, replacing earlier ones for them."""
    student = find_student(session, principal, student_id, Action.SET_GROUP_ATTRIBUTES, lock=True)
    clean = check_values(values)
    given_by = consent_given_by.strip()
    if not given_by or len(given_by) > 100:
        raise GroupAttributeError("say who gave consent (consent_given_by: e.g. 'parent', 'student')")
    now = utcnow()
    session.add(
        ConsentEvent(
            student_id=student.id,
            kind="group_attributes",
            granted=True,
            scope=sorted(clean),
            actor=principal.actor,
            given_by=given_by,
            created_at=now,
        )
    )
    session.execute(
        delete(GroupAttribute).where(
            GroupAttribute.student_id == student.id, GroupAttribute.attribute.in_(list(clean))
        )
    )
    session.add_all(
        GroupAttribute(student_id=student.id, attribute=a, value=v, set_at=now, set_by=principal.actor)
        for a, v in clean.items()
    )
    if commit:
        session.commit()
    return clean


def decline(session: Session, principal: Principal, student_id: str) -> int:
    """Withdraw consent: every group attribute of the student goes at once. Returns how many."""
    student = find_student(session, principal, student_id, Action.DECLINE_GROUP_ATTRIBUTES, lock=True)
    removed = list(
        session.scalars(select(GroupAttribute.attribute).where(GroupAttribute.student_id == student.id))
    )
    session.execute(delete(GroupAttribute).where(GroupAttribute.student_id == student.id))
    session.add(
        ConsentEvent(
            student_id=student.id,
            kind="group_attributes",
            granted=False,
            scope=sorted(removed) or sorted(allowed_attributes()),
            actor=principal.actor,
            given_by="student" if principal.role is Role.STUDENT else None,
        )
    )
    session.commit()
    return len(removed)


def import_csv(session: Session, principal: Principal, text: str) -> int:
    """Rows of ``external_id,consent_given_by,<attribute>...`` (blank cells: not recorded); all or nothing."""
    reader = csv.DictReader(io.StringIO(text))
    columns = [c.strip() for c in reader.fieldnames or []]
    if "external_id" not in columns or "consent_given_by" not in columns:
        raise GroupAttributeError("the CSV needs external_id and consent_given_by columns")
    reader.fieldnames = columns
    attributes = [c for c in columns if c not in ("external_id", "consent_given_by")]
    problems, rows = [], []
    for row in reader:
        line = reader.line_num
        values = {a: (row.get(a) or "").strip() for a in attributes if (row.get(a) or "").strip()}
        external_id = (row["external_id"] or "").strip()
        student = session.scalar(
            select(Student.id).where(
                Student.school_id == principal.school_id, Student.external_id == external_id
            )
        )
        try:
            if student is None:
                raise GroupAttributeError(f"no student {row['external_id']!r} in this school")
            check_values(values)
            if not (row.get("consent_given_by") or "").strip():
                raise GroupAttributeError("consent_given_by is empty")
        except GroupAttributeError as error:
            problems.append(f"line {line}: {error}")
            continue
        rows.append((student, values, row["consent_given_by"]))
    if problems:
        raise GroupAttributeError("nothing was recorded: " + "; ".join(problems[:20]))
    for student_id, values, given_by in rows:
        set_group_attributes(session, principal, student_id, values, consent_given_by=given_by, commit=False)
    session.commit()
    return len(rows)


def student_groups(session: Session, student_id: str) -> dict[str, str]:
    """The student's own recorded attributes (for their export)."""
    return dict(
        session.execute(
            select(GroupAttribute.attribute, GroupAttribute.value).where(
                GroupAttribute.student_id == student_id
            )
        ).all()
    )
