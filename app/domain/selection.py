"""Choosing the next exercise: our adaptive policy and the baselines it is compared with.

Every policy is a pure function ``(graph, params, view, config, seed) -> Recommendation``;
the API and the simulation harness call the same functions.

The adaptive policy, in order:
1. personalization off -> the fixed curriculum sequence (nothing about the student is used);
2. a mastered skill whose predicted recall fell below ``review_threshold`` is due: reviews
   are interleaved (never two in a row while there is something new to learn);
3. with probability ``explore_rate``, a ready skill the student has not started;
4. otherwise the ready skill with the largest expected gain in paced P(L), with a bonus
   for staying on the skill just practised (continuity);
5. wheel-spinning (``wheel_spin_attempts`` without mastery): every ``remediation_every``
   items, practise the skill's weakest prerequisite instead, when that prerequisite shows
   weakness (not mastered, or likely forgotten);
6. within the skill, among exercises not answered recently, the one whose predicted
   P(correct) is closest to a target success rate that adapts to the learner.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from app.domain.bkt import BktParams
from app.domain.content import ContentGraph
from app.domain.tracking import StudentModel


@dataclass(frozen=True)
class PolicyConfig:
    mastery_threshold: float = 0.95  # paced P(L) at which a skill is mastered
    ready_threshold: float = 0.95  # paced P(L) a prerequisite needs before its dependents open
    target_success: float = 0.7  # aimed-for P(correct) of the chosen exercise
    target_adaptation: float = 0.5  # how far the target moves against recent success
    difficulty_slope: float = 2.0  # logit shift between difficulty 0 and 1
    continuity_bonus: float = 0.5  # relative score bonus for the skill just practised
    explore_rate: float = 0.1
    wheel_spin_attempts: int = 10
    remediation_every: int = 3
    review_threshold: float = 0.8  # predicted recall below which a mastered skill is due
    review_half_life_days: float = 4.0  # doubles with every successful review
    recent_window: int = 20  # exercises answered this recently are not repeated


@dataclass(frozen=True)
class StudentView:
    """What a policy may know about a student."""

    model: StudentModel
    now: datetime
    recent_exercise_ids: Sequence[str] = ()  # most recent first
    recent_correct: Sequence[bool] = ()  # most recent first
    n_responses: int = 0
    last_skill_id: str | None = None
    last_reason: str | None = None
    personalized: bool = True


@dataclass(frozen=True)
class Recommendation:
    exercise_id: str | None
    skill_id: str | None
    reason: str
    explanation: str
    policy: str
    details: dict[str, Any] = field(default_factory=dict)
    p_mastery: float | None = None  # the estimate that drove the choice (paced for "adaptive")


Policy = Callable[[ContentGraph, Mapping[str, BktParams], StudentView, PolicyConfig, int], Recommendation]


def _practicable(graph: ContentGraph) -> list[str]:
    return [s for s in graph.skill_order if graph.exercises_by_skill.get(s)]


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def recall(view: StudentView, skill_id: str, config: PolicyConfig) -> float:
    """Predicted recall of a practised skill, 2^(-days since practice / half-life)."""
    state = view.model.skills.get(skill_id)
    if state is None or state.last_practiced_at is None:
        return 1.0
    days = max((view.now - state.last_practiced_at).total_seconds(), 0.0) / 86400
    half_life = config.review_half_life_days * 2 ** min(state.review_successes, 10)
    return float(2 ** (-days / half_life))


def predicted_success(
    view: StudentView, graph: ContentGraph, params: Mapping[str, BktParams], exercise_id: str,
    config: PolicyConfig,
) -> float:
    """P(correct) on an exercise: each skill's paced prediction shifted by the exercise's difficulty."""
    exercise = graph.exercises[exercise_id]
    shift = config.difficulty_slope * (0.5 - exercise.difficulty)
    p = 1.0
    for skill_id in exercise.skill_ids:
        p *= _sigmoid(_logit(view.model.paced_correct(skill_id, params[skill_id])) + shift)
    return p


def target_success(view: StudentView, config: PolicyConfig) -> float:
    """The aimed-for success rate: lower (harder items) for a student who keeps succeeding."""
    recent = list(view.recent_correct[:10])
    if len(recent) < 3:
        return config.target_success
    rate = sum(recent) / len(recent)
    target = config.target_success + config.target_adaptation * (config.target_success - rate)
    return min(0.9, max(0.5, target))


def _fresh(graph: ContentGraph, skill_id: str, view: StudentView, config: PolicyConfig) -> list[str]:
    recent = set(view.recent_exercise_ids[: config.recent_window])
    candidates = list(graph.exercises_by_skill[skill_id])
    fresh = [e for e in candidates if e not in recent]
    if fresh:
        return fresh
    order = list(dict.fromkeys(view.recent_exercise_ids[: config.recent_window]))
    return [max(candidates, key=order.index)]  # all seen recently: the one seen longest ago


def _pick_by_difficulty(
    graph: ContentGraph, params: Mapping[str, BktParams], view: StudentView, skill_id: str,
    config: PolicyConfig, rng: random.Random, ready: set[str],
) -> tuple[str, dict[str, Any]]:
    candidates = _fresh(graph, skill_id, view, config)
    # A multi-skill exercise is fair only when its other skills are within reach.
    within_reach = [e for e in candidates if set(graph.exercises[e].skill_ids) <= ready | {skill_id}]
    candidates = within_reach or candidates
    target = target_success(view, config)
    scored = [(abs(predicted_success(view, graph, params, e, config) - target), rng.random(), e)
              for e in candidates]
    _, _, exercise_id = min(scored)
    return exercise_id, {
        "target_success": round(target, 4),
        "predicted_success": round(predicted_success(view, graph, params, exercise_id, config), 4),
        "difficulty": graph.exercises[exercise_id].difficulty,
    }


def choose_next_exercise(
    graph: ContentGraph,
    params: Mapping[str, BktParams],
    view: StudentView,
    config: PolicyConfig = PolicyConfig(),
    seed: int = 0,
) -> Recommendation:
    """Our policy (see the module docstring). ``params`` maps skill id to its BKT parameters."""
    if not view.personalized:
        return fixed_sequence(graph, params, view, config, seed)
    rng = random.Random(seed)
    practicable = _practicable(graph)
    paced = {s: view.model.paced(s, params[s]) for s in graph.skill_order}
    mastered = {s for s in practicable if paced[s] >= config.mastery_threshold}
    ready_set = {s for s in graph.skill_order if paced[s] >= config.ready_threshold}
    blocked = {
        s: [p for p in graph.skills[s].prerequisites if p not in ready_set]
        for s in practicable if s not in mastered
    }
    learning = [s for s, missing in blocked.items() if not missing]
    blocked = {s: missing for s, missing in blocked.items() if missing}
    recalls = {s: recall(view, s, config) for s in mastered}
    due = sorted((level, s) for s, level in recalls.items() if level < config.review_threshold)
    base: dict[str, Any] = {"policy": "adaptive", "speed": round(view.model.speed, 4),
                            "blocked": dict(list(blocked.items())[:5])}

    def recommend(skill_id: str, reason: str, explanation: str, extra: dict[str, Any]) -> Recommendation:
        exercise_id, difficulty = _pick_by_difficulty(
            graph, params, view, skill_id, config, rng, ready_set)
        state = view.model.skills.get(skill_id)
        details = {**base, **extra, **difficulty, "skill": {
            "id": skill_id, "p_mastery_paced": round(paced[skill_id], 4),
            "p_mastery": round(state.p_mastery if state else params[skill_id].prior, 4),
            "attempts": state.attempts if state else 0,
        }}
        text = (f"{explanation} The exercise was chosen to be answered correctly with probability about "
                f"{difficulty['predicted_success']:.0%} (target {difficulty['target_success']:.0%}).")
        return Recommendation(exercise_id, skill_id, reason, text, "adaptive", details, paced[skill_id])

    if not learning and not due:
        if all(s in mastered for s in practicable):
            return Recommendation(None, None, "all_mastered",
                                  "Every skill is mastered: nothing left to practise.", "adaptive", base)
        return Recommendation(None, None, "nothing_ready",
                              "No unmastered skill has all its prerequisites mastered.", "adaptive", base)

    name = graph.skills
    if due and (view.last_reason != "review" or not learning):
        level, skill_id = due[0]
        return recommend(skill_id, "review", (
            f"Review: {name[skill_id].name} was mastered, but after the time since you last practised it "
            f"the chance you still remember it is about {level:.0%}."),
            {"review": {"recall": round(level, 4)}})

    unstarted = [s for s in learning if s not in view.model.skills]
    if unstarted and rng.random() < config.explore_rate:
        skill_id = rng.choice(unstarted)
        return recommend(skill_id, "explore", (
            f"Something new: {name[skill_id].name} is ready (its prerequisites are mastered) and you have "
            "not tried it yet."), {"explore": True})

    scores = {}
    for s in learning:
        gain = view.model.expected_gain(s, params[s])
        scores[s] = gain * (1 + (config.continuity_bonus if s == view.last_skill_id else 0.0))
    position = {s: i for i, s in enumerate(graph.skill_order)}
    ranked = sorted(learning, key=lambda s: (-scores[s], position[s]))
    skill_id = ranked[0]
    alternatives = [{"id": s, "score": round(scores[s], 4), "p_mastery_paced": round(paced[s], 4)}
                    for s in ranked[1:4]]
    extra = {"score": round(scores[skill_id], 4), "alternatives": alternatives}

    state = view.model.skills.get(skill_id)
    attempts = state.attempts if state else 0
    prerequisites = graph.skills[skill_id].prerequisites
    spinning = attempts >= config.wheel_spin_attempts
    if (spinning and prerequisites and view.last_reason != "remediate_prerequisite"
            and (attempts - config.wheel_spin_attempts) % config.remediation_every == 0):
        weakest = min(prerequisites, key=lambda p: (paced[p], recall(view, p, config), position[p]))
        # Only a prerequisite with evidence of weakness (not mastered, or likely forgotten) is
        # worth the detour; with solid prerequisites the student is simply slow here, and the
        # target success rate already eases the items.
        weak = paced[weakest] < config.mastery_threshold
        if weak or recall(view, weakest, config) < config.review_threshold:
            return recommend(weakest, "remediate_prerequisite", (
                f"{name[skill_id].name} has taken {attempts} attempts without mastery, so this practises its "
                f"weakest prerequisite, {name[weakest].name} (estimated mastery {paced[weakest]:.0%})."),
                {**extra, "remediation": {"for_skill": skill_id, "attempts": attempts}})

    if skill_id == view.last_skill_id and len(learning) > 1:
        reason, why = "continue", (f"Keep going with {name[skill_id].name}: estimated mastery "
                                   f"{paced[skill_id]:.0%} of the {config.mastery_threshold:.0%} needed.")
    else:
        reason, why = "learn", (f"{name[skill_id].name} is where one more exercise should raise your "
                                f"mastery most (now {paced[skill_id]:.0%}; its prerequisites are mastered).")
    if spinning:
        why += f" ({attempts} attempts so far: it is taking a while.)"
    return recommend(skill_id, reason, why, extra)


# --- baselines (and the opt-out sequence) ------------------------------------------------------


def _standard(view: StudentView, skill_id: str, params: Mapping[str, BktParams]) -> float:
    state = view.model.skills.get(skill_id)
    return state.p_mastery if state else params[skill_id].prior


def fixed_sequence(graph: ContentGraph, params: Mapping[str, BktParams], view: StudentView,
                   config: PolicyConfig = PolicyConfig(), seed: int = 0) -> Recommendation:
    """Personalization off: every exercise in curriculum order, the same for everyone."""
    sequence = [e for s in _practicable(graph) for e in graph.exercises_by_skill[s]
                if graph.exercises[e].skill_ids[0] == s]
    exercise_id = sequence[view.n_responses % len(sequence)]
    skill_id = graph.exercises[exercise_id].skill_ids[0]
    return Recommendation(exercise_id, skill_id, "fixed_order", (
        f"Personalization is off: exercise {view.n_responses % len(sequence) + 1} of {len(sequence)} "
        "in the fixed curriculum order."), "fixed_sequence", {"policy": "fixed_sequence"})


def fixed_order(graph: ContentGraph, params: Mapping[str, BktParams], view: StudentView,
                config: PolicyConfig = PolicyConfig(), seed: int = 0) -> Recommendation:
    """Baseline: skills in curriculum order, each until standard BKT says mastered."""
    for skill_id in _practicable(graph):
        if _standard(view, skill_id, params) < config.mastery_threshold:
            exercise_id = _fresh(graph, skill_id, view, config)[0]
            return Recommendation(exercise_id, skill_id, "fixed_order", "Next skill in curriculum order.",
                                  "fixed_order", p_mastery=_standard(view, skill_id, params))
    return Recommendation(None, None, "all_mastered", "Every skill is mastered.", "fixed_order")


def random_order(graph: ContentGraph, params: Mapping[str, BktParams], view: StudentView,
                 config: PolicyConfig = PolicyConfig(), seed: int = 0) -> Recommendation:
    """Baseline: a random exercise of a skill not yet mastered (no prerequisites)."""
    rng = random.Random(seed)
    open_skills = [s for s in _practicable(graph) if _standard(view, s, params) < config.mastery_threshold]
    if not open_skills:
        return Recommendation(None, None, "all_mastered", "Every skill is mastered.", "random")
    skill_id = rng.choice(open_skills)
    exercise_id = rng.choice(_fresh(graph, skill_id, view, config))
    return Recommendation(exercise_id, skill_id, "random", "Random unmastered skill.", "random")


def lowest_mastery_first(graph: ContentGraph, params: Mapping[str, BktParams], view: StudentView,
                         config: PolicyConfig = PolicyConfig(), seed: int = 0) -> Recommendation:
    """Baseline (CAHLR/OATutor): the exercise whose skills' product of P(L) is lowest; no prerequisites."""
    rng = random.Random(seed)
    recent = set(view.recent_exercise_ids[: config.recent_window])
    best: tuple[float, float, str] | None = None
    for exercise_id, exercise in graph.exercises.items():
        mastery = math.prod(_standard(view, s, params) for s in exercise.skill_ids)
        if mastery >= config.mastery_threshold or exercise_id in recent:
            continue
        candidate = (mastery, rng.random(), exercise_id)
        best = candidate if best is None or candidate < best else best
    if best is None:
        if all(_standard(view, s, params) >= config.mastery_threshold for s in _practicable(graph)):
            return Recommendation(None, None, "all_mastered", "Every skill is mastered.", "lowest_mastery")
        open_skill = next(s for s in _practicable(graph)
                          if _standard(view, s, params) < config.mastery_threshold)
        exercise_id = _fresh(graph, open_skill, view, config)[0]
    else:
        exercise_id = best[2]
    skill_id = min(graph.exercises[exercise_id].skill_ids, key=lambda s: _standard(view, s, params))
    return Recommendation(exercise_id, skill_id, "lowest_mastery", "Lowest mastery first.", "lowest_mastery")


ALOSI_WEIGHTS = {"remediation": 2.0, "readiness": 2.0, "continuity": 1.0, "difficulty": 0.5}


def alosi_weighted(graph: ContentGraph, params: Mapping[str, BktParams], view: StudentView,
                   config: PolicyConfig = PolicyConfig(), seed: int = 0) -> Recommendation:
    """Baseline (harvard-vpal ALOSI): weighted remediation + readiness + continuity + difficulty match.

    Never repeats an item it is shown as recent (the service passes the last 20); when
    nothing unseen is useful it falls back to lowest mastery first.
    """
    rng = random.Random(seed)
    threshold = config.mastery_threshold
    level = {s: _standard(view, s, params) for s in graph.skill_order}
    if all(level[s] >= threshold for s in _practicable(graph)):
        return Recommendation(None, None, "all_mastered", "Every skill is mastered.", "alosi")
    seen = set(view.recent_exercise_ids)
    last_skills = set()
    if view.recent_exercise_ids and view.recent_exercise_ids[0] in graph.exercises:
        last_skills = set(graph.exercises[view.recent_exercise_ids[0]].skill_ids)
    best: tuple[float, float, str] | None = None
    for exercise_id, exercise in graph.exercises.items():
        if exercise_id in seen:
            continue
        skills = exercise.skill_ids
        remediation = sum(max(0.0, threshold - level[s]) for s in skills)
        readiness = sum(min(0.0, level[p] - threshold) for s in skills for p in graph.skills[s].prerequisites)
        continuity = 1.0 if last_skills & set(skills) else 0.0
        difficulty = -abs(exercise.difficulty - (1 - min(level[s] for s in skills)))
        score = (ALOSI_WEIGHTS["remediation"] * remediation + ALOSI_WEIGHTS["readiness"] * readiness
                 + ALOSI_WEIGHTS["continuity"] * continuity + ALOSI_WEIGHTS["difficulty"] * difficulty)
        if remediation == 0:
            continue
        candidate = (-score, rng.random(), exercise_id)
        best = candidate if best is None or candidate < best else best
    if best is None:  # every useful item seen: repeat like the others do
        return lowest_mastery_first(graph, params, view, config, seed)
    exercise_id = best[2]
    skill_id = min(graph.exercises[exercise_id].skill_ids, key=lambda s: level[s])
    return Recommendation(exercise_id, skill_id, "alosi", "ALOSI weighted score.", "alosi")


POLICIES: dict[str, Policy] = {
    "adaptive": choose_next_exercise,
    "fixed_order": fixed_order,
    "random": random_order,
    "lowest_mastery": lowest_mastery_first,
    "alosi": alosi_weighted,
}
