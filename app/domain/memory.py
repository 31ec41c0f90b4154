"""Memory of a learned skill over time: FSRS, through the ``fsrs`` package.

BKT's P(L) says whether a skill has been learned; it never falls without evidence. Memory
says whether it can still be recalled *now*. We use FSRS (Free Spaced Repetition Scheduler,
the model behind Anki; Ye et al. 2022, 2023), because it has exactly the structure the
tutor needs and a maintained implementation with an optimizer:

* **stability** S (days): the time until predicted recall falls to 90 %;
* **retrievability** R(t) = (1 + F t / S)^(-decay): predicted recall t days after the last
  successful retrieval (a power law, flatter than an exponential);
* a **successful retrieval** multiplies S by a factor that is larger the lower R was at the
  time (the spacing effect: a review after a long gap strengthens memory more than one
  in the same sitting); a **failed retrieval** (a lapse) shrinks S.

How the tutor feeds it:

* the memory of a skill starts when the skill is first *earned* (declared mastered), as a
  first successful review;
* afterwards, the first answer on the skill each day is a review (right: ``Good``,
  wrong: ``Again``). Later answers the same day change nothing here: massed practice in one
  sitting must not inflate stability (FSRS's own long-term model also learns from the first
  review of each day only; its short-term formula would still grow S a little per answer);
* recall is read with the package's own ``get_card_retrievability`` (whole days elapsed).

Parameters: FSRS-6's published defaults (fitted on millions of Anki reviews) until a
school's logs with timestamps are used to fit them (``fsrs.Optimizer``, optional: it needs
PyTorch); see docs/POLICY.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

from fsrs import Card, Rating, Scheduler, State
from fsrs.scheduler import DEFAULT_PARAMETERS

DEFAULT_WEIGHTS: tuple[float, ...] = tuple(DEFAULT_PARAMETERS)


@dataclass(frozen=True, slots=True)
class Memory:
    """The memory of one learned skill: FSRS stability (days) and difficulty (1-10)."""

    stability: float
    difficulty: float
    last_review_at: datetime  # the last answer that counted as a review (the first of its day)
    reviews: int = 1
    lapses: int = 0


@lru_cache(maxsize=16)
def _scheduler(weights: tuple[float, ...]) -> Scheduler:
    # No learning steps: a skill reaches memory already learned (BKT decided that), so its
    # card goes straight to the review state; no fuzzing: the tutor is deterministic.
    return Scheduler(parameters=weights, learning_steps=(), relearning_steps=(), enable_fuzzing=False)


def check_weights(weights: tuple[float, ...]) -> None:
    """Raise ValueError naming the weights that FSRS refuses."""
    _scheduler(tuple(weights))


def _utc(moment: datetime) -> datetime:
    # fsrs insists on datetime.timezone.utc itself, not an equivalent tzinfo.
    return moment.astimezone(UTC) if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _card(memory: Memory, scale: float = 1.0) -> Card:
    # card_id given: without one, fsrs.Card sleeps 1 ms to make its id unique.
    return Card(
        card_id=0,
        state=State.Review,
        step=None,
        stability=memory.stability * scale,
        difficulty=memory.difficulty,
        last_review=_utc(memory.last_review_at),
        due=_utc(memory.last_review_at),
    )


def start_memory(now: datetime, weights: tuple[float, ...] = DEFAULT_WEIGHTS) -> Memory:
    """The memory of a skill just earned: a first successful review at ``now``."""
    card, _ = _scheduler(weights).review_card(Card(card_id=0), Rating.Good, _utc(now))
    assert card.stability is not None and card.difficulty is not None
    return Memory(card.stability, card.difficulty, now)


def recall(
    memory: Memory | None, now: datetime, weights: tuple[float, ...] = DEFAULT_WEIGHTS, scale: float = 1.0
) -> float:
    """Predicted probability in [0, 1] of recalling the skill at ``now`` (1 when no memory yet).

    ``scale`` multiplies the stability: a student who forgets faster than FSRS's defaults (fitted on
    flashcard reviews) has a scale below 1 (``tracking`` infers it from the student's reviews).
    """
    if memory is None or now <= memory.last_review_at:
        return 1.0
    return float(_scheduler(weights).get_card_retrievability(_card(memory, scale), _utc(now)))


def counts_as_review(memory: Memory, now: datetime) -> bool:
    """Only the first answer of a later day is a review (see the module docstring)."""
    return (_utc(now) - _utc(memory.last_review_at)).days >= 1


def review(
    memory: Memory, success: bool, now: datetime, weights: tuple[float, ...] = DEFAULT_WEIGHTS
) -> Memory:
    """The memory after an answer at ``now``: a review when it is the first of a later day."""
    if not counts_as_review(memory, now):
        return memory
    card, _ = _scheduler(weights).review_card(
        _card(memory), Rating.Good if success else Rating.Again, _utc(now)
    )
    assert card.stability is not None and card.difficulty is not None
    return Memory(card.stability, card.difficulty, now, memory.reviews + 1, memory.lapses + int(not success))


def days_until_recall(memory: Memory, target: float, weights: tuple[float, ...] = DEFAULT_WEIGHTS) -> float:
    """Days after the last review at which predicted recall falls to ``target`` (in (0, 1))."""
    decay = -weights[20]
    factor = 0.9 ** (1 / decay) - 1
    return float(memory.stability / factor * (target ** (1 / decay) - 1))


def review_events(answers: Iterable[tuple[datetime, bool]]) -> list[tuple[datetime, bool]]:
    """The answers of one student on one skill that count as reviews for fitting the memory model:
    from the first right one on, the first answer of each later day (``counts_as_review``), as
    (time, success). ``answers``: (time, credited) in time order."""
    events: list[tuple[datetime, bool]] = []
    for at, success in answers:
        if not events:
            if success:
                events.append((at, True))
        elif (_utc(at) - _utc(events[-1][0])).days >= 1:
            events.append((at, success))
    return events
