"""Words for people (domain/wording.py): one rounding for every estimate, the keyboard for each answer, the
result page's notes, teachers' reasons, bias-check groups, units."""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import pytest

from app.domain.content import Exercise
from app.domain.wording import (
    HINT_NOTE,
    MISTAKE_NOTE,
    OTHER_ANSWERS_NOTE,
    answer_changes,
    attribute_label,
    by_unit,
    for_teacher,
    group_label,
    input_mode,
    labelled_summary,
    percent,
)
from app.services.tutoring.content_files import read_content
from tests.conftest import CONTENT_DIR


@pytest.mark.parametrize(
    ("p", "shown"),
    [
        (0.0, 0),
        (0.004, 0),
        (0.005, 1),
        (0.125, 13),
        (0.5, 50),
        (0.945, 95),
        (0.994, 99),
        (0.9999, 99),
        (1.0, 100),
    ],
)
def test_percent_rounds_half_up_and_never_claims_certainty(p: float, shown: int) -> None:
    assert percent(p) == shown


def numeric(*answers: str) -> Exercise:
    return Exercise("x", ("s",), "?", "numeric", answers, 0.5, solution=("It is.",))


def test_the_keyboard_fits_the_answer() -> None:
    assert input_mode(numeric("632")) == "decimal"
    assert input_mode(numeric("0.75", "3/4")) == "text"  # a fraction needs "/"
    assert input_mode(numeric("-12")) == "text"  # a decimal keypad often has no minus
    assert input_mode(numeric("2 2/3")) == "text"
    assert input_mode(numeric("2,406")) == "decimal"
    assert input_mode(Exercise("y", ("s",), "?", "short_text", ("seven",), 0.5)) == "text"


def test_every_shipped_numeric_exercise_gets_a_keyboard_that_can_type_its_answers() -> None:
    graph = read_content(CONTENT_DIR)
    numeric_items = [e for e in graph.exercises.values() if e.answer_kind == "numeric"]
    needs_more = [e for e in numeric_items if any(re.search(r"[^0-9.,]", a) for a in e.answers)]
    assert len([e for e in needs_more if any("/" in a for a in e.answers)]) == 36
    assert len([e for e in needs_more if any(a.startswith("-") for a in e.answers)]) == 14
    assert all(input_mode(e) == "text" for e in needs_more)
    assert all(input_mode(e) == "decimal" for e in numeric_items if e not in needs_more)


@dataclass
class Step:
    skill_id: str
    estimate_before: float | None
    estimate_after: float | None
    mastered: bool = False


def test_a_right_answer_that_falls_or_a_wrong_one_that_rises_says_why() -> None:
    names = {"a": "Alpha"}
    [rise] = answer_changes([Step("a", 0.40, 0.62)], names, correct=True, hints_used=0)
    assert (rise.before, rise.after, rise.direction, rise.note) == (40, 62, "up", "")
    [fall] = answer_changes([Step("a", 0.62, 0.40)], names, correct=False, hints_used=0)
    assert (fall.direction, fall.note) == ("down", "")
    [odd_rise] = answer_changes([Step("a", 0.10, 0.14)], names, correct=False, hints_used=0)
    assert odd_rise.direction == "up" and odd_rise.note == MISTAKE_NOTE
    [odd_fall] = answer_changes([Step("a", 0.62, 0.60)], names, correct=True, hints_used=0)
    assert odd_fall.direction == "down" and odd_fall.note == OTHER_ANSWERS_NOTE
    [hinted] = answer_changes([Step("a", 0.30, 0.31)], names, correct=True, hints_used=1)
    assert hinted.note == HINT_NOTE and hinted.name == "Alpha"
    # Rounded to the same percent: no move, no note.
    [same] = answer_changes([Step("a", 0.501, 0.503)], names, correct=False, hints_used=0)
    assert same.direction == "same" and same.note == ""


def test_answers_stored_before_estimates_show_only_the_value_after() -> None:
    [old] = answer_changes(
        [Step("a", None, None, True)], {}, correct=True, hints_used=0, fallback_after={"a": 0.97}
    )
    assert (old.before, old.after, old.direction, old.mastered, old.name) == (None, 97, "same", True, "a")


NAMES = {"pv": "Place value", "add": "Adding", "sub": "Subtracting"}
PREREQS: dict[str, tuple[str, ...]] = {"pv": (), "add": ("pv",), "sub": ("add",)}


def reason(kind: str, details: dict[str, Any], skill: str = "add") -> Any:
    return for_teacher(kind, details, skill, NAMES, PREREQS)


def test_teachers_read_plain_words_with_the_numbers_apart() -> None:
    skill = {"mastery": 0.456, "recall": 1.0, "attempts": 0}
    new = reason("learn", {"skill": skill, "target_success": 0.7, "predicted_success": 0.6213, "speed": 1.24})
    assert new.text == "Started a new skill, Adding: its prerequisites (Place value) are mastered."
    assert ("Mastery estimate of the skill then", "46%") in new.numbers
    assert ("Chance of a right answer, predicted", "62%") in new.numbers
    assert ("Learning pace (1 = as the model expects)", "1.2×") in new.numbers
    assert not any(label.startswith("Predicted recall") for label, _ in new.numbers)  # recall 1: not news
    root = reason("learn", {"skill": skill}, "pv")
    assert root.text == "Started a new skill, Place value (a starting point: no prerequisites)."
    back = reason("learn", {"skill": {**skill, "attempts": 4}})
    assert back.text.startswith("Returned to Adding") and ("Answers on the skill before", "4") in back.numbers
    review = reason(
        "review",
        {"skill": {"mastery": 0.7, "recall": 0.74, "attempts": 9}, "review": {"days_since_practice": 6}},
        "pv",
    )
    assert review.text == (
        "Review of Place value, mastered earlier and last practised 6 day(s) ago: "
        "predicted recall had fallen."
    )
    assert ("Predicted recall then", "74%") in review.numbers
    spinning = reason("remediate_prerequisite", {"remediation": {"for_skill": "sub", "attempts": 12}})
    assert spinning.text == (
        "Went back to Adding, which Subtracting builds on: 12 answers on Subtracting had not led to mastery."
    )
    decayed = reason("remediate_prerequisite", {"remediation": {"for_skill": "sub", "decayed": True}})
    assert decayed.text.endswith("which Subtracting builds on: it had faded.")
    assert reason("fixed_order", {"policy": "fixed_sequence"}).text.startswith("Personalization is off")
    assert reason("continue", {}).text == "Kept going with Adding, the skill practised just before."
    for kind in (
        "learn",
        "continue",
        "review",
        "explore",
        "remediate_prerequisite",
        "fixed_order",
        "all_mastered",
        "nothing_ready",
    ):
        words = reason(kind, {}).text.lower().split()
        assert "you" not in words and "your" not in words and "p(l)" not in words  # about the student


def test_bias_check_groups_in_words() -> None:
    assert attribute_label("disability_support") == "Disability support"
    assert attribute_label("free_school_meals") == "Free school meals"  # an attribute of the settings
    assert group_label("language_learner", "yes") == "Language learners"
    assert group_label("language_learner", "no") == "Not language learners"
    assert group_label("free_school_meals", "yes") == "Free school meals: yes"
    assert group_label("gender", "non-binary") == "Non-binary"
    assert group_label("class", "Maths 7B") == "Maths 7B"
    lines = [
        "no: the reference group (14 students)",
        "yes: not enough data to judge (10 students)",
        "On skill gcf: Review suggested: yes RMSE (ratio 1.4)",
    ]
    assert labelled_summary("language_learner", lines, ["no", "yes"]) == [
        "Not language learners: the reference group (14 students)",
        "Language learners: not enough data to judge (10 students)",
        lines[2],
    ]


def test_units_come_in_teaching_order() -> None:
    items = [
        SimpleNamespace(unit=u, n=i)
        for i, u in enumerate(
            ["Whole", "Whole", "Algebra", "Whole", "Fractions", "Algebra", "Fractions", "", "Fractions"]
        )
    ]
    grouped = by_unit(items)
    assert [u for u, _ in grouped] == ["Whole", "Algebra", "Fractions", "Other skills"]
    assert [i.n for i in grouped[0][1]] == [0, 1, 3]


def test_every_shipped_skill_has_the_unit_of_its_section() -> None:
    graph = read_content(CONTENT_DIR)
    section, expected = None, {}
    for line in (CONTENT_DIR / "skills.toml").read_text(encoding="utf-8").splitlines():
        if match := re.match(r"^# ======== (.+) ========$", line):
            section = match.group(1)
        elif match := re.match(r'^id = "(.+)"$', line):
            expected[match.group(1)] = section
    assert {s.id: s.unit for s in graph.skills.values()} == expected
    assert len(set(expected.values())) == 7
