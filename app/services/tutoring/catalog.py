"""Read-only views of the content graph: for the API, and the staff's content pages (browse the exercises,
try one as a student would; nothing is recorded)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, ensure_allowed
from app.domain.content import Exercise
from app.domain.errors import UnknownExercise, UnknownSkill
from app.domain.grading import Answer, correct_answer_text, grade, readable_answer
from app.domain.wording import input_mode
from app.services.tutoring.content import ContentSnapshot, current_snapshot

PAGE_SIZE = 50


def _skill_view(snapshot: ContentSnapshot, skill_id: str) -> dict[str, Any]:
    skill = snapshot.graph.skills[skill_id]
    current = snapshot.parameters[skill_id]
    return {
        "id": skill.id,
        "name": skill.name,
        "description": skill.description,
        "prerequisites": list(skill.prerequisites),
        "exercise_count": len(snapshot.graph.exercises_by_skill.get(skill_id, ())),
        "parameters": {"version": current.version, "source": current.source, **current.params.values()},
    }


def list_skills(session: Session) -> list[dict[str, Any]]:
    snapshot = current_snapshot(session)
    return [_skill_view(snapshot, s) for s in snapshot.graph.skill_order]


def get_skill(session: Session, skill_id: str) -> dict[str, Any]:
    snapshot = current_snapshot(session)
    if skill_id not in snapshot.graph.skills:
        raise UnknownSkill(skill_id)
    return _skill_view(snapshot, skill_id)


def get_exercise(session: Session, exercise_id: str) -> Exercise:
    exercise = current_snapshot(session).graph.exercises.get(exercise_id)
    if exercise is None:
        raise UnknownExercise(exercise_id)
    return exercise


@dataclass(frozen=True)
class ContentRow:
    exercise: Exercise
    skill_names: list[str]
    unit: str


@dataclass(frozen=True)
class ContentPage:
    rows: list[ContentRow]
    query: str
    page: int
    pages: int
    total: int  # exercises matching the query


def _row(snapshot: ContentSnapshot, exercise: Exercise) -> ContentRow:
    skills = [snapshot.graph.skills[s] for s in exercise.skill_ids if s in snapshot.graph.skills]
    return ContentRow(exercise, [s.name for s in skills], skills[0].unit if skills else "")


def browse_exercises(session: Session, principal: Principal, query: str = "", page: int = 1) -> ContentPage:
    """The live exercises in curriculum order (a skill's prerequisites first), PAGE_SIZE a page, those whose
    id, prompt, skill or unit contains ``query`` (any case). A page past the last one is the last one."""
    ensure_allowed(principal, Action.PREVIEW_CONTENT)
    snapshot = current_snapshot(session)
    wanted = query.strip().casefold()
    rows = []
    for skill_id in snapshot.graph.skill_order:
        for exercise_id in snapshot.graph.exercises_by_skill.get(skill_id, ()):
            exercise = snapshot.graph.exercises[exercise_id]
            if exercise.skill_ids[0] != skill_id:
                continue  # listed once, under its first skill
            row = _row(snapshot, exercise)
            text = " ".join([exercise.id, exercise.prompt, row.unit, *exercise.skill_ids, *row.skill_names])
            if wanted in text.casefold():
                rows.append(row)
    pages = max(1, math.ceil(len(rows) / PAGE_SIZE))
    page = min(max(1, page), pages)
    return ContentPage(rows[(page - 1) * PAGE_SIZE : page * PAGE_SIZE], query.strip(), page, pages, len(rows))


@dataclass(frozen=True)
class Preview:
    row: ContentRow
    input_mode: str  # the phone keyboard, as on the practice page
    correct_answer: str


@dataclass(frozen=True)
class TriedAnswer:
    answer: str  # as the student would read it back
    correct: bool
    feedback: str | None


def preview_exercise(session: Session, principal: Principal, exercise_id: str) -> Preview:
    """A live exercise as the practice page shows it, with its accepted answer (staff only)."""
    ensure_allowed(principal, Action.PREVIEW_CONTENT)
    snapshot = current_snapshot(session)
    exercise = snapshot.graph.exercises.get(exercise_id)
    if exercise is None:
        raise UnknownExercise(exercise_id)
    return Preview(_row(snapshot, exercise), input_mode(exercise), correct_answer_text(exercise))


def try_answer(session: Session, principal: Principal, exercise_id: str, answer: Answer) -> TriedAnswer:
    """Grade ``answer`` as a student's would be graded, and record nothing: no student, no response, no
    change to any estimate. Raises ``InvalidAnswer`` for an answer the exercise cannot take (as practice)."""
    preview = preview_exercise(session, principal, exercise_id)
    graded = grade(preview.row.exercise, answer)
    return TriedAnswer(readable_answer(preview.row.exercise, answer), graded.correct, graded.reason)
