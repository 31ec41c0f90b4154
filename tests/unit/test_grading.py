from fractions import Fraction

import pytest

from app.domain.content import Exercise
from app.domain.grading import InvalidAnswer, grade_answer, parse_number


def exercise(kind: str, answers: tuple[str, ...], choices: tuple[str, ...] = ()) -> Exercise:
    return Exercise("e", ("s",), "?", kind, answers, 0.5, choices)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "text, value",
    [
        ("42", Fraction(42)),
        (" -7 ", Fraction(-7)),
        ("0.75", Fraction(3, 4)),
        (".5", Fraction(1, 2)),
        ("3/4", Fraction(3, 4)),
        ("6 / 8", Fraction(3, 4)),
        ("1 1/2", Fraction(3, 2)),
        ("-2 1/4", Fraction(-9, 4)),
        ("1,200", Fraction(1200)),
        ("35%", Fraction(35)),
        ("\u22123", Fraction(-3)),
    ],
)
def test_parse_number(text: str, value: Fraction) -> None:
    assert parse_number(text) == value


@pytest.mark.parametrize("text", ["", "abc", "1/0", "3/4/5", "1 1/0", "1..2", "--3", "0x10"])
def test_parse_number_rejects(text: str) -> None:
    assert parse_number(text) is None


def test_numeric_grading_compares_values() -> None:
    ex = exercise("numeric", ("3/4",))
    assert grade_answer(ex, "0.75") and grade_answer(ex, "6/8") and grade_answer(ex, " 3/4 ")
    assert not grade_answer(ex, "0.7") and not grade_answer(ex, "three quarters")


def test_short_text_is_case_and_space_insensitive() -> None:
    ex = exercise("short_text", ("3/4", "Three quarters"))
    assert grade_answer(ex, "three   QUARTERS") and grade_answer(ex, "3/4")
    assert not grade_answer(ex, "6/8")


def test_multiple_choice_must_be_a_choice() -> None:
    ex = exercise("multiple_choice", ("B",), ("A", "B", "C"))
    assert grade_answer(ex, "B") and not grade_answer(ex, "A")
    with pytest.raises(InvalidAnswer, match="one of the choices"):
        grade_answer(ex, "D")


def test_empty_answer_is_refused() -> None:
    with pytest.raises(InvalidAnswer, match="empty"):
        grade_answer(exercise("numeric", ("1",)), "   ")
