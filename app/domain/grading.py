"""Grading a student's answer against an exercise's accepted answers.

numeric          exact value comparison: "0.75", "3/4", "6/8" and "1 1/2" are numbers;
                 thousands commas and a trailing "%" are ignored. An unparseable
                 answer is simply wrong (students type anything).
multiple_choice  the answer must be one of the choices (anything else is a client bug).
short_text       case-insensitive, whitespace-collapsed equality with an accepted answer.
"""

from __future__ import annotations

import re
from fractions import Fraction

from app.domain.content import Exercise
from app.domain.errors import DomainError

_MIXED = re.compile(r"^([+-]?)(\d+)\s+(\d+)\s*/\s*(\d+)$")
_FRACTION = re.compile(r"^([+-]?\d+)\s*/\s*([+-]?\d+)$")
_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


class InvalidAnswer(DomainError):
    """The answer cannot be an answer to this exercise (e.g. not one of the choices)."""


def parse_number(text: str) -> Fraction | None:
    """An exact number from a student's text, or None when it is not one."""
    cleaned = text.strip().replace(",", "").replace("\u2212", "-")
    cleaned = cleaned.removesuffix("%").strip()
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


def grade_answer(exercise: Exercise, answer: str) -> bool:
    """Whether ``answer`` is correct for ``exercise``."""
    if not answer.strip():
        raise InvalidAnswer("answer must not be empty")
    if exercise.answer_kind == "numeric":
        value = parse_number(answer)
        return value is not None and any(parse_number(a) == value for a in exercise.answers)
    if exercise.answer_kind == "multiple_choice":
        chosen = normalize_text(answer)
        choices = {normalize_text(c) for c in exercise.choices}
        if chosen not in choices:
            raise InvalidAnswer(f"answer must be one of the choices: {list(exercise.choices)}")
        return chosen in {normalize_text(a) for a in exercise.answers}
    return normalize_text(answer) in {normalize_text(a) for a in exercise.answers}
