"""Content in the database: syncing files into it, and a per-process cache of it.

The database is the runtime source of truth (the CLI loads files into it). Each
process keeps one parsed snapshot and reloads it only when ``content_state.revision``
changes, so a request costs one small query instead of re-reading the graph.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.domain import content as domain
from app.domain.bkt import BktParams
from app.models import (
    ContentState,
    Exercise,
    ExerciseSkill,
    Skill,
    SkillParameters,
    SkillPrerequisite,
    utcnow,
)

# Used for skills whose content file gives no BKT defaults (pyBKT-like starting values).
DEFAULT_PARAMS = BktParams(prior=0.1, learn=0.15, guess=0.2, slip=0.1, forget=0.0)


@dataclass
class ContentChanges:
    added_skills: list[str] = field(default_factory=list)
    updated_skills: list[str] = field(default_factory=list)
    retired_skills: list[str] = field(default_factory=list)
    added_exercises: list[str] = field(default_factory=list)
    updated_exercises: list[str] = field(default_factory=list)
    retired_exercises: list[str] = field(default_factory=list)
    new_parameters: list[str] = field(default_factory=list)
    # Of those, skills that had parameters before: every student's state is replayed under the new ones.
    replaced_parameters: list[str] = field(default_factory=list)
    kept_fitted_parameters: list[str] = field(default_factory=list)

    @property
    def changed(self) -> bool:
        return any(
            getattr(self, name) for name in self.__dataclass_fields__ if name != "kept_fitted_parameters"
        )


@dataclass(frozen=True)
class CurrentParameters:
    """The current parameter version of one skill."""

    id: int
    version: int
    source: str
    params: BktParams


@dataclass(frozen=True)
class ContentSnapshot:
    """What selection and tracing need, read once per content revision."""

    # (revision, time of the change): a restored or recreated database that reuses a
    # revision number still never matches a stale snapshot.
    revision: tuple[int, Any]
    graph: domain.ContentGraph
    parameters: dict[str, CurrentParameters]
    # skill id -> parameters, the form the domain functions take
    params: dict[str, BktParams]
    # content_state.parameters_revision: students whose own is behind are still to be replayed under
    # ``params`` (student_models.is_behind). Read before the parameters, so it never claims newer ones.
    parameters_revision: int = 0


def _revision(session: Session) -> tuple[int, Any]:
    return _state(session)[0]


def _state(session: Session) -> tuple[tuple[int, Any], int]:
    """((revision, time of the change), parameters revision) of content_state."""
    row = session.execute(
        select(ContentState.revision, ContentState.updated_at, ContentState.parameters_revision).where(
            ContentState.id == 1
        )
    ).first()
    return ((row[0], row[1]), row[2]) if row else ((0, None), 0)


def bump_revision(session: Session, *, replay: bool = False) -> None:
    """Mark content or parameters as changed: every process reloads its snapshot. ``replay``: the current
    parameters changed (or the stored state must be recomputed), so every student with answers is behind
    until replayed (``mastery.replay_stale``; their next answer replays them first)."""
    # One UPDATE of the counters (not a read then a write): two bumps at once (a fit and a load-content) wait
    # for each other on PostgreSQL and both count, so no replay can mark students with a revision that
    # another change reused.
    bumped = session.execute(
        update(ContentState)
        .where(ContentState.id == 1)
        .values(
            revision=ContentState.revision + 1,
            parameters_revision=ContentState.parameters_revision + int(replay),
            updated_at=utcnow(),
        )
    )
    if not bumped.rowcount:  # type: ignore[attr-defined]
        session.add(ContentState(id=1, revision=1, parameters_revision=int(replay)))
        session.flush()


def sync_content(session: Session, graph: domain.ContentGraph) -> ContentChanges:
    """Make the database match ``graph``; commit once; report what changed.

    Skills and exercises missing from the files are retired, not deleted: responses
    refer to them. Fitted parameters are never replaced by file defaults.
    """
    changes = ContentChanges()
    skills = {s.id: s for s in session.scalars(select(Skill))}
    prerequisites: dict[str, set[str]] = {}
    for link in session.scalars(select(SkillPrerequisite)):
        prerequisites.setdefault(link.skill_id, set()).add(link.prerequisite_id)

    for position, skill in enumerate(graph.skills.values()):
        wanted: dict[str, Any] = {
            "name": skill.name,
            "description": skill.description,
            "unit": skill.unit,
            "source": "content",
            "is_active": True,
            "position": position,
        }
        row = skills.get(skill.id)
        if row is None:
            session.add(Skill(id=skill.id, **wanted))
            changes.added_skills.append(skill.id)
        elif any(getattr(row, k) != v for k, v in wanted.items() if k != "position") or (
            prerequisites.get(skill.id, set()) != set(skill.prerequisites)
        ):
            for k, v in wanted.items():
                setattr(row, k, v)
            changes.updated_skills.append(skill.id)
        else:
            row.position = position
    for skill_id, row in skills.items():
        if row.source == "content" and row.is_active and skill_id not in graph.skills:
            row.is_active = False
            changes.retired_skills.append(skill_id)
    session.flush()

    touched = set(changes.added_skills) | set(changes.updated_skills)
    if touched:
        session.execute(SkillPrerequisite.__table__.delete().where(SkillPrerequisite.skill_id.in_(touched)))
        session.add_all(
            SkillPrerequisite(skill_id=s, prerequisite_id=p)
            for s in touched
            for p in graph.skills[s].prerequisites
        )

    _sync_exercises(session, graph, changes)
    _sync_parameters(session, graph, changes)
    if changes.changed:
        bump_revision(session, replay=bool(changes.replaced_parameters))
    session.commit()
    return changes


def _sync_exercises(session: Session, graph: domain.ContentGraph, changes: ContentChanges) -> None:
    rows = {e.id: e for e in session.scalars(select(Exercise))}
    tags: dict[str, list[str]] = {}
    for link in session.scalars(select(ExerciseSkill).order_by(ExerciseSkill.position)):
        tags.setdefault(link.exercise_id, []).append(link.skill_id)

    retag = []
    for exercise in graph.exercises.values():
        wanted: dict[str, Any] = {
            "prompt": exercise.prompt,
            "answer_kind": exercise.answer_kind,
            "answers": list(exercise.answers),
            "choices": list(exercise.choices),
            "hints": list(exercise.hints),
            "solution": list(exercise.solution),
            "grading": exercise.grading_options(),
            "difficulty": exercise.difficulty,
            "is_active": True,
        }
        row = rows.get(exercise.id)
        if row is None:
            session.add(Exercise(id=exercise.id, **wanted))
            changes.added_exercises.append(exercise.id)
            retag.append(exercise)
        elif any(getattr(row, k) != v for k, v in wanted.items()) or (
            tags.get(exercise.id, []) != list(exercise.skill_ids)
        ):
            for k, v in wanted.items():
                setattr(row, k, v)
            changes.updated_exercises.append(exercise.id)
            retag.append(exercise)
    for exercise_id, row in rows.items():
        if row.is_active and exercise_id not in graph.exercises:
            row.is_active = False
            changes.retired_exercises.append(exercise_id)
    session.flush()
    if retag:
        session.execute(
            ExerciseSkill.__table__.delete().where(ExerciseSkill.exercise_id.in_([e.id for e in retag]))
        )
        session.add_all(
            ExerciseSkill(exercise_id=e.id, skill_id=s, position=i)
            for e in retag
            for i, s in enumerate(e.skill_ids)
        )


def _sync_parameters(session: Session, graph: domain.ContentGraph, changes: ContentChanges) -> None:
    current = {
        p.skill_id: p for p in session.scalars(select(SkillParameters).where(SkillParameters.is_current))
    }
    latest_version: dict[str, int] = {}
    for skill_id, version in session.execute(select(SkillParameters.skill_id, SkillParameters.version)):
        latest_version[skill_id] = max(version, latest_version.get(skill_id, 0))

    for skill in graph.skills.values():
        wanted = skill.bkt or DEFAULT_PARAMS
        source = "content" if skill.bkt else "default"
        row = current.get(skill.id)
        if row is not None and row.source == "fitted":
            changes.kept_fitted_parameters.append(skill.id)
            continue
        if row is not None and row.source == source and params_of(row) == wanted:
            continue
        if row is not None:
            row.is_current = False
            session.flush()  # the partial unique index allows one current row per skill
            changes.replaced_parameters.append(skill.id)
        session.add(
            SkillParameters(
                skill_id=skill.id,
                version=latest_version.get(skill.id, 0) + 1,
                source=source,
                is_current=True,
                prior=wanted.prior,
                learn=wanted.learn,
                guess=wanted.guess,
                slip=wanted.slip,
                forget=wanted.forget,
            )
        )
        changes.new_parameters.append(skill.id)
    session.flush()


def add_imported_skill(session: Session, skill_id: str, name: str, position: int) -> None:
    """A skill first seen in an imported log (no exercises), its parameters the defaults (version 1)."""
    session.add(
        Skill(
            id=skill_id,
            name=name[:200],
            description="Imported from a response log.",
            source="imported",
            is_active=True,
            position=position,
        )
    )
    session.add(
        SkillParameters(
            skill_id=skill_id, version=1, source="default", is_current=True, **DEFAULT_PARAMS.values()
        )
    )


def params_of(row: SkillParameters) -> BktParams:
    """A stored parameter version (current or not) as the domain takes it."""
    return BktParams(
        prior=row.prior,
        learn=row.learn,
        guess=row.guess,
        slip=row.slip,
        forget=row.forget,
        fitted=row.source == "fitted",
    )


def read_snapshot(session: Session) -> ContentSnapshot:
    """Build a snapshot from the database (active skills and exercises, current parameters)."""
    revision, parameters_revision = _state(session)  # first: a fit committed meanwhile makes it older only
    prerequisites: dict[str, list[str]] = {}
    for link in session.scalars(select(SkillPrerequisite)):
        prerequisites.setdefault(link.skill_id, []).append(link.prerequisite_id)
    skills = [
        domain.Skill(
            id=row.id,
            name=row.name,
            description=row.description,
            unit=row.unit,
            prerequisites=tuple(sorted(prerequisites.get(row.id, []))),
        )
        for row in session.scalars(select(Skill).where(Skill.is_active).order_by(Skill.position, Skill.id))
    ]
    tags: dict[str, list[str]] = {}
    for link in session.scalars(select(ExerciseSkill).order_by(ExerciseSkill.position)):
        tags.setdefault(link.exercise_id, []).append(link.skill_id)
    exercises = [
        _exercise_of(row, tags.get(row.id, []))
        for row in session.scalars(select(Exercise).where(Exercise.is_active).order_by(Exercise.id))
    ]
    parameters = {
        row.skill_id: CurrentParameters(row.id, row.version, row.source, params_of(row))
        for row in session.scalars(select(SkillParameters).where(SkillParameters.is_current))
    }
    graph = domain.build_graph(skills, exercises, require_exercises=False)
    return ContentSnapshot(
        revision=revision,
        graph=graph,
        parameters=parameters,
        params={skill: current.params for skill, current in parameters.items()},
        parameters_revision=parameters_revision,
    )


def _exercise_of(row: Exercise, skill_ids: list[str]) -> domain.Exercise:
    return domain.Exercise(
        id=row.id,
        skill_ids=tuple(skill_ids),
        prompt=row.prompt,
        answer_kind=row.answer_kind,  # type: ignore[arg-type]
        answers=tuple(row.answers),
        difficulty=row.difficulty,
        choices=tuple(row.choices or ()),
        hints=tuple(row.hints or ()),
        solution=tuple(row.solution or ()),
        **domain.grading_fields(row.grading),  # type: ignore[arg-type]
    )


def load_exercise(session: Session, exercise_id: str) -> domain.Exercise | None:
    """Any stored exercise, retired ones included (answers to them still count)."""
    row = session.get(Exercise, exercise_id)
    if row is None:
        return None
    skill_ids = session.scalars(
        select(ExerciseSkill.skill_id)
        .where(ExerciseSkill.exercise_id == exercise_id)
        .order_by(ExerciseSkill.position)
    ).all()
    return _exercise_of(row, list(skill_ids))


_lock = threading.Lock()


def current_snapshot(session: Session) -> ContentSnapshot:
    """The cached snapshot for this app, reloaded when the stored revision moved."""
    revision = _revision(session)
    cache = current_app.extensions.setdefault("tutor.content", {})
    snapshot: ContentSnapshot | None = cache.get("snapshot")
    if snapshot is not None and snapshot.revision == revision:
        return snapshot
    with _lock:
        snapshot = read_snapshot(session)
        cache["snapshot"] = snapshot
    return snapshot
