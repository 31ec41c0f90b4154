"""Loading and storing the domain ``StudentModel`` (student row + mastery rows).

A student whose state was computed under parameters that are no longer current (``is_behind``) is read as
replayed: ``load_model`` replays their log under the current parameters (read-only; their next answer, or
the chunked replay, stores it), so no reader ever combines old rows with new parameters.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from app.domain.bkt import BktParams
from app.domain.memory import Memory
from app.domain.tracking import (
    HYPOTHESES,
    HYPOTHESIS_PRIOR,
    MasteryRules,
    SkillState,
    StudentModel,
    posterior_after,
    total_variation,
)
from app.models import Mastery, Response, Student, StudentBaseline

if TYPE_CHECKING:
    from app.services.tutoring.content import ContentSnapshot

# Before migration 0010 the model had one hypothesis per speed of this grid (no prior knowledge).
_OLD_SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0)


def _nearest_old_speed() -> list[int]:
    return [min(range(len(_OLD_SPEEDS)), key=lambda i: abs(_OLD_SPEEDS[i] - h[0])) for h in HYPOTHESES]


def by_hypothesis(values: list[float]) -> list[float]:
    """A stored P(L) list in today's shape; an old one (five speeds) spread over the nearest hypotheses,
    until ``flask rebuild-mastery`` replays the log (docs/ARCHITECTURE.md)."""
    if len(values) != len(_OLD_SPEEDS):
        return list(values)
    return [values[i] for i in _nearest_old_speed()]


def weights_of(stored: list[float] | None) -> list[float]:
    """A student's hypothesis posterior (the prior when none is stored; an old five-speed one reshaped)."""
    if not stored:
        return list(HYPOTHESIS_PRIOR)
    if len(stored) != len(_OLD_SPEEDS):
        return list(stored)
    spread = [w * stored[i] for w, i in zip(HYPOTHESIS_PRIOR, _nearest_old_speed(), strict=True)]
    total = sum(spread)
    return [w / total for w in spread] if total > 0 else list(HYPOTHESIS_PRIOR)


def memory_of(row: Any) -> Memory | None:
    """The FSRS memory stored on a mastery row (or a row of its columns); None before the skill is earned."""
    if row.memory_stability is None or row.memory_difficulty is None or row.memory_reviewed_at is None:
        return None
    return Memory(
        row.memory_stability,
        row.memory_difficulty,
        row.memory_reviewed_at,
        row.memory_reviews,
        row.memory_lapses,
    )


def state_of(row: Mastery) -> SkillState:
    return SkillState(
        p_mastery=row.p_mastery,
        p_not_mastered=row.p_not_mastered,
        p_by_speed=by_hypothesis(list(row.p_by_speed)),
        attempts=row.attempts,
        correct_count=row.correct_count,
        mastered_at=row.mastered_at,
        attempts_at_mastery=row.attempts_at_mastery,
        last_practiced_at=row.updated_at,
        review_successes=row.review_successes,
        memory=memory_of(row),
        pace_check_at=row.pace_check_at,
    )


def row_values(state: SkillState) -> dict[str, Any]:
    """Mastery columns for a skill state (everything but the keys and parameters_id)."""
    memory = state.memory
    return {
        "p_mastery": state.p_mastery,
        "p_not_mastered": state.belief.unknown,
        "p_by_speed": list(state.p_by_speed),
        "attempts": state.attempts,
        "correct_count": state.correct_count,
        "mastered_at": state.mastered_at,
        "attempts_at_mastery": state.attempts_at_mastery,
        "updated_at": state.last_practiced_at,
        "review_successes": state.review_successes,
        "memory_stability": memory.stability if memory else None,
        "memory_difficulty": memory.difficulty if memory else None,
        "memory_reviewed_at": memory.last_review_at if memory else None,
        "memory_reviews": memory.reviews if memory else 0,
        "memory_lapses": memory.lapses if memory else 0,
    }


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def state_to_json(state: SkillState) -> dict[str, Any]:
    """A skill state as JSON (``student_baselines.skills``): the mastery columns, datetimes in ISO 8601."""
    return {
        name: value.isoformat() if isinstance(value, datetime) else value
        for name, value in row_values(state).items()
    }


def state_from_json(values: dict[str, Any]) -> SkillState:
    memory = None
    if values.get("memory_stability") is not None:
        memory = Memory(
            values["memory_stability"],
            values["memory_difficulty"],
            datetime.fromisoformat(values["memory_reviewed_at"]),
            values.get("memory_reviews", 0),
            values.get("memory_lapses", 0),
        )
    return SkillState(
        p_mastery=values["p_mastery"],
        p_not_mastered=values.get("p_not_mastered"),  # older baselines: 1 - p_mastery
        p_by_speed=by_hypothesis(list(values["p_by_speed"])),
        attempts=values["attempts"],
        correct_count=values["correct_count"],
        mastered_at=_when(values["mastered_at"]),
        attempts_at_mastery=values["attempts_at_mastery"],
        # older baselines named the last answer's time last_practiced_at
        last_practiced_at=_when(values.get("updated_at", values.get("last_practiced_at"))),
        review_successes=values["review_successes"],
        memory=memory,
    )


def refresh_answer_counts(session: Session, student_ids: Collection[str]) -> None:
    """Recount ``answer_count`` and ``last_answer_at`` of these students from the log (and what was
    folded into their baseline when old answers were purged)."""
    folded = select(StudentBaseline.answer_count).where(StudentBaseline.student_id == Student.id)
    folded_last = select(StudentBaseline.last_answer_at).where(StudentBaseline.student_id == Student.id)
    answers = select(func.count()).where(Response.student_id == Student.id).scalar_subquery() + func.coalesce(
        folded.scalar_subquery(), 0
    )
    last = func.coalesce(
        select(func.max(Response.created_at)).where(Response.student_id == Student.id).scalar_subquery(),
        folded_last.scalar_subquery(),
    )
    ids = list(student_ids)
    for start in range(0, len(ids), 500):
        session.execute(
            update(Student)
            .where(Student.id.in_(ids[start : start + 500]))
            .values(answer_count=answers, last_answer_at=last)
        )


def mastery_rows(session: Session, student: Student) -> dict[str, Mastery]:
    """The student's stored mastery rows, by skill."""
    return {m.skill_id: m for m in session.scalars(select(Mastery).where(Mastery.student_id == student.id))}


def replayed_model(
    session: Session, student_id: str, snapshot: ContentSnapshot, rules: MasteryRules
) -> StudentModel:
    """The student's log replayed under ``snapshot.params`` in a read snapshot of its own, which holds no lock
    (the session must not be in a transaction; it is not, afterwards)."""
    from app.services.modelling.mastery import begin_read_snapshot, replay_student  # it imports this module

    begin_read_snapshot(session)
    try:
        return replay_student(session, student_id, snapshot.params, rules)
    finally:
        session.rollback()


def is_behind(student: Student, snapshot: ContentSnapshot) -> bool:
    """Whether the student's stored state was computed under parameters that are no longer current (a fit
    or a rebuild since, and the chunked replay has not reached them yet). A student without answers has no
    state to replay. Costs nothing: both numbers are already read (the student row, the content revision)."""
    return student.answer_count > 0 and student.parameters_revision < snapshot.parameters_revision


def load_model(
    session: Session, student: Student, snapshot: ContentSnapshot, rules: MasteryRules
) -> tuple[StudentModel, dict[str, Mastery]]:
    """The student's model under the current parameters, and their stored mastery rows (by skill).

    Normally the rows themselves. For a student ``is_behind``, the replay of their log under
    ``snapshot.params`` (from their retention baseline, if any) instead: what the chunked replay will store,
    so every reader shows one state (docs/ARCHITECTURE.md, "Replays in chunks"). Nothing is written here.
    """
    rows = mastery_rows(session, student)
    if is_behind(student, snapshot):
        from app.services.modelling.mastery import replay_student  # mastery imports this module

        return replay_student(session, student.id, snapshot.params, rules), rows
    model = StudentModel(
        speed_weights=weights_of(student.speed_weights),
        skills={skill_id: state_of(row) for skill_id, row in rows.items()},
        pace_drift=student.pace_drift,
    )
    return model, rows


def answer_model(
    session: Session,
    student: Student,
    skill_ids: Sequence[str],
    correct: bool,
    params: Mapping[str, BktParams],
    *,
    now: datetime,
    rules: MasteryRules,
) -> tuple[StudentModel, dict[str, Mastery]]:
    """What an answer of a student who is not ``is_behind`` needs of their model, and those rows: the
    answered skills, and the skills the posterior after this answer could earn (their ``pace_check_at``
    reached by the drift it brings, or not worked out yet). Two reads whatever the number of skills the
    student has practised; ``apply_answer`` on this model earns what it would on the whole one."""
    answered = {
        row.skill_id: row
        for row in session.scalars(
            select(Mastery).where(Mastery.student_id == student.id, Mastery.skill_id.in_(list(skill_ids)))
        )
    }
    model = StudentModel(
        speed_weights=weights_of(student.speed_weights),
        skills={skill_id: state_of(row) for skill_id, row in answered.items()},
        pace_drift=student.pace_drift,
    )
    posterior = posterior_after(model, skill_ids, correct, params, now=now, rules=rules)
    drift = model.pace_drift + (total_variation(posterior, model.speed_weights) if posterior else 0.0)
    due = select(Mastery).where(
        Mastery.student_id == student.id,
        Mastery.skill_id.not_in(list(skill_ids)),
        Mastery.mastered_at.is_(None),
        Mastery.correct_count >= rules.min_correct,
        or_(Mastery.pace_check_at.is_(None), Mastery.pace_check_at <= drift),
    )
    rows = dict(answered)
    for row in session.scalars(due):
        rows[row.skill_id] = row
        model.skills[row.skill_id] = state_of(row)
    return model, rows
