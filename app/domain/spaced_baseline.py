"""A pure spaced-repetition scheduler over the skills (Leitner boxes): the baseline for spacing.

It knows nothing of prerequisites beyond the curriculum order, of the student's pace or of a
memory model. Each skill is a card:

* **new skills** are introduced one at a time in curriculum order, and practised until
  standard BKT P(L) reaches the mastery threshold (the "learned" rule of the other
  baselines); the skill then enters box 1;
* a card in box b is **due** ``INTERVALS_DAYS[b - 1]`` days after its last review (1, 2, 4,
  8, 16, 32: expanding intervals). The first answer on a due card is its review: right moves
  it up a box, wrong sends it to box 0 (relearn: due again at once; the next right answer
  puts it back in box 1). Answers on a card that is not due change nothing;
* each choice: the most overdue due card first (earliest due date, then lowest box, then
  curriculum order); when nothing is due, the new skill; when every skill is in the deck and
  nothing is due, nothing (``nothing_due``: the session ends, as a flash-card app's would).

The boxes are the scheduler's own state, as a flash-card app stores it per card. A policy is
called once per answer with a ``StudentView``, so the scheduler keeps one deck per student
model and reads the previous answer from the view each call (the most recent exercise, its
outcome, and the time the model stamped on it). It is used only by the simulation harness
(``simulation.SIMULATION_POLICIES``), never by the service.
"""

from __future__ import annotations

import random
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta

from app.domain.bkt import BktParams
from app.domain.content import ContentGraph
from app.domain.selection import PolicyConfig, Recommendation, StudentView
from app.domain.tracking import StudentModel

INTERVALS_DAYS: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
NAME = "spaced_repetition"
_DEFAULT_CONFIG = PolicyConfig()


@dataclass
class Card:
    box: int  # 0 = relearning (due at once), 1.. = Leitner boxes
    due: date


@dataclass
class Deck:
    """One student's cards, and how many of their answers the scheduler has read."""

    seen: int = 0
    cards: dict[str, Card] = field(default_factory=dict)


def _standard(model: StudentModel, skill_id: str, params: Mapping[str, BktParams]) -> float:
    state = model.skills.get(skill_id)
    return state.p_mastery if state else params[skill_id].prior


class LeitnerScheduler:
    """The policy: ``(graph, params, view, config, seed) -> Recommendation`` (see the module docstring)."""

    def __init__(self, intervals_days: tuple[int, ...] = INTERVALS_DAYS) -> None:
        if not intervals_days or any(d < 1 for d in intervals_days):
            raise ValueError("intervals_days must be one or more whole days >= 1")
        self.intervals_days = intervals_days
        # Keyed by id(model), with a weak reference that tells a reused id from the same model.
        self._decks: dict[int, tuple[weakref.ref[StudentModel], Deck]] = {}

    def deck(self, model: StudentModel) -> Deck:
        found = self._decks.get(id(model))
        if found is None or found[0]() is not model:
            self._decks = {k: v for k, v in self._decks.items() if v[0]() is not None}
            found = self._decks[id(model)] = (weakref.ref(model), Deck())
        return found[1]

    def _read_last_answer(
        self,
        deck: Deck,
        graph: ContentGraph,
        params: Mapping[str, BktParams],
        view: StudentView,
        threshold: float,
    ) -> None:
        if view.n_responses == deck.seen:
            return  # asked again without a new answer
        if view.n_responses == 0:
            deck.seen, deck.cards = 0, {}
            return
        if view.n_responses != deck.seen + 1 or not view.recent_exercise_ids:
            raise ValueError(
                f"the spaced-repetition scheduler must see every answer: it read {deck.seen}, the view "
                f"has {view.n_responses}"
            )
        deck.seen = view.n_responses
        exercise = graph.exercises[view.recent_exercise_ids[0]]
        correct = view.recent_correct[0]
        for skill_id in exercise.skill_ids:
            state = view.model.skills.get(skill_id)
            if state is None or state.last_practiced_at is None:
                continue
            day = state.last_practiced_at.date()
            card = deck.cards.get(skill_id)
            if card is None:
                if state.p_mastery >= threshold:
                    deck.cards[skill_id] = Card(1, day + timedelta(days=self.intervals_days[0]))
            elif card.due <= day:
                if not correct:
                    card.box, card.due = 0, day
                else:
                    card.box = min(card.box + 1, len(self.intervals_days))
                    card.due = day + timedelta(days=self.intervals_days[card.box - 1])

    def __call__(
        self,
        graph: ContentGraph,
        params: Mapping[str, BktParams],
        view: StudentView,
        config: PolicyConfig = _DEFAULT_CONFIG,
        seed: int = 0,
    ) -> Recommendation:
        threshold = config.mastery_threshold
        deck = self.deck(view.model)
        self._read_last_answer(deck, graph, params, view, threshold)
        today = view.now.date()
        practicable = [s for s in graph.skill_order if graph.exercises_by_skill.get(s)]
        position = {s: i for i, s in enumerate(practicable)}
        due = sorted(
            (card.due, card.box, position[s], s)
            for s, card in deck.cards.items()
            if card.due <= today and s in position
        )
        rng = random.Random(seed)
        if due:
            when, box, _, skill_id = due[0]
            late = (today - when).days
            return self._recommend(
                graph,
                view,
                skill_id,
                "review",
                rng,
                (
                    f"Review: {graph.skills[skill_id].name} is due (box {box}"
                    + (f", {late} day{'s' if late != 1 else ''} late" if late else "")
                    + ")."
                ),
                {"box": box, "due": when.isoformat()},
                params,
            )
        new = next((s for s in practicable if s not in deck.cards), None)
        if new is not None:
            return self._recommend(
                graph,
                view,
                new,
                "learn",
                rng,
                (f"New skill in curriculum order: {graph.skills[new].name}, until it is learned."),
                {},
                params,
            )
        upcoming = min(card.due for card in deck.cards.values())
        return Recommendation(
            None,
            None,
            "nothing_due",
            f"Nothing is due today; the next review is on {upcoming.isoformat()}.",
            NAME,
            {"policy": NAME, "next_due": upcoming.isoformat()},
        )

    def _recommend(
        self,
        graph: ContentGraph,
        view: StudentView,
        skill_id: str,
        reason: str,
        rng: random.Random,
        explanation: str,
        details: dict[str, object],
        params: Mapping[str, BktParams],
    ) -> Recommendation:
        recent = set(view.recent_exercise_ids)
        candidates = graph.exercises_by_skill[skill_id]
        # A review is about this skill alone: single-skill items first, and not one seen lately.
        single = [e for e in candidates if graph.exercises[e].skill_ids == (skill_id,)] or list(candidates)
        fresh = [e for e in single if e not in recent]
        if fresh:
            exercise_id = rng.choice(fresh)
        else:
            order = list(dict.fromkeys(view.recent_exercise_ids))
            exercise_id = max(single, key=lambda e: order.index(e) if e in order else len(order))
        return Recommendation(
            exercise_id,
            skill_id,
            reason,
            explanation,
            NAME,
            {"policy": NAME, **details},
            _standard(view.model, skill_id, params),
        )


spaced_repetition = LeitnerScheduler()
