"""Read-only views of the content graph for the API."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.domain.content import Exercise
from app.domain.errors import UnknownExercise, UnknownSkill
from app.services.tutoring.content import ContentSnapshot, current_snapshot


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
