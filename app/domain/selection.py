"""Choosing the next exercise (first version: weakest ready skill).

Rule: among skills whose prerequisites are all mastered and which are not
mastered themselves, practise the one with the lowest P(L); within it, pick an
exercise the student has not answered recently. Ties are broken by the
prerequisite order, then by a seeded random draw, so the same state and seed
always give the same exercise.

The policy is a pure function of (graph, mastery, recent history, seed): a later
policy (pace, spacing, difficulty targeting) replaces it behind the same
interface.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from app.domain.bkt import DEFAULT_MASTERY_THRESHOLD, BktParams
from app.domain.content import ContentGraph

# How many of the latest answered exercises count as "recent" and are avoided.
RECENT_WINDOW = 20


@dataclass(frozen=True, slots=True)
class Recommendation:
    """The chosen exercise (None when there is nothing left to practise) and why."""

    exercise_id: str | None
    skill_id: str | None
    reason: str
    explanation: str
    p_mastery: float | None = None


def mastery_of(skill_id: str, mastery: Mapping[str, float], params: Mapping[str, BktParams]) -> float:
    """P(L) for a skill: the tracked value, or the prior when never practised."""
    found = mastery.get(skill_id)
    return params[skill_id].prior if found is None else found


def choose_next_exercise(
    graph: ContentGraph,
    mastery: Mapping[str, float],
    params: Mapping[str, BktParams],
    recent_exercise_ids: Sequence[str] = (),
    *,
    threshold: float = DEFAULT_MASTERY_THRESHOLD,
    seed: int | str = 0,
) -> Recommendation:
    """Pick the next exercise.

    ``mastery`` maps skill id to P(L) in [0, 1] (missing skills are at their prior);
    ``recent_exercise_ids`` lists answered exercises, most recent first.
    """
    practicable = [s for s in graph.skill_order if graph.exercises_by_skill.get(s)]
    level = {s: mastery_of(s, mastery, params) for s in graph.skill_order}
    mastered = {s for s, p in level.items() if p >= threshold}

    if all(s in mastered for s in practicable):
        return Recommendation(
            None, None, "all_mastered", "Every skill is mastered: nothing left to practise."
        )

    ready = [
        s for s in practicable
        if s not in mastered and all(p in mastered for p in graph.skills[s].prerequisites)
    ]
    if not ready:
        return Recommendation(
            None, None, "nothing_ready", "No unmastered skill has all its prerequisites mastered."
        )

    position = {s: i for i, s in enumerate(graph.skill_order)}
    skill_id = min(ready, key=lambda s: (level[s], position[s]))
    exercise_id = _pick_exercise(graph, skill_id, mastered, recent_exercise_ids, random.Random(seed))
    p = level[skill_id]
    return Recommendation(
        exercise_id,
        skill_id,
        "weakest_ready_skill",
        f"{graph.skills[skill_id].name} is your weakest skill whose prerequisites are "
        f"mastered (estimated mastery {p:.0%}, target {threshold:.0%}).",
        p,
    )


def _pick_exercise(
    graph: ContentGraph,
    skill_id: str,
    mastered: set[str],
    recent_exercise_ids: Sequence[str],
    rng: random.Random,
) -> str:
    candidates = list(graph.exercises_by_skill[skill_id])

    def skills_ready(exercise_id: str) -> bool:
        # A multi-skill exercise is only fair when its other skills are within reach.
        return all(
            s in mastered or all(p in mastered for p in graph.skills[s].prerequisites)
            for s in graph.exercises[exercise_id].skill_ids
        )

    candidates = [e for e in candidates if skills_ready(e)] or candidates
    recent = list(dict.fromkeys(recent_exercise_ids[:RECENT_WINDOW]))
    fresh = [e for e in candidates if e not in recent]
    if fresh:
        return rng.choice(fresh)
    # Every candidate was seen recently: repeat the one seen longest ago.
    return max(candidates, key=recent.index)
