"""Property tests (Hypothesis): BKT, the paced tracker and the content validator on arbitrary input."""

from __future__ import annotations

import math
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.domain.bkt import BktParams, parameter_problems, posterior, predict_correct, trace, update_mastery
from app.domain.errors import ContentError
from app.domain.tracking import DEFAULT_RULES, MasteryStatus, StudentModel, apply_answer
from app.services.tutoring.content_files import read_content

SHIPPED = Path(__file__).resolve().parents[2] / "content"
probability = st.floats(0.0, 1.0, allow_nan=False)
open_probability = st.floats(1e-6, 1 - 1e-6, allow_nan=False)
below_half = st.floats(0.0, 0.4999, allow_nan=False)


@st.composite
def bkt_params(draw: st.DrawFn, forget: st.SearchStrategy[float] = probability) -> BktParams:
    return BktParams(
        prior=draw(probability),
        learn=draw(probability),
        guess=draw(below_half),
        slip=draw(below_half),
        forget=draw(forget),
    )


def in_unit_interval(x: float) -> bool:
    return math.isfinite(x) and 0.0 <= x <= 1.0


@given(params=bkt_params(), p=probability, correct=st.booleans())
def test_every_bkt_quantity_is_a_probability(params: BktParams, p: float, correct: bool) -> None:
    assert in_unit_interval(predict_correct(p, params))
    assert in_unit_interval(posterior(p, correct, params))
    assert in_unit_interval(update_mastery(p, correct, params))


@given(params=bkt_params(), outcomes=st.lists(st.booleans(), max_size=200))
def test_a_replayed_sequence_stays_in_the_unit_interval(params: BktParams, outcomes: list[bool]) -> None:
    for step in trace(outcomes, params):
        assert in_unit_interval(step.p_mastery_before)
        assert in_unit_interval(step.p_correct)
        assert in_unit_interval(step.p_mastery_after)


@given(
    p=st.floats(1e-3, 1 - 1e-3), guess=st.floats(1e-3, 0.499), slip=st.floats(1e-3, 0.499), learn=probability
)
def test_evidence_moves_mastery_the_right_way(p: float, guess: float, slip: float, learn: float) -> None:
    """Guess and slip below 0.5 (all the tracker accepts): a right answer raises belief, a wrong one
    lowers it, strictly (away from the edges, where one observation can be decisive)."""
    params = BktParams(prior=0.5, learn=learn, guess=guess, slip=slip)
    assert posterior(p, False, params) < p < posterior(p, True, params)


@given(params=bkt_params(forget=st.just(0.0)), p=open_probability)
def test_a_right_answer_never_leaves_mastery_below_a_wrong_one(params: BktParams, p: float) -> None:
    """Standard BKT (no forgetting): after learning too, right >= wrong, strictly unless learn = 1."""
    right, wrong = update_mastery(p, True, params), update_mastery(p, False, params)
    assert right >= wrong
    if params.learn < 1 - 1e-9 and params.guess > 1e-9 and params.slip > 1e-9:
        assert right > wrong


@given(
    params=st.dictionaries(st.sampled_from(["a", "b", "c"]), bkt_params(), min_size=1),
    answers=st.lists(st.tuples(st.integers(0, 2), st.booleans()), max_size=60),
)
@settings(suppress_health_check=[HealthCheck.too_slow])
@pytest.mark.slow
def test_the_paced_tracker_keeps_probabilities_and_a_speed_posterior(
    params: dict[str, BktParams],
    answers: list[tuple[int, bool]],
) -> None:
    model = StudentModel()
    skills = sorted(params)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    for index, correct in answers:
        tagged = skills[: 1 + index % len(skills)]
        now += timedelta(hours=index * 7)  # answers spread over days: memories start, decay and are reviewed
        for step in apply_answer(model, tagged, correct, params, now=now):
            assert in_unit_interval(step.p_mastery_after)
            assert in_unit_interval(step.p_mastery_paced_after)
            assert in_unit_interval(step.estimate_before) and in_unit_interval(step.estimate_after)
            state = model.skills[step.skill_id]
            assert step.mastered == (
                model.status(step.skill_id, params[step.skill_id], now) is MasteryStatus.MASTERED
            )
            assert state.mastered_at is None or state.correct_count >= DEFAULT_RULES.min_correct
            if len(tagged) == 1 and params[step.skill_id].forget == 0:
                # the screens' rule: a right, unhinted answer never shows a fall
                if correct:
                    assert step.estimate_after >= step.estimate_before - 1e-12
        assert all(w >= 0 for w in model.speed_weights)
        assert math.isclose(sum(model.speed_weights), 1.0, rel_tol=1e-9)
        for skill in skills:
            assert in_unit_interval(model.paced(skill, params[skill]))
            assert in_unit_interval(model.paced_correct(skill, params[skill], now))
            assert in_unit_interval(model.estimate(skill, params[skill], now))


# --- the content validator never crashes ---------------------------------------------------------

scalars = st.one_of(
    st.text(max_size=30),
    st.integers(-(2**63), 2**63 - 1),
    st.floats(),
    st.booleans(),
    st.sampled_from(["place-value", "numeric", "multiple_choice", "short_text", ""]),
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=10,
)
SKILL_KEYS = ["id", "name", "description", "prerequisites", "bkt"]
EXERCISE_KEYS = [
    "id",
    "skills",
    "prompt",
    "answer_kind",
    "choices",
    "answers",
    "difficulty",
    "hints",
    "solution",
]


def items(keys: list[str]) -> st.SearchStrategy[list[dict[str, Any]]]:
    key = st.sampled_from(keys) | st.text(min_size=1, max_size=8)
    bkt = st.dictionaries(st.sampled_from(["prior", "learn", "guess", "slip", "forget", "x"]), scalars)
    item = st.dictionaries(key, values | bkt, max_size=len(keys) + 2)
    return st.lists(item, max_size=4)


def documents(table: str, keys: list[str]) -> st.SearchStrategy[str]:
    """TOML text: structured documents near the real format, mutilated shipped files, or anything."""
    structured = st.dictionaries(st.sampled_from([table, "other"]), items(keys) | values, max_size=2)
    return st.one_of(
        structured.map(tomli_w.dumps),
        st.text(max_size=300),
        st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
    )


@st.composite
def mutilated(draw: st.DrawFn, text: str) -> str:
    start = draw(st.integers(0, len(text)))
    end = draw(st.integers(start, min(len(text), start + 200)))
    return text[:start] + draw(st.text(max_size=20)) + text[end:]


SHIPPED_SKILLS = (SHIPPED / "skills.toml").read_text(encoding="utf-8")
SHIPPED_EXERCISES = (SHIPPED / "exercises" / "whole-numbers.toml").read_text(encoding="utf-8")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    skills=documents("skill", SKILL_KEYS) | mutilated(SHIPPED_SKILLS),
    exercises=documents("exercise", EXERCISE_KEYS) | mutilated(SHIPPED_EXERCISES),
    raw_bytes=st.none() | st.binary(max_size=64),
)
@pytest.mark.slow
def test_the_content_validator_answers_every_input_with_a_graph_or_a_list_of_problems(
    skills: str,
    exercises: str,
    raw_bytes: bytes | None,
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        root = Path(directory) / "content"
        (root / "exercises").mkdir(parents=True)
        (root / "skills.toml").write_text(skills, encoding="utf-8", errors="surrogatepass")
        (root / "exercises" / "a.toml").write_text(exercises, encoding="utf-8", errors="surrogatepass")
        if raw_bytes is not None:  # not necessarily UTF-8 at all
            (root / "exercises" / "b.toml").write_bytes(raw_bytes)
        try:
            graph = read_content(root)
        except ContentError as error:
            assert error.problems and all(isinstance(p, str) and p for p in error.problems)
            return
    # Accepted: then it is a usable graph.
    assert graph.skills and graph.exercises
    for exercise in graph.exercises.values():
        assert set(exercise.skill_ids) <= set(graph.skills)
    for skill in graph.skills.values():
        assert set(skill.prerequisites) <= set(graph.skills)
        assert skill.bkt is None or not parameter_problems(
            {n: getattr(skill.bkt, n) for n in ("prior", "learn", "guess", "slip", "forget")}
        )
