"""Parsing rows of public response logs into plain records.

Two formats:
  assistments  ``order_id, user_id, skill_name, correct`` (+ ``original``, ``ms_first_response``,
               ``school_id``, ``student_class_id`` used when present). pyBKT's convention.
  datashop     DataShop / Cognitive Tutor step export: ``Anon Student Id``, ``KC(...)``
               (several KCs joined by ``~~``), ``Correct First Attempt``, ``Row``,
               optionally ``Step Duration (sec)``.

A row is either a ``LogRecord``, a ``Skip`` (a legitimate row that carries no
observation, e.g. no KC), or a ``BadRow`` (malformed: the import refuses the file
unless told to skip bad rows).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from app.domain.external_ids import EXTERNAL_ID_RULE, clean_external_id

LogFormat = Literal["assistments", "datashop"]
LOG_FORMATS: tuple[str, ...] = ("assistments", "datashop")
KC_SEPARATOR = "~~"
_BINARY = {"1": True, "0": False, "1.0": True, "0.0": False}
# DataShop counts a hint request as the first attempt as not correct.
_DATASHOP_CORRECT = {**_BINARY, "correct": True, "incorrect": False, "hint": False}


@dataclass(frozen=True, slots=True)
class LogRecord:
    row: int  # 1-based line number of the data row in the file (header is line 1)
    student: str
    skills: tuple[str, ...]
    correct: bool
    order: int  # order of the student's responses (order_id / Row; file order if absent)
    response_time_ms: int | None = None
    groups: Mapping[str, str] = field(default_factory=dict)  # e.g. school_id, student_class_id


@dataclass(frozen=True, slots=True)
class Skip:
    row: int
    reason: str


@dataclass(frozen=True, slots=True)
class BadRow:
    row: int
    reason: str


ParsedRow = LogRecord | Skip | BadRow

REQUIRED_COLUMNS: dict[str, tuple[str, ...]] = {
    "assistments": ("order_id", "user_id", "skill_name", "correct"),
    "datashop": ("Anon Student Id", "Correct First Attempt"),
}


def missing_columns(fmt: LogFormat, columns: Sequence[str]) -> list[str]:
    """Required columns the header lacks (DataShop also needs one ``KC(...)`` column)."""
    missing = [c for c in REQUIRED_COLUMNS[fmt] if c not in columns]
    if fmt == "datashop" and kc_column(columns) is None:
        missing.append("KC(...)")
    return missing


def kc_column(columns: Sequence[str]) -> str | None:
    """``KC(Default)`` when present, else the first ``KC(...)`` column."""
    if "KC(Default)" in columns:
        return "KC(Default)"
    return next((c for c in columns if c.startswith("KC(") and c.endswith(")")), None)


def _int(text: str) -> int | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and value == int(value) else None


def _response_time(text: str | None, scale: float) -> int | None:
    """Milliseconds, or None when absent or not plausible (negative, NaN, over a day)."""
    try:
        value = float(text) * scale if text else math.nan
    except ValueError:
        return None
    return int(value) if math.isfinite(value) and 0 <= value <= 86_400_000 else None


def _student_problem(column: str, raw: str) -> str | None:
    """Why ``raw`` cannot be a student's id: the rule of the API and of rosters (``domain.external_ids``),
    so an import cannot store an id (a tab, a newline, a NUL, 201 characters) that they refuse."""
    if not raw.strip():
        return f"{column} is empty"
    if clean_external_id(raw) is not None:
        return None
    shown = repr(raw[:40]) + (f"... ({len(raw)} characters)" if len(raw) > 40 else "")
    return f"{column} {shown} {EXTERNAL_ID_RULE}, as for every student id"


def _skill_problem(skills: Sequence[str]) -> str | None:
    # PostgreSQL refuses NUL in text: say so here rather than fail the whole import as a database error.
    bad = next((s for s in skills if "\x00" in s), None)
    return None if bad is None else f"the skill name {bad[:40]!r} contains a NUL character"


def parse_assistments_row(row: int, values: Mapping[str, str]) -> ParsedRow:
    raw_student = values.get("user_id") or ""
    student = raw_student.strip()
    skill = (values.get("skill_name") or "").strip()
    raw_correct = (values.get("correct") or "").strip()
    correct = _BINARY.get(raw_correct)
    order = _int((values.get("order_id") or "").strip())
    if (values.get("original") or "1").strip() in ("0", "0.0"):
        return Skip(row, "scaffolding question (original = 0)")
    if raw_correct in ("-1", "-1.0"):
        return Skip(row, "no observation (correct = -1)")
    if problem := _student_problem("user_id", raw_student):
        return BadRow(row, problem)
    if order is None:
        return BadRow(row, f"order_id {values.get('order_id')!r} is not an integer")
    if correct is None:
        return BadRow(row, f"correct {values.get('correct')!r} is not 0 or 1")
    if not skill:
        return Skip(row, "no skill")
    if problem := _skill_problem([skill]):
        return BadRow(row, problem)
    groups = {
        k: values[k].strip()
        for k in ("school_id", "student_class_id", "teacher_id")
        if (values.get(k) or "").strip()
    }
    return LogRecord(
        row, student, (skill,), correct, order, _response_time(values.get("ms_first_response"), 1.0), groups
    )


def parse_datashop_row(row: int, values: Mapping[str, str], kc: str) -> ParsedRow:
    raw_student = values.get("Anon Student Id") or ""
    student = raw_student.strip()
    raw_correct = (values.get("Correct First Attempt") or "").strip().lower()
    correct = _DATASHOP_CORRECT.get(raw_correct)
    raw_order = (values.get("Row") or "").strip()
    order = _int(raw_order) if raw_order else row
    if problem := _student_problem("Anon Student Id", raw_student):
        return BadRow(row, problem)
    if order is None:
        return BadRow(row, f"Row {raw_order!r} is not an integer")
    if correct is None:
        return BadRow(row, f"Correct First Attempt {values.get('Correct First Attempt')!r} is not 0 or 1")
    skills = tuple(dict.fromkeys(s.strip() for s in (values.get(kc) or "").split(KC_SEPARATOR) if s.strip()))
    if not skills:
        return Skip(row, "no KC")
    if problem := _skill_problem(skills):
        return BadRow(row, problem)
    return LogRecord(
        row, student, skills, correct, order, _response_time(values.get("Step Duration (sec)"), 1000.0)
    )
