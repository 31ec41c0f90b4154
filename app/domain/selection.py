"""Choosing the next exercise: our adaptive policy and the baselines it is compared with.

Every policy is a pure function ``(graph, params, view, config, seed) -> Recommendation``;
the API and the simulation harness call the same functions.

The adaptive policy decides on the **mastery estimate** (paced P(L) x predicted recall,
``StudentModel.estimate``) and the statuses of ``tracking.status_of``, in order:
1. personalization off -> the fixed curriculum sequence (nothing about the student is used);
2. a skill that was earned and whose estimate fell below ``review_level`` (its predicted
   recall fell: FSRS) is due for review; reviews are interleaved with new learning (never
   two in a row while there is something new to learn), the most forgotten first, at most
   one counted review per skill a day (the memory model counts the first answer of a day);
3. a prerequisite of a skill being learned that has decayed is reviewed first
   (remediation of forgotten prerequisites);
4. with probability ``explore_rate``, a ready skill the student has not started;
5. otherwise, among the ready skills (prerequisites earned and not forgotten), the one with
   the largest expected gain, *interleaved*: the skill just practised is set aside while
   another ready skill is open, and a skill practised ``daily_attempts`` times today waits for
   another day while something else can be practised (massed practice in one sitting helps
   memory least);
6. wheel-spinning (``wheel_spin_attempts`` without mastery): every ``remediation_every``
   items, practise the skill's weakest prerequisite instead, when that prerequisite shows
   weakness (not earned, or decayed);
7. within the skill, among exercises not answered recently, the one whose predicted
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
from app.domain.tracking import DEFAULT_RULES, MasteryRules, MasteryStatus, StudentModel, status_of


@dataclass(frozen=True)
class PolicyConfig:
    rules: MasteryRules = DEFAULT_RULES  # when a skill is mastered, due for review, needs relearning
    target_success: float = 0.7  # aimed-for P(correct) of the chosen exercise
    target_adaptation: float = 0.5  # how far the target moves against recent success
    difficulty_slope: float = 2.0  # logit shift between difficulty 0 and 1
    explore_rate: float = 0.1
    daily_attempts: int = 6  # attempts on one skill in a day before others go first
    wheel_spin_attempts: int = 10
    remediation_every: int = 3
    recent_window: int = 20  # exercises answered this recently are not repeated
    reviews: bool = True  # False: never schedule reviews (for comparisons in simulation)

    @property
    def mastery_threshold(self) -> float:
        return self.rules.threshold


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
    recent_skill_ids: Sequence[str | None] = ()  # first skill of each recent answer, most recent first
    recent_at: Sequence[datetime] = ()  # when each recent answer was given, most recent first


@dataclass(frozen=True)
class Recommendation:
    exercise_id: str | None
    skill_id: str | None
    reason: str
    explanation: str
    policy: str
    details: dict[str, Any] = field(default_factory=dict)
    p_mastery: float | None = None  # the estimate that drove the choice (the mastery estimate for "adaptive")


Policy = Callable[[ContentGraph, Mapping[str, BktParams], StudentView, PolicyConfig, int], Recommendation]


def _practicable(graph: ContentGraph) -> list[str]:
    return [s for s in graph.skill_order if graph.exercises_by_skill.get(s)]


def _logit(p: float) -> float:
    p = min(max(p, 1e-9), 1 - 1e-9)
    return math.log(p / (1 - p))


def _sigmoid(x: float) -> float:
    return 1 / (1 + math.exp(-x))


def predicted_success(
    view: StudentView,
    graph: ContentGraph,
    params: Mapping[str, BktParams],
    exercise_id: str,
    config: PolicyConfig,
    by_skill: dict[str, float] | None = None,
) -> float:
    """P(correct) on an exercise: each skill's prediction (with forgetting), shifted by its difficulty.

    ``by_skill`` caches the skills' predictions across the exercises of one choice."""
    exercise = graph.exercises[exercise_id]
    shift = config.difficulty_slope * (0.5 - exercise.difficulty)
    cache = by_skill if by_skill is not None else {}
    p = 1.0
    for skill_id in exercise.skill_ids:
        if skill_id not in cache:
            cache[skill_id] = view.model.paced_correct(skill_id, params[skill_id], view.now, config.rules)
        p *= _sigmoid(_logit(cache[skill_id]) + shift)
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
    graph: ContentGraph,
    params: Mapping[str, BktParams],
    view: StudentView,
    skill_id: str,
    config: PolicyConfig,
    rng: random.Random,
    ready: set[str],
) -> tuple[str, dict[str, Any]]:
    candidates = _fresh(graph, skill_id, view, config)
    # A multi-skill exercise is fair only when its other skills are within reach.
    within_reach = [e for e in candidates if set(graph.exercises[e].skill_ids) <= ready | {skill_id}]
    candidates = within_reach or candidates
    target = target_success(view, config)
    by_skill: dict[str, float] = {}
    success = {e: predicted_success(view, graph, params, e, config, by_skill) for e in candidates}
    scored = [(abs(success[e] - target), rng.random(), e) for e in candidates]
    _, _, exercise_id = min(scored)
    return exercise_id, {
        "target_success": round(target, 4),
        "predicted_success": round(success[exercise_id], 4),
        "difficulty": graph.exercises[exercise_id].difficulty,
    }


def _days_ago(view: StudentView, skill_id: str) -> int | None:
    state = view.model.skills.get(skill_id)
    if state is None or state.last_practiced_at is None:
        return None
    return max(0, (view.now - state.last_practiced_at).days)


def _ago(days: int | None) -> str:
    if days is None:
        return "a while ago"
    return "today" if days == 0 else "yesterday" if days == 1 else f"{days} days ago"


def _names(graph: ContentGraph, skill_ids: Sequence[str]) -> str:
    names = [graph.skills[s].name for s in skill_ids]
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def attempts_today(view: StudentView) -> dict[str, int]:
    """Answers per skill in the current sitting's day (from the recent answers the view carries)."""
    counts: dict[str, int] = {}
    for skill_id, at in zip(view.recent_skill_ids, view.recent_at, strict=False):
        if skill_id is not None and at.date() == view.now.date():
            counts[skill_id] = counts.get(skill_id, 0) + 1
    return counts


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
    rules, model, now = config.rules, view.model, view.now
    practicable = _practicable(graph)
    estimate = {s: model.estimate(s, params[s], now, rules) for s in graph.skill_order}
    status = {s: status_of(model.skills.get(s), estimate[s], rules) for s in graph.skill_order}
    earned = {
        s
        for s in graph.skill_order
        if status[s] in (MasteryStatus.MASTERED, MasteryStatus.DUE_FOR_REVIEW, MasteryStatus.NEEDS_RELEARNING)
    }
    # A prerequisite opens its dependents once earned, and keeps them open unless it needs relearning.
    open_set = {s for s in earned if status[s] is not MasteryStatus.NEEDS_RELEARNING}
    blocked = {
        s: [p for p in graph.skills[s].prerequisites if p not in open_set]
        for s in practicable
        if s not in earned
    }
    learning = [s for s, missing in blocked.items() if not missing]
    blocked = {s: missing for s, missing in blocked.items() if missing}
    today = attempts_today(view)
    due = sorted(
        (estimate[s], s)
        for s in earned
        if s in practicable and config.reviews and status[s] is not MasteryStatus.MASTERED
    )
    base: dict[str, Any] = {
        "policy": "adaptive",
        "speed": round(model.speed, 4),
        "prior_knowledge": round(model.prior_knowledge, 4),
        "blocked": dict(list(blocked.items())[:5]),
    }

    def recommend(skill_id: str, reason: str, explanation: str, extra: dict[str, Any]) -> Recommendation:
        exercise_id, difficulty = _pick_by_difficulty(graph, params, view, skill_id, config, rng, open_set)
        state = model.skills.get(skill_id)
        details = {
            **base,
            **extra,
            **difficulty,
            "skill": {
                "id": skill_id,
                "mastery": round(estimate[skill_id], 4),
                "status": str(status[skill_id]),
                "p_mastery_paced": round(model.paced(skill_id, params[skill_id]), 4),
                "recall": round(model.recall(skill_id, now, rules), 4),
                "p_mastery": round(state.p_mastery if state else params[skill_id].prior, 4),
                "attempts": state.attempts if state else 0,
                "attempts_today": today.get(skill_id, 0),
            },
        }
        return Recommendation(
            exercise_id, skill_id, reason, explanation, "adaptive", details, estimate[skill_id]
        )

    if not learning and not due:
        if all(s in earned for s in practicable):
            return Recommendation(
                None,
                None,
                "all_mastered",
                "You have mastered every skill, and nothing needs a review yet. Well done!",
                "adaptive",
                base,
            )
        return Recommendation(
            None,
            None,
            "nothing_ready",
            "Nothing is ready to practise yet: the next skills need earlier ones first.",
            "adaptive",
            base,
        )

    name = graph.skills
    position = {s: i for i, s in enumerate(graph.skill_order)}

    def review(level: float, skill_id: str, extra: dict[str, Any] | None = None) -> Recommendation:
        days = _days_ago(view, skill_id)
        why = (
            f"Review: you last practised {name[skill_id].name} {_ago(days)}. A quick review now helps "
            "you keep it."
            if status[skill_id] is MasteryStatus.DUE_FOR_REVIEW
            else f"Review: it has been a while since {name[skill_id].name} ({_ago(days)}), so let's "
            "refresh it."
        )
        return recommend(
            skill_id,
            "review",
            why,
            {
                "review": {
                    "mastery": round(level, 4),
                    "recall": round(model.recall(skill_id, now, rules), 4),
                    "days_since_practice": days,
                    "status": str(status[skill_id]),
                },
                **(extra or {}),
            },
        )

    # Reviews reviewed once today wait for tomorrow (a second answer the same day does not count as one).
    due_now = [
        (level, s) for level, s in due if today.get(s, 0) == 0 or status[s] is MasteryStatus.NEEDS_RELEARNING
    ]
    if due_now and (view.last_reason != "review" or not learning):
        return review(*due_now[0])

    if not learning:  # only reviews left, all practised today
        return review(*due[0])

    # A forgotten prerequisite of a skill being learned comes first.
    for skill_id in sorted(learning, key=position.__getitem__):
        decayed = [
            p
            for p in graph.skills[skill_id].prerequisites
            if status[p] is MasteryStatus.DUE_FOR_REVIEW and today.get(p, 0) == 0
        ]
        if decayed and view.last_reason != "remediate_prerequisite":
            weakest = min(decayed, key=lambda p: (estimate[p], position[p]))
            return recommend(
                weakest,
                "remediate_prerequisite",
                (
                    f"First a quick refresh of {name[weakest].name}: {name[skill_id].name} builds on it, "
                    "and you "
                    f"last practised it {_ago(_days_ago(view, weakest))}."
                ),
                {"remediation": {"for_skill": skill_id, "decayed": True}},
            )

    unstarted = [s for s in learning if s not in model.skills]
    if unstarted and rng.random() < config.explore_rate:
        skill_id = rng.choice(unstarted)
        return recommend(skill_id, "explore", _new_skill_text(graph, skill_id), {"explore": True})

    # Interleave: set aside the skill just practised, and skills practised enough today, while others
    # are open.
    candidates = [s for s in learning if s != view.last_skill_id and today.get(s, 0) < config.daily_attempts]
    if not candidates:
        candidates = [s for s in learning if today.get(s, 0) < config.daily_attempts] or learning
    scores = {s: model.expected_gain(s, params[s], now, rules) for s in candidates}
    ranked = sorted(candidates, key=lambda s: (-scores[s], position[s]))
    skill_id = ranked[0]
    alternatives = [
        {"id": s, "score": round(scores[s], 4), "mastery": round(estimate[s], 4)} for s in ranked[1:4]
    ]
    extra = {"score": round(scores[skill_id], 4), "alternatives": alternatives}

    state = model.skills.get(skill_id)
    attempts = state.attempts if state else 0
    prerequisites = graph.skills[skill_id].prerequisites
    spinning = attempts >= config.wheel_spin_attempts
    if (
        spinning
        and prerequisites
        and view.last_reason != "remediate_prerequisite"
        and (attempts - config.wheel_spin_attempts) % config.remediation_every == 0
    ):
        weakest = min(prerequisites, key=lambda p: (estimate[p], position[p]))
        # Only a prerequisite with evidence of weakness is worth the detour; with solid prerequisites
        # the student is simply slow here, and the target success rate already eases the items.
        if status[weakest] is not MasteryStatus.MASTERED:
            return recommend(
                weakest,
                "remediate_prerequisite",
                (
                    f"{name[skill_id].name} is taking a while, so let's strengthen {name[weakest].name} "
                    "first: "
                    f"{name[skill_id].name} builds on it."
                ),
                {**extra, "remediation": {"for_skill": skill_id, "attempts": attempts}},
            )

    if skill_id == view.last_skill_id:
        reason, why = "continue", f"Keep going with {name[skill_id].name}: you are getting there."
    elif state is None or state.attempts == 0:
        reason, why = "learn", _new_skill_text(graph, skill_id)
    else:
        reason, why = "learn", (f"Back to {name[skill_id].name}: switching between skills helps them stick.")
    if spinning:
        why += " It is taking a few tries, and that's fine: each one is practice."
    return recommend(skill_id, reason, why, extra)


def _new_skill_text(graph: ContentGraph, skill_id: str) -> str:
    skill = graph.skills[skill_id]
    if skill.prerequisites:
        return (
            f"New skill: {skill.name}. You're ready for it because you've mastered "
            f"{_names(graph, skill.prerequisites)}."
        )
    return f"New skill: {skill.name}. It's a starting point: it needs nothing else first."


# --- baselines (and the opt-out sequence) ------------------------------------------------------


def _standard(view: StudentView, skill_id: str, params: Mapping[str, BktParams]) -> float:
    state = view.model.skills.get(skill_id)
    return state.p_mastery if state else params[skill_id].prior


def fixed_sequence(
    graph: ContentGraph,
    params: Mapping[str, BktParams],
    view: StudentView,
    config: PolicyConfig = PolicyConfig(),
    seed: int = 0,
) -> Recommendation:
    """Personalization off: every exercise in curriculum order, the same for everyone."""
    sequence = [
        e
        for s in _practicable(graph)
        for e in graph.exercises_by_skill[s]
        if graph.exercises[e].skill_ids[0] == s
    ]
    exercise_id = sequence[view.n_responses % len(sequence)]
    skill_id = graph.exercises[exercise_id].skill_ids[0]
    return Recommendation(
        exercise_id,
        skill_id,
        "fixed_order",
        (
            f"Personalization is off: exercise {view.n_responses % len(sequence) + 1} of {len(sequence)} "
            "in the fixed curriculum order."
        ),
        "fixed_sequence",
        {"policy": "fixed_sequence"},
    )


def fixed_order(
    graph: ContentGraph,
    params: Mapping[str, BktParams],
    view: StudentView,
    config: PolicyConfig = PolicyConfig(),
    seed: int = 0,
) -> Recommendation:
    """Baseline: skills in curriculum order, each until standard BKT says mastered."""
    for skill_id in _practicable(graph):
        if _standard(view, skill_id, params) < config.mastery_threshold:
            exercise_id = _fresh(graph, skill_id, view, config)[0]
            return Recommendation(
                exercise_id,
                skill_id,
                "fixed_order",
                "Next skill in curriculum order.",
                "fixed_order",
                p_mastery=_standard(view, skill_id, params),
            )
    return Recommendation(None, None, "all_mastered", "Every skill is mastered.", "fixed_order")


def random_order(
    graph: ContentGraph,
    params: Mapping[str, BktParams],
    view: StudentView,
    config: PolicyConfig = PolicyConfig(),
    seed: int = 0,
) -> Recommendation:
    """Baseline: a random exercise of a skill not yet mastered (no prerequisites)."""
    rng = random.Random(seed)
    open_skills = [s for s in _practicable(graph) if _standard(view, s, params) < config.mastery_threshold]
    if not open_skills:
        return Recommendation(None, None, "all_mastered", "Every skill is mastered.", "random")
    skill_id = rng.choice(open_skills)
    exercise_id = rng.choice(_fresh(graph, skill_id, view, config))
    return Recommendation(exercise_id, skill_id, "random", "Random unmastered skill.", "random")


def lowest_mastery_first(
    graph: ContentGraph,
    params: Mapping[str, BktParams],
    view: StudentView,
    config: PolicyConfig = PolicyConfig(),
    seed: int = 0,
) -> Recommendation:
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
        open_skill = next(
            s for s in _practicable(graph) if _standard(view, s, params) < config.mastery_threshold
        )
        exercise_id = _fresh(graph, open_skill, view, config)[0]
    else:
        exercise_id = best[2]
    skill_id = min(graph.exercises[exercise_id].skill_ids, key=lambda s: _standard(view, s, params))
    return Recommendation(exercise_id, skill_id, "lowest_mastery", "Lowest mastery first.", "lowest_mastery")


ALOSI_WEIGHTS = {"remediation": 2.0, "readiness": 2.0, "continuity": 1.0, "difficulty": 0.5}


def alosi_weighted(
    graph: ContentGraph,
    params: Mapping[str, BktParams],
    view: StudentView,
    config: PolicyConfig = PolicyConfig(),
    seed: int = 0,
) -> Recommendation:
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
        score = (
            ALOSI_WEIGHTS["remediation"] * remediation
            + ALOSI_WEIGHTS["readiness"] * readiness
            + ALOSI_WEIGHTS["continuity"] * continuity
            + ALOSI_WEIGHTS["difficulty"] * difficulty
        )
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
