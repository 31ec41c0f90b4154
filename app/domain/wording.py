"""Words for people: how the pages say a mastery estimate, a status, a change after an answer, and why an
exercise was chosen (students read short encouraging words, teachers plain words with the numbers a click
away). Pure: the templates only place what these functions return.

The one number every page shows is the mastery estimate (``tracking``: paced P(L) x predicted recall), as
a whole percent (``percent``); the one status is ``tracking.MasteryStatus`` (plus the reports' "ready" and
"locked" for skills not started).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from app.domain.content import Exercise


def percent(p: float) -> int:
    """A probability in [0, 1] as the whole percent the pages, and the CSV, show.

    Half rounds up (not to even), and nothing below 1 shows as 100: "100%" would claim a certainty that
    the estimate never has.
    """
    value = math.floor(100.0 * p + 0.5)
    return min(value, 99) if p < 1.0 else 100


# Status words, for a student and for a teacher (the same facts, each in their own words).
STUDENT_STATUS = {
    "mastered": "mastered",
    "learning": "learning",
    "due_for_review": "time for a quick review",
    "needs_relearning": "needs a refresh",
    "not_started": "not started yet",
    "ready": "ready to start",
    "locked": "not started yet",
}
TEACHER_STATUS = {
    "mastered": "mastered",
    "learning": "learning",
    "due_for_review": "due for review",
    "needs_relearning": "needs relearning",
    "not_started": "not started",
    "ready": "ready to start",
    "locked": "not started (earlier skills first)",
}


OTHER_UNIT = "Other skills"
_Unit = TypeVar("_Unit", bound="_HasUnit")


class _HasUnit(Protocol):
    @property
    def unit(self) -> str: ...


def by_unit(items: Sequence[_Unit]) -> list[tuple[str, list[_Unit]]]:
    """Items (skills, report rows, given in prerequisite order) grouped by their curriculum unit, items in
    their given order; no unit: "Other skills".

    Units come in teaching order: by the average position of their items, so a unit whose first skill
    needs nothing earlier (an opening pre-algebra skill) still comes after the units it mostly builds on.
    """
    groups: dict[str, list[_Unit]] = {}
    positions: dict[str, list[int]] = {}
    for position, item in enumerate(items):
        groups.setdefault(item.unit or OTHER_UNIT, []).append(item)
        positions.setdefault(item.unit or OTHER_UNIT, []).append(position)
    return sorted(groups.items(), key=lambda g: sum(positions[g[0]]) / len(positions[g[0]]))


# --- the answer box -------------------------------------------------------------------------------

_DECIMAL_KEYS = re.compile(r"^[0-9.,]+$")


def input_mode(exercise: Exercise) -> str:
    """The on-screen keyboard a phone should offer for the answer box (the HTML ``inputmode``).

    A decimal keypad has digits and a separator but often no "/" or "-": an exercise with an accepted
    answer that needs either (a fraction, a mixed number, a negative number) gets the full keyboard.
    """
    if exercise.answer_kind != "numeric":
        return "text"
    return "decimal" if all(_DECIMAL_KEYS.match(a.strip()) for a in exercise.answers) else "text"


# --- after an answer --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Change:
    """One skill's mastery estimate before and after an answer, as the result page shows it."""

    skill_id: str
    name: str
    before: int | None  # percent; None for answers stored before estimates were kept
    after: int  # percent
    mastered: bool
    note: str = ""  # why the number moved the "wrong" way (or barely), in the student's words

    @property
    def direction(self) -> str:
        if self.before is None or self.before == self.after:
            return "same"
        return "up" if self.after > self.before else "down"


HINT_NOTE = (
    "You used a hint, so this answer counts as practice, not as proof that you know it: the "
    "estimate moves less than for a right answer on your own, and can even dip."
)
MISTAKE_NOTE = (
    "A mistake still counts as practice: working through the solution below helps you learn, "
    "so the estimate went up a little."
)
OTHER_ANSWERS_NOTE = (
    "Your answers on other skills changed how fast the tutor thinks you learn, so this "
    "estimate moved a little."
)


def answer_changes(
    steps: Sequence[Any],
    names: Mapping[str, str],
    *,
    correct: bool,
    hints_used: int,
    fallback_after: Mapping[str, float] | None = None,
) -> list[Change]:
    """The result page's lines: each skill's estimate before -> after, and a note wherever the change could
    puzzle: a right answer without a hint never shows a fall, and a wrong one never a rise, without saying
    why; a right answer after a hint says the hint is why it moved little.

    ``steps`` carry ``skill_id``, ``estimate_before``, ``estimate_after`` (either None for answers stored
    before estimates were kept: ``fallback_after`` then gives the value after) and ``mastered``.
    """
    out = []
    for step in steps:
        after_value = step.estimate_after
        if after_value is None:
            after_value = (fallback_after or {}).get(step.skill_id, 0.0)
        before = percent(step.estimate_before) if step.estimate_before is not None else None
        after = percent(after_value)
        note = ""
        if hints_used and correct:
            note = HINT_NOTE
        elif before is not None and correct and after < before:
            note = OTHER_ANSWERS_NOTE
        elif before is not None and not correct and after > before:
            note = MISTAKE_NOTE
        out.append(
            Change(
                step.skill_id,
                names.get(step.skill_id, step.skill_id),
                before,
                after,
                bool(step.mastered),
                note,
            )
        )
    return out


# --- why an exercise was chosen, for a teacher --------------------------------------------------------


@dataclass(frozen=True)
class TeacherReason:
    text: str  # plain words
    numbers: list[tuple[str, str]] = field(default_factory=list)  # (what, value): shown on request


def _pct(value: Any) -> str | None:
    return f"{percent(float(value))}%" if isinstance(value, int | float) else None


def _list(names: Sequence[str]) -> str:
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def for_teacher(
    reason: str,
    details: Mapping[str, Any] | None,
    skill_id: str | None,
    names: Mapping[str, str],
    prerequisites: Mapping[str, Sequence[str]],
) -> TeacherReason:
    """Why the tutor chose an exercise, said to the teacher (third person, no statistics in the sentence);
    the numbers behind it come separately (``numbers``), for a click."""
    details = details or {}
    skill = details.get("skill") or {}
    name = names.get(skill_id or "", skill_id or "")
    attempts = skill.get("attempts")
    if reason == "learn" and attempts == 0:
        before = [names.get(p, p) for p in prerequisites.get(skill_id or "", ())]
        text = (
            f"Started a new skill, {name}: its prerequisites ({_list(before)}) are mastered."
            if before
            else f"Started a new skill, {name} (a starting point: no prerequisites)."
        )
    elif reason == "learn":
        text = f"Returned to {name}, practised earlier (alternating skills helps them stick)."
    elif reason == "continue":
        text = f"Kept going with {name}, the skill practised just before."
    elif reason == "review":
        review = details.get("review") or {}
        days = review.get("days_since_practice")
        when = "" if days is None else (" today" if days == 0 else f" {days} day(s) ago")
        text = f"Review of {name}, mastered earlier and last practised{when}: predicted recall had fallen."
    elif reason == "explore":
        text = f"Tried {name}, a skill the student is ready for, to see where they stand."
    elif reason == "remediate_prerequisite":
        remediation = details.get("remediation") or {}
        target = names.get(remediation.get("for_skill", ""), remediation.get("for_skill", "a later skill"))
        why = (
            "it had faded"
            if remediation.get("decayed")
            else f"{remediation.get('attempts', 'many')} answers on {target} had not led to mastery"
        )
        text = f"Went back to {name}, which {target} builds on: {why}."
    elif reason == "fixed_order":
        text = "Personalization is off: the next exercise in the fixed curriculum order."
    elif reason == "all_mastered":
        text = "Nothing left to practise: every skill mastered, no review due."
    elif reason == "nothing_ready":
        text = "Nothing ready: every skill not yet mastered needs an earlier one first."
    else:
        text = reason.replace("_", " ").capitalize() + "."
    numbers: list[tuple[str, str]] = []
    for label, value in (
        ("Mastery estimate of the skill then", _pct(skill.get("mastery"))),
        ("Predicted recall then", _pct(skill.get("recall")) if skill.get("recall", 1) < 1 else None),
        ("Chance of a right answer, predicted", _pct(details.get("predicted_success"))),
        ("Chance aimed for", _pct(details.get("target_success"))),
    ):
        if value is not None:
            numbers.append((label, value))
    if isinstance(attempts, int):
        numbers.append(("Answers on the skill before", str(attempts)))
    if isinstance(details.get("difficulty"), int | float):
        numbers.append(("Exercise difficulty (0 easy, 1 hard)", f"{details['difficulty']:.2f}"))
    if isinstance(details.get("speed"), int | float):
        numbers.append(("Learning pace (1 = as the model expects)", f"{details['speed']:.1f}×"))
    return TeacherReason(text, numbers)


# --- bias checks -----------------------------------------------------------------------------------

ATTRIBUTE_LABELS = {
    "school": "School",
    "class": "Class",
    "gender": "Gender",
    "language_learner": "Learning the language of instruction",
    "disability_support": "Disability support",
}
# Groups of the yes/no attributes, in words (other attributes' values read as they are).
YES_NO_GROUPS = {
    "language_learner": ("Language learners", "Not language learners"),
    "disability_support": ("With disability support", "Without disability support"),
}
GROUP_STATUS = {
    "reported": "compared",
    "insufficient data": "shown, too few to flag",
    "suppressed": "hidden: under 10 students",
    "no answers": "no answers",
}


def attribute_label(attribute: str) -> str:
    """A group attribute in words: "disability_support" -> "Disability support"."""
    return ATTRIBUTE_LABELS.get(attribute) or attribute.replace("_", " ").strip().capitalize() or attribute


def group_label(attribute: str, group: str) -> str:
    """A group in words: a yes/no attribute's groups are named ("Language learners", "Not language
    learners"; an attribute of the settings: "Its name: yes"); other values read as they are, capitalised
    ("Female"); classes and schools keep their names."""
    if attribute in ("school", "class"):
        return group
    if group.lower() in ("yes", "no"):
        yes, no = YES_NO_GROUPS.get(
            attribute, (f"{attribute_label(attribute)}: yes", f"{attribute_label(attribute)}: no")
        )
        return yes if group.lower() == "yes" else no
    return group[:1].upper() + group[1:]


def labelled_summary(attribute: str, lines: Sequence[str], groups: Sequence[str]) -> list[str]:
    """The stored plain-language summary with each line's leading group name in words (lines are
    "<group>: ..."; the longest name first, so "no" never shadows "no answer")."""
    out = []
    for line in lines:
        for group in sorted(groups, key=len, reverse=True):
            if line.startswith(group + ": "):
                line = group_label(attribute, group) + line[len(group) :]
                break
        out.append(line)
    return out
