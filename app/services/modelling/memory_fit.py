"""Fitting the memory model (FSRS) to a school's own log, when it has answers spread over time.

The defaults are FSRS-6's published parameters, fitted on flashcard reviews; skills practised in
school may be forgotten faster or slower. ``fit_memory`` turns the log into FSRS review logs (one
card per student and skill; its reviews are the answers ``memory.review_events`` selects, the same
rule the tracker uses) and runs FSRS's own optimizer. The optimizer needs PyTorch, which the
service does not install for this one command: ``pip install 'fsrs[optimizer]'``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.domain.errors import InvalidInput
from app.domain.memory import DEFAULT_WEIGHTS, check_weights, review_events
from app.models import Response, ResponseSkill

MIN_REVIEWS = 400  # fewer reviews than this give FSRS too little to fit 21 parameters


@dataclass(frozen=True)
class MemoryFit:
    cards: int  # (student, skill) pairs with at least one review
    reviews: int
    weights: tuple[float, ...]


def _answers(session: Session) -> Iterator[tuple[tuple[str, str], list[tuple[datetime, bool]]]]:
    rows = session.execute(
        select(Response.student_id, ResponseSkill.skill_id, Response.created_at, Response.credited)
        .join(ResponseSkill, ResponseSkill.response_id == Response.id)
        .order_by(Response.student_id, ResponseSkill.skill_id, Response.id)
        .execution_options(yield_per=5000)
    )
    key: tuple[str, str] | None = None
    answers: list[tuple[datetime, bool]] = []
    for student_id, skill_id, at, credited in rows:
        if (student_id, skill_id) != key:
            if key is not None:
                yield key, answers
            key, answers = (student_id, skill_id), []
        answers.append((at, bool(credited)))
    if key is not None:
        yield key, answers


def review_logs(session: Session) -> list[object]:
    """The log as ``fsrs.ReviewLog`` objects (card ids numbered per student and skill)."""
    from fsrs import Rating, ReviewLog

    logs: list[object] = []
    for card_id, (_, answers) in enumerate(_answers(session), start=1):
        for at, success in review_events(answers):
            logs.append(
                ReviewLog(
                    card_id=card_id,
                    rating=Rating.Good if success else Rating.Again,
                    review_datetime=at.astimezone(UTC),
                    review_duration=None,
                )
            )
    return logs


def fit_memory(session: Session) -> MemoryFit:
    """FSRS parameters fitted to the log. InvalidInput when the log is too thin or PyTorch is missing."""
    logs = review_logs(session)
    cards = len({log.card_id for log in logs})  # type: ignore[attr-defined]
    if len(logs) < MIN_REVIEWS:
        raise InvalidInput(
            f"The log has {len(logs)} reviews (answers on later days after a right one); "
            f"fitting the memory model needs at least {MIN_REVIEWS}. Keep the defaults."
        )
    try:
        import importlib

        importlib.import_module("torch")  # the optimizer's own dependency, checked first for a clear message
        from fsrs import Optimizer
    except ImportError as error:
        raise InvalidInput(
            "Fitting the memory model needs FSRS's optimizer, which needs PyTorch: "
            "pip install 'fsrs[optimizer]' (into the service's .venv), then run this again."
        ) from error
    weights = tuple(float(w) for w in Optimizer(logs).compute_optimal_parameters())  # type: ignore[arg-type]
    check_weights(weights)
    return MemoryFit(cards, len(logs), weights)


__all__ = ["DEFAULT_WEIGHTS", "MemoryFit", "fit_memory", "review_logs"]
