"""Every shipped worked solution ends by stating the exercise's accepted answer."""

from __future__ import annotations

import re
from fractions import Fraction
from pathlib import Path

from app.domain.content import Exercise
from app.domain.grading import normalize_text, parse_number
from app.services.tutoring.content_files import read_content

CONTENT = Path(__file__).resolve().parents[2] / "content"

# Left to right, the longest reading first: a mixed number, a fraction, a number with thousands
# commas, a decimal. A minus sign counts only when it touches the digits ("-7", not "12 - 7").
_NUMBER = re.compile(
    r"(?<![\w.,/])[-\u2212]?"
    r"(?:\d+ \d+/\d+|\d+/\d+|\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?|\.\d+)"
    r"(?![\d/]|,\d{3}|\.\d)"
)


def numbers_in(text: str) -> set[Fraction]:
    """The values of the numbers written in ``text``; a mixed number also counts as its two parts."""
    found: set[Fraction] = set()
    for match in _NUMBER.finditer(text):
        token = match.group()
        parts = [token, *token.split(" ")] if " " in token else [token]
        found.update(v for v in map(parse_number, parts) if v is not None)
    return found


def states_answer(exercise: Exercise) -> bool:
    last, answer = exercise.solution[-1], exercise.answers[0]
    if exercise.answer_kind == "numeric":
        return parse_number(answer) in numbers_in(last)
    return normalize_text(answer) in normalize_text(last)


def test_numbers_are_read_as_a_student_writes_them() -> None:
    assert numbers_in("Simplify 6/10 to 3/5: the sum is 1 3/5.") == {
        Fraction(3, 5),
        Fraction(8, 5),
        1,
        Fraction(6, 10),
    }
    assert numbers_in("The number is 2,406.") == {2406}
    assert numbers_in("12 - 7 = 5, and x = -7, or \u22123.") == {12, 7, 5, -7, -3}
    assert numbers_in("0.75 is 75% of 1; the list 1, 2, 30") == {Fraction(3, 4), 75, 1, 2, 30}
    assert numbers_in("x2 and step3 are not numbers") == set()


def test_states_answer_fails_when_the_last_step_gives_another_answer() -> None:
    exercise = Exercise("e", ("s",), "?", "numeric", ("1 3/5",), 0.5, solution=("It is 16/11.",))
    assert not states_answer(exercise)
    assert states_answer(Exercise("e", ("s",), "?", "numeric", ("1 3/5",), 0.5, solution=("It is 16/10.",)))
    choice = Exercise(
        "e",
        ("s",),
        "?",
        "multiple_choice",
        ("They are equal",),
        0.5,
        choices=("Jo", "They are equal"),
        solution=("Jo wins.",),
    )
    assert not states_answer(choice)
    assert states_answer(
        Exercise("e", ("s",), "?", "short_text", ("44 R 4",), 0.5, solution=("312 ÷ 7 =  44 r 4.",))
    )


def test_every_shipped_solution_ends_with_the_accepted_answer() -> None:
    graph = read_content(CONTENT)
    assert len(graph.exercises) >= 500 and all(e.solution for e in graph.exercises.values())
    wrong = [
        f"{e.origin}: {e.id}: the last step {e.solution[-1]!r} does not state {e.answers[0]!r}"
        for e in graph.exercises.values()
        if not states_answer(e)
    ]
    assert wrong == []
