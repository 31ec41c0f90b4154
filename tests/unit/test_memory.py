"""The memory model's wrapper around the fsrs package: retrievability, spacing, what counts as a review."""

from datetime import UTC, datetime, timedelta

import pytest
from fsrs import Card, Rating, Scheduler

from app.domain.memory import DEFAULT_WEIGHTS, counts_as_review, recall, review, review_events, start_memory

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


def test_recall_is_fsrs_retrievability_and_decays() -> None:
    memory = start_memory(T0)
    scheduler = Scheduler(learning_steps=(), enable_fuzzing=False)
    card, _ = scheduler.review_card(Card(), Rating.Good, T0)
    assert memory.stability == card.stability == DEFAULT_WEIGHTS[2]  # FSRS's first "Good" stability
    levels = [recall(memory, T0 + timedelta(days=d)) for d in (0, 1, 3, 10, 100)]
    assert levels[0] == 1.0 and levels == sorted(levels, reverse=True) and levels[-1] < 0.6
    assert levels[2] == pytest.approx(scheduler.get_card_retrievability(card, T0 + timedelta(days=3)))
    # by definition of stability: recall is 90% after S days
    assert recall(memory, T0 + timedelta(days=memory.stability)) == pytest.approx(0.9, abs=0.02)
    assert recall(None, T0) == 1.0
    # a smaller memory scale forgets faster
    assert recall(memory, T0 + timedelta(days=3), scale=0.25) < levels[2]


def test_a_review_after_a_longer_gap_strengthens_memory_more() -> None:
    early = review(start_memory(T0), True, T0 + timedelta(days=1))
    late = review(start_memory(T0), True, T0 + timedelta(days=6))
    assert late.stability > early.stability > start_memory(T0).stability
    lapse = review(start_memory(T0), False, T0 + timedelta(days=6))
    assert lapse.stability < start_memory(T0).stability and lapse.lapses == 1


def test_only_the_first_answer_of_a_later_day_is_a_review() -> None:
    memory = start_memory(T0)
    assert not counts_as_review(memory, T0 + timedelta(hours=20))
    assert review(memory, True, T0 + timedelta(hours=20)) is memory
    assert counts_as_review(memory, T0 + timedelta(days=1, minutes=1))


def test_review_events_for_fitting() -> None:
    answers = [
        (T0, False),
        (T0 + timedelta(minutes=1), True),
        (T0 + timedelta(minutes=2), True),
        (T0 + timedelta(days=2), False),
        (T0 + timedelta(days=2, minutes=1), True),
        (T0 + timedelta(days=5), True),
    ]
    assert review_events(answers) == [
        (T0 + timedelta(minutes=1), True),
        (T0 + timedelta(days=2), False),
        (T0 + timedelta(days=5), True),
    ]
    assert review_events([(T0, False)]) == []
