"""The spaced-repetition baseline (Leitner boxes over skills), driven as the harness drives it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta

import pytest

from app.domain.bkt import BktParams
from app.domain.content import ContentGraph, Exercise, Skill, build_graph
from app.domain.selection import PolicyConfig, Recommendation
from app.domain.simulation import SIMULATION_POLICIES, START, build_view
from app.domain.spaced_baseline import LeitnerScheduler, spaced_repetition
from app.domain.tracking import StudentModel, apply_answer

# Three right answers take standard P(L) from 0.05 past 0.95 (0.457, 0.906, 0.991 after each).
PARAMS = BktParams(prior=0.05, learn=0.2, guess=0.1, slip=0.1)


def ex(eid: str, *skills: str) -> Exercise:
    return Exercise(eid, skills, "?", "numeric", ("1",), 0.5)


@pytest.fixture(scope="module")
def graph() -> ContentGraph:
    skills = [Skill("a", "A"), Skill("b", "B", prerequisites=("a",))]
    exercises = [ex(f"{s.id}-{i}", s.id) for s in skills for i in range(4)] + [ex("ab", "a", "b")]
    return build_graph(skills, exercises)


class Learner:
    """One student's loop: the view as the service builds it, answers through apply_answer."""

    def __init__(self, graph: ContentGraph, policy: LeitnerScheduler) -> None:
        self.graph, self.policy = graph, policy
        self.model = StudentModel()
        self.params = {s: PARAMS for s in graph.skill_order}
        self.exercises: list[str] = []
        self.outcomes: list[bool] = []
        self.times: list[datetime] = []
        self.last: Recommendation | None = None

    def ask(self, now: datetime) -> Recommendation:
        view = build_view(
            self.graph, self.model, now, self.exercises, self.outcomes, self.times, self.last, 20
        )
        return self.policy(self.graph, self.params, view, PolicyConfig(), 0)

    def session(
        self,
        day: datetime,
        answers: int,
        correct: Callable[[Recommendation], bool] = lambda r: True,
    ) -> list[Recommendation]:
        served = []
        for k in range(answers):
            now = day + timedelta(minutes=k)
            rec = self.ask(now)
            served.append(rec)
            if rec.exercise_id is None:
                break
            right = correct(rec)
            skill_ids = self.graph.exercises[rec.exercise_id].skill_ids
            apply_answer(self.model, skill_ids, right, self.params, now=now)
            self.exercises.append(rec.exercise_id)
            self.outcomes.append(right)
            self.times.append(now)
            self.last = rec
        return served


def test_it_is_in_the_harness_table_but_not_the_services() -> None:
    from app.domain.selection import POLICIES

    assert SIMULATION_POLICIES["spaced_repetition"] is spaced_repetition
    assert "spaced_repetition" not in POLICIES


def test_new_skills_in_curriculum_order_then_reviews_at_expanding_intervals(graph: ContentGraph) -> None:
    policy = LeitnerScheduler()
    learner = Learner(graph, policy)
    first = learner.session(START, 10)
    # a until learned (3 right answers), then b until learned, then nothing is due today.
    assert [(r.skill_id, r.reason) for r in first] == [("a", "learn")] * 3 + [("b", "learn")] * 3 + [
        (None, "nothing_due")
    ]
    assert first[-1].details["next_due"] == (START + timedelta(days=1)).date().isoformat()
    assert all(len(graph.exercises[r.exercise_id].skill_ids) == 1 for r in first[:-1] if r.exercise_id)
    deck = policy.deck(learner.model)
    assert {s: (c.box, c.due) for s, c in deck.cards.items()} == {
        "a": (1, date(2025, 1, 7)),
        "b": (1, date(2025, 1, 7)),
    }
    # Day 2: both due, one review each (most overdue, then curriculum order), then nothing.
    day2 = learner.session(START + timedelta(days=1), 10)
    assert [(r.skill_id, r.reason) for r in day2] == [("a", "review"), ("b", "review"), (None, "nothing_due")]
    assert {s: c.box for s, c in deck.cards.items()} == {"a": 2, "b": 2}
    # Box 2: due two days later, not the day after.
    assert [r.reason for r in learner.session(START + timedelta(days=2), 3)] == ["nothing_due"]
    day4 = learner.session(START + timedelta(days=3), 3)
    assert [r.reason for r in day4] == ["review", "review", "nothing_due"]
    assert {c.due for c in deck.cards.values()} == {date(2025, 1, 13)}  # box 3: four days


def test_a_failed_review_goes_back_to_relearning_at_once(graph: ContentGraph) -> None:
    policy = LeitnerScheduler()
    learner = Learner(graph, policy)
    learner.session(START, 10)
    fail_first_a = iter([False])
    day2 = learner.session(
        START + timedelta(days=1), 10, lambda r: next(fail_first_a, True) if r.skill_id == "a" else True
    )
    # a fails: box 0, due again today, so it comes back first (lowest box); then b.
    assert [(r.skill_id, r.reason) for r in day2] == [
        ("a", "review"),
        ("a", "review"),
        ("b", "review"),
        (None, "nothing_due"),
    ]
    cards = policy.deck(learner.model).cards
    assert (cards["a"].box, cards["a"].due) == (1, date(2025, 1, 8))  # back in box 1: tomorrow
    assert (cards["b"].box, cards["b"].due) == (2, date(2025, 1, 9))


def test_it_must_see_every_answer_and_a_new_student_gets_a_new_deck(graph: ContentGraph) -> None:
    policy = LeitnerScheduler()
    learner = Learner(graph, policy)
    learner.session(START, 2)
    assert learner.ask(START + timedelta(minutes=5)).skill_id == "a"  # asked twice: no new answer, fine
    learner.exercises += ["a-0", "a-1"]  # two answers it never saw
    learner.outcomes += [True, True]
    learner.times += [START, START]
    with pytest.raises(ValueError, match="must see every answer"):
        learner.ask(START + timedelta(minutes=6))
    fresh = Learner(graph, policy)
    assert fresh.session(START, 1)[0].skill_id == "a" and policy.deck(fresh.model).seen == 0
    with pytest.raises(ValueError, match="intervals_days"):
        LeitnerScheduler(())
