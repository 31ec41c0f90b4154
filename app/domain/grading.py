"""Grading a student's answer against an exercise's accepted answers.

numeric          exact value comparison: "0.75", "3/4", "6/8" and "1 1/2" are numbers;
                 thousands commas and a trailing "%" are ignored. An unparseable
                 answer is simply wrong (students type anything). Optionally within a
                 ``tolerance`` (absolute or relative), and with a unit ("12 cm") from the
                 exercise's ``units``: a unit is optional, a unit not listed is wrong.
fraction         a fraction, mixed number or whole number of equal value ("1 1/2" = "3/2");
                 with ``simplest_form_required`` it must also be in lowest terms.
expression       an algebraic expression in the exercise's ``variables``, equivalent to an
                 accepted one (app.domain.expressions: read safely, with bounded work).
multiple_choice  the answer must be one of the choices (anything else is a client bug).
multiple_select  a list of choices: right when it holds all and only the right ones.
ordered          a list of the exercise's items: right when they are in the accepted order.
short_text       case-insensitive, whitespace-collapsed equality with an accepted answer.

A wrong answer may carry a ``reason`` the student can act on ("could not read this expression", "not in
simplest form"); an answer that cannot be an answer to the exercise at all raises ``InvalidAnswer``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from app.domain.content import LIST_KINDS, Exercise
from app.domain.errors import DomainError

_MIXED = re.compile(r"^([+-]?)(\d+)\s+(\d+)\s*/\s*(\d+)$")
_FRACTION = re.compile(r"^([+-]?\d+)\s*/\s*([+-]?\d+)$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")
_WHOLE = re.compile(r"^[+-]?\d+$")
# A number, then a unit: the unit starts with something that cannot continue a number.
_WITH_UNIT = re.compile(r"^(.*?\d)\s*([^\d\s.,/+\-%][^\d]*)$")
MAX_DIGITS = 60  # digits in a number: nothing a student types needs more, and Fraction work stays small

Answer = str | Sequence[str]


class InvalidAnswer(DomainError):
    """The answer cannot be an answer to this exercise (e.g. not one of the choices)."""


@dataclass(frozen=True)
class Grade:
    correct: bool
    reason: str | None = None  # for a wrong answer: what the student can fix, in their words


def _too_long(text: str) -> bool:
    return sum(c.isdigit() for c in text) > MAX_DIGITS


def parse_number(text: str) -> Fraction | None:
    """An exact number from a student's text, or None when it is not one."""
    cleaned = text.strip().replace(",", "").replace("\u2212", "-")
    cleaned = cleaned.removesuffix("%").strip()
    if _too_long(cleaned):
        return None
    if match := _MIXED.match(cleaned):
        sign, whole, num, den = match.groups()
        if int(den) == 0:
            return None
        value = int(whole) + Fraction(int(num), int(den))
        return -value if sign == "-" else value
    if match := _FRACTION.match(cleaned):
        num, den = (int(g) for g in match.groups())
        return None if den == 0 else Fraction(num, den)
    if _DECIMAL.match(cleaned):
        return Fraction(cleaned)
    return None


def normalize_text(text: str) -> str:
    return " ".join(text.split()).casefold()


def split_unit(text: str) -> tuple[str, str]:
    """(number text, unit as normalized) of "12 cm"; the unit is "" when there is none."""
    cleaned = text.strip()
    if parse_number(cleaned) is not None:
        return cleaned, ""
    match = _WITH_UNIT.match(cleaned)
    if match is None:
        return cleaned, ""
    return match.group(1), normalize_text(match.group(2))


def parse_quantity(text: str, units: Sequence[str]) -> tuple[Fraction | None, str | None]:
    """(value, reason): the number of "12 cm" when the unit is one of ``units`` (or absent)."""
    number, unit = split_unit(text)
    value = parse_number(number)
    if value is None:
        return None, None
    if unit and unit not in {normalize_text(u) for u in units}:
        return None, f"{unit!r} is not the right unit here" if units else None
    return value, None


def parse_fraction(text: str) -> tuple[Fraction, bool] | None:
    """(value, in simplest form) of "3/4", "1 1/2", "-2 3/5" or "2"; None when it is none of these.

    Simplest form: lowest terms, a denominator over 1 ("4/1" is "4"), a positive denominator, and for a
    mixed number a proper fraction part ("1 3/2" is not simplest). "3/2" is in simplest form."""
    cleaned = text.strip().replace("\u2212", "-")
    if _too_long(cleaned):
        return None
    if match := _MIXED.match(cleaned):
        sign, whole, num, den = (match.group(1), *(int(g) for g in match.groups()[1:]))
        if den == 0:
            return None
        value = whole + Fraction(num, den)
        simplest = whole > 0 and 0 < num < den and math.gcd(num, den) == 1
        return (-value if sign == "-" else value), simplest
    if match := _FRACTION.match(cleaned):
        num, den = (int(g) for g in match.groups())
        if den == 0:
            return None
        return Fraction(num, den), den > 1 and math.gcd(num, den) == 1 and num != 0
    if _WHOLE.match(cleaned):
        return Fraction(int(cleaned)), True
    return None


def _within(value: Fraction, accepted: Fraction, exercise: Exercise) -> bool:
    if not exercise.tolerance:
        return value == accepted
    tolerance = Fraction(str(exercise.tolerance))
    if exercise.tolerance_kind == "relative":
        tolerance *= abs(accepted)
    return abs(value - accepted) <= tolerance


def _grade_numeric(exercise: Exercise, answer: str) -> Grade:
    value, reason = parse_quantity(answer, exercise.units)
    if value is None:
        return Grade(False, reason)
    accepted = (parse_quantity(a, exercise.units)[0] for a in exercise.answers)
    return Grade(any(a is not None and _within(value, a, exercise) for a in accepted))


def _grade_fraction(exercise: Exercise, answer: str) -> Grade:
    parsed = parse_fraction(answer)
    if parsed is None:
        return Grade(False, "write it as a fraction (like 3/4) or a mixed number (like 1 1/2)")
    value, simplest = parsed
    right = any((p := parse_fraction(a)) is not None and p[0] == value for a in exercise.answers)
    if right and exercise.simplest_form_required and not simplest:
        return Grade(False, "the value is right, but write it in simplest form")
    return Grade(right)


def _grade_expression(exercise: Exercise, answer: str) -> Grade:
    # SymPy takes over a second to import: a process that never grades an expression never pays for it.
    from app.domain.expressions import ExpressionError, equivalent, parse_expression

    try:
        given = parse_expression(answer, exercise.variables)
    except ExpressionError as error:
        return Grade(False, str(error))
    accepted = [parse_expression(a, exercise.variables) for a in exercise.answers]
    return Grade(any(equivalent(given, a) for a in accepted))


def _as_list(exercise: Exercise, answer: Answer) -> list[str]:
    if isinstance(answer, str):
        if exercise.answer_kind == "ordered":
            raise InvalidAnswer("answer must be a list of the items, in your order")
        return [answer]  # one chosen choice
    if not all(isinstance(a, str) for a in answer):
        raise InvalidAnswer("answer must be a list of strings")
    return list(answer)


def grade(exercise: Exercise, answer: Answer) -> Grade:
    """Whether ``answer`` is correct for ``exercise``, and for some wrong answers why."""
    if exercise.answer_kind in LIST_KINDS:
        items = _as_list(exercise, answer)
        if not items or not all(a.strip() for a in items):
            raise InvalidAnswer("answer must not be empty")
        given = [normalize_text(a) for a in items]
        if exercise.answer_kind == "multiple_select":
            choices = {normalize_text(c) for c in exercise.choices}
            if unknown := [a for a in items if normalize_text(a) not in choices]:
                raise InvalidAnswer(f"answers must be among the choices: {unknown}")
            return Grade(set(given) == {normalize_text(a) for a in exercise.answers})
        expected = [normalize_text(a) for a in exercise.answers]
        if sorted(given) != sorted(expected):
            raise InvalidAnswer(f"answer must list each item once, in your order: {list(exercise.answers)}")
        return Grade(given == expected)
    if not isinstance(answer, str):
        raise InvalidAnswer("answer must be a single answer, not a list")
    if not answer.strip():
        raise InvalidAnswer("answer must not be empty")
    if exercise.answer_kind == "numeric":
        return _grade_numeric(exercise, answer)
    if exercise.answer_kind == "fraction":
        return _grade_fraction(exercise, answer)
    if exercise.answer_kind == "expression":
        return _grade_expression(exercise, answer)
    if exercise.answer_kind == "multiple_choice":
        chosen = normalize_text(answer)
        choices = {normalize_text(c) for c in exercise.choices}
        if chosen not in choices:
            raise InvalidAnswer(f"answer must be one of the choices: {list(exercise.choices)}")
        return Grade(chosen in {normalize_text(a) for a in exercise.answers})
    return Grade(normalize_text(answer) in {normalize_text(a) for a in exercise.answers})


def grade_answer(exercise: Exercise, answer: Answer) -> bool:
    """Whether ``answer`` is correct for ``exercise``."""
    return grade(exercise, answer).correct


def stored_answer(answer: Answer) -> str:
    """The answer as one text (the responses table): a list is stored as its JSON array."""
    return answer if isinstance(answer, str) else json.dumps(list(answer), ensure_ascii=False)


def answer_of(exercise: Exercise | None, stored: str) -> Answer:
    """The answer back from ``stored_answer`` (a list for the list kinds, when it was stored as one)."""
    if exercise is not None and exercise.answer_kind in LIST_KINDS and stored.startswith("["):
        try:
            value = json.loads(stored)
        except ValueError:
            return stored
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return stored


def readable_answer(exercise: Exercise | None, answer: Answer) -> str:
    """An answer as a student reads it: "A, C" for a selection, "1. a; 2. b" for an order."""
    if isinstance(answer, str):
        return answer
    if exercise is not None and exercise.answer_kind == "ordered":
        return "; ".join(f"{n}. {item}" for n, item in enumerate(answer, start=1))
    return ", ".join(answer)


def correct_answer_text(exercise: Exercise) -> str:
    """The right answer as the result shows it (the first accepted one; all of a selection or an order)."""
    if exercise.answer_kind in LIST_KINDS:
        return readable_answer(exercise, list(exercise.answers))
    return exercise.answers[0]
