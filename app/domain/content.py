"""The content graph: skills with prerequisites, exercises tagged with skills.

``build_graph`` checks everything that needs the whole graph (references,
duplicates, cycles, skills without exercises) and reports every problem at once,
each naming the file and the item, so an author fixes a file in one pass.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, TypeVar

from app.domain.bkt import BktParams
from app.domain.errors import ContentError

AnswerKind = Literal[
    "numeric", "multiple_choice", "short_text", "expression", "fraction", "multiple_select", "ordered"
]
ANSWER_KINDS: tuple[str, ...] = (
    "numeric",
    "multiple_choice",
    "short_text",
    "expression",
    "fraction",
    "multiple_select",
    "ordered",
)
# Kinds whose answer is a list of strings (the chosen choices; the items in the student's order).
LIST_KINDS: frozenset[str] = frozenset({"multiple_select", "ordered"})
ToleranceKind = Literal["absolute", "relative"]


@dataclass(frozen=True, slots=True)
class Skill:
    id: str
    name: str
    description: str = ""
    prerequisites: tuple[str, ...] = ()
    bkt: BktParams | None = None
    unit: str = ""  # the part of the curriculum it belongs to ("Fractions"); pages group skills by it
    origin: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Exercise:
    id: str
    skill_ids: tuple[str, ...]
    prompt: str
    answer_kind: AnswerKind
    answers: tuple[str, ...]
    difficulty: float
    choices: tuple[str, ...] = ()
    hints: tuple[str, ...] = ()
    # Worked steps, the last one stating the answer: shown only once the student has answered.
    solution: tuple[str, ...] = ()
    # numeric: |answer - accepted| <= tolerance (absolute), or <= tolerance * |accepted| (relative)
    tolerance: float = 0.0
    tolerance_kind: ToleranceKind = "absolute"
    # numeric: accepted spellings of the unit ("cm", "centimetres"); an answer may carry one of them
    units: tuple[str, ...] = ()
    # expression: the variables an answer may use
    variables: tuple[str, ...] = ()
    # fraction: "6/8" is then wrong for 3/4 (the value is right, the form is not)
    simplest_form_required: bool = False
    origin: str = field(default="", compare=False)

    @property
    def items(self) -> tuple[str, ...]:
        """An ordered exercise's items as shown to put in order (else empty): shuffled the same way every
        time (seeded by the id), and never already in the right order."""
        if self.answer_kind != "ordered" or len(self.answers) < 2:
            return ()
        shown = list(self.answers)
        random.Random(self.id).shuffle(shown)  # a str seed is hashed with SHA-512: stable across runs
        if shown == list(self.answers):
            shown = shown[1:] + shown[:1]
        return tuple(shown)

    def grading_options(self) -> dict[str, object]:
        """The grading options that differ from the defaults (as stored beside the exercise)."""
        options: dict[str, object] = {}
        if self.tolerance:
            options["tolerance"] = self.tolerance
        if self.tolerance_kind != "absolute":
            options["tolerance_kind"] = self.tolerance_kind
        if self.units:
            options["units"] = list(self.units)
        if self.variables:
            options["variables"] = list(self.variables)
        if self.simplest_form_required:
            options["simplest_form_required"] = True
        return options


def grading_fields(options: Mapping[str, object] | None) -> dict[str, object]:
    """``Exercise`` keyword arguments from stored ``grading_options`` (unknown keys are ignored)."""
    options = options or {}
    out: dict[str, object] = {}
    if isinstance(options.get("tolerance"), (int, float)):
        out["tolerance"] = float(options["tolerance"])  # type: ignore[arg-type]
    if options.get("tolerance_kind") in ("absolute", "relative"):
        out["tolerance_kind"] = options["tolerance_kind"]
    for name in ("units", "variables"):
        value = options.get(name)
        if isinstance(value, list):
            out[name] = tuple(str(v) for v in value)
    if options.get("simplest_form_required") is True:
        out["simplest_form_required"] = True
    return out


_Item = TypeVar("_Item", Skill, Exercise)


@dataclass(frozen=True)
class ContentGraph:
    """A validated graph. ``skill_order`` lists skills prerequisites-first."""

    skills: Mapping[str, Skill]
    exercises: Mapping[str, Exercise]
    skill_order: tuple[str, ...]
    exercises_by_skill: Mapping[str, tuple[str, ...]]

    def dependents(self, skill_id: str) -> list[str]:
        return [s.id for s in self.skills.values() if skill_id in s.prerequisites]


def _label(origin: str, kind: str, item_id: str) -> str:
    return f"{origin}: {kind} {item_id!r}" if origin else f"{kind} {item_id!r}"


def find_cycle(prerequisites: Mapping[str, Iterable[str]]) -> list[str] | None:
    """A prerequisite cycle as a path ``[a, b, ..., a]``, or None when the graph is a DAG.

    Only edges between known nodes are followed; unknown references are reported
    separately by ``build_graph``.
    """
    white, grey, black = 0, 1, 2
    colour = dict.fromkeys(prerequisites, white)
    for start in prerequisites:
        if colour[start] != white:
            continue
        # Iterative DFS: a deep curriculum must not hit Python's recursion limit.
        path: list[str] = [start]
        iterators = [iter(prerequisites[start])]
        colour[start] = grey
        while iterators:
            nxt = next(iterators[-1], None)
            if nxt is None:
                colour[path.pop()] = black
                iterators.pop()
                continue
            if nxt not in colour:
                continue
            if colour[nxt] == grey:
                return path[path.index(nxt) :] + [nxt]
            if colour[nxt] == white:
                colour[nxt] = grey
                path.append(nxt)
                iterators.append(iter(prerequisites[nxt]))
    return None


def topological_order(prerequisites: Mapping[str, Iterable[str]]) -> list[str]:
    """Skills ordered prerequisites-first; ties keep the input order (stable, deterministic)."""
    remaining = {s: set(p) & prerequisites.keys() for s, p in prerequisites.items()}
    order: list[str] = []
    while remaining:
        ready = [s for s, deps in remaining.items() if not deps]
        if not ready:
            raise ContentError([f"prerequisite cycle: {' -> '.join(find_cycle(prerequisites) or [])}"])
        for s in ready:
            del remaining[s]
        for deps in remaining.values():
            deps.difference_update(ready)
        order.extend(ready)
    return order


def _by_id(items: Iterable[_Item], kind: str, problems: list[str]) -> dict[str, _Item]:
    """Items by id; a repeated id is a problem (the first definition wins)."""
    found: dict[str, _Item] = {}
    for item in items:
        if item.id in found:
            problems.append(
                f"{_label(item.origin, kind, item.id)}: duplicate id "
                f"(first defined in {found[item.id].origin})"
            )
        else:
            found[item.id] = item
    return found


def build_graph(
    skills: Iterable[Skill],
    exercises: Iterable[Exercise],
    *,
    require_exercises: bool = True,
) -> ContentGraph:
    """Check the whole graph and return it; raise ``ContentError`` listing every problem."""
    problems: list[str] = []
    skill_map = _by_id(skills, "skill", problems)
    exercise_map = _by_id(exercises, "exercise", problems)

    for skill in skill_map.values():
        for prerequisite in skill.prerequisites:
            if prerequisite == skill.id:
                problems.append(f"{_label(skill.origin, 'skill', skill.id)}: is its own prerequisite")
            elif prerequisite not in skill_map:
                problems.append(
                    f"{_label(skill.origin, 'skill', skill.id)}: unknown prerequisite {prerequisite!r}"
                )

    by_skill: dict[str, list[str]] = {s: [] for s in skill_map}
    for exercise in exercise_map.values():
        for skill_id in exercise.skill_ids:
            if skill_id in by_skill:
                by_skill[skill_id].append(exercise.id)
            else:
                problems.append(
                    f"{_label(exercise.origin, 'exercise', exercise.id)}: unknown skill {skill_id!r}"
                )

    if require_exercises:
        for skill_id, exercise_ids in by_skill.items():
            if not exercise_ids:
                problems.append(f"{_label(skill_map[skill_id].origin, 'skill', skill_id)}: has no exercises")

    prerequisites = {s.id: [p for p in s.prerequisites if p != s.id] for s in skill_map.values()}
    cycle = find_cycle(prerequisites)
    if cycle:
        origin = skill_map[cycle[0]].origin
        where = f"{origin}: " if origin else ""
        problems.append(f"{where}prerequisite cycle: {' -> '.join(cycle)}")

    if problems:
        raise ContentError(problems)

    order = topological_order(prerequisites)
    return ContentGraph(
        skills=MappingProxyType({s: skill_map[s] for s in order}),
        exercises=MappingProxyType(exercise_map),
        skill_order=tuple(order),
        exercises_by_skill=MappingProxyType({s: tuple(ids) for s, ids in by_skill.items()}),
    )


def focused(graph: ContentGraph, skill_ids: Iterable[str]) -> ContentGraph:
    """The part of ``graph`` that practice keeps to for ``skill_ids`` (a course's link): those skills and
    every prerequisite they build on (so selection can still go back to them), with the exercises all of
    whose skills are inside. Unknown ids are ignored; order and everything else are the graph's."""
    keep: set[str] = set()
    stack = [s for s in skill_ids if s in graph.skills]
    while stack:
        skill_id = stack.pop()
        if skill_id not in keep:
            keep.add(skill_id)
            stack.extend(p for p in graph.skills[skill_id].prerequisites if p in graph.skills)
    exercises = {e: x for e, x in graph.exercises.items() if x.skill_ids and set(x.skill_ids) <= keep}
    return ContentGraph(
        skills=MappingProxyType({s: graph.skills[s] for s in graph.skill_order if s in keep}),
        exercises=MappingProxyType(exercises),
        skill_order=tuple(s for s in graph.skill_order if s in keep),
        exercises_by_skill=MappingProxyType(
            {
                s: tuple(e for e in ids if e in exercises)
                for s, ids in graph.exercises_by_skill.items()
                if s in keep
            }
        ),
    )
