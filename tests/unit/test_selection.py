from datetime import UTC, datetime, timedelta

import pytest

from app.domain.bkt import BktParams
from app.domain.content import Exercise, Skill, build_graph
from app.domain.memory import start_memory
from app.domain.selection import (
    POLICIES,
    PolicyConfig,
    StudentView,
    choose_next_exercise,
    fixed_order,
    lowest_mastery_first,
    predicted_success,
)
from app.domain.tracking import HYPOTHESES, SkillState, StudentModel

NOW = datetime(2026, 3, 1, 12, tzinfo=UTC)
P = BktParams(prior=0.1, learn=0.2, guess=0.2, slip=0.1)
NO_EXPLORE = PolicyConfig(explore_rate=0.0)


def ex(eid: str, *skills: str, difficulty: float = 0.5) -> Exercise:
    return Exercise(eid, skills, "?", "numeric", ("1",), difficulty)


@pytest.fixture
def graph():
    skills = [
        Skill("count", "Counting"),
        Skill("add", "Adding", prerequisites=("count",)),
        Skill("subtract", "Subtracting", prerequisites=("count",)),
        Skill("multiply", "Multiplying", prerequisites=("add",)),
    ]
    exercises = [ex(f"{s.id}-{i}", s.id, difficulty=0.1 + 0.2 * i) for s in skills for i in range(5)]
    exercises.append(ex("mixed", "multiply", "subtract"))
    return build_graph(skills, exercises)


PARAMS = dict.fromkeys(["count", "add", "subtract", "multiply"], P)


def state(p: float, attempts: int = 3, practiced: datetime = NOW, mastered: bool | None = None) -> SkillState:
    """A skill state; an earned one (p >= 0.95 unless ``mastered`` says) has its memory from ``practiced``."""
    earned = p >= 0.95 if mastered is None else mastered
    return SkillState(
        p,
        [p] * len(HYPOTHESES),
        attempts=attempts,
        correct_count=attempts,
        last_practiced_at=practiced,
        mastered_at=practiced if earned else None,
        memory=start_memory(practiced) if earned else None,
    )


def view(skills: dict[str, SkillState] | None = None, today: tuple[str, ...] = (), **kwargs) -> StudentView:
    """``today``: skills answered earlier today, most recent first."""
    return StudentView(
        model=StudentModel(skills=skills or {}),
        now=NOW,
        recent_skill_ids=today,
        recent_at=[NOW - timedelta(minutes=i + 1) for i in range(len(today))],
        **kwargs,
    )


def test_starts_with_the_root_skill_and_explains(graph) -> None:
    rec = choose_next_exercise(graph, PARAMS, view(), NO_EXPLORE, seed=1)
    assert rec.skill_id == "count" and rec.exercise_id.startswith("count-")
    assert rec.reason == "learn" and rec.explanation.startswith("New skill: Counting.")
    assert (
        "needs nothing else first" in rec.explanation and "prerequisites are mastered" not in rec.explanation
    )
    details = rec.details
    assert details["skill"]["id"] == "count" and details["target_success"] == 0.7
    assert details["skill"]["status"] == "not_started"
    assert set(details["blocked"]) == {"add", "subtract", "multiply"}
    assert details["blocked"]["multiply"] == ["add"]


def test_a_new_skill_names_the_prerequisites_it_builds_on(graph) -> None:
    rec = choose_next_exercise(graph, PARAMS, view({"count": state(0.97)}), NO_EXPLORE, seed=1)
    assert rec.reason == "learn" and rec.skill_id in {"add", "subtract"}
    assert "because you've mastered Counting" in rec.explanation
    assert "%" not in rec.explanation and "probability" not in rec.explanation  # words, not statistics


def test_never_a_skill_with_unready_prerequisites(graph) -> None:
    skills = {"count": state(0.97), "add": state(0.5), "subtract": state(0.97), "multiply": state(0.0, 0)}
    for seed in range(20):
        rec = choose_next_exercise(graph, PARAMS, view(skills), NO_EXPLORE, seed=seed)
        assert rec.skill_id == "add"


def test_prefers_the_largest_expected_gain(graph) -> None:
    skills = {"count": state(0.97), "add": state(0.8), "subtract": state(0.3)}
    rec = choose_next_exercise(graph, PARAMS, view(skills), NO_EXPLORE, seed=1)
    assert rec.skill_id == "subtract" and rec.details["alternatives"][0]["id"] == "add"


def test_interleaves_instead_of_massing_on_one_skill(graph) -> None:
    skills = {"count": state(0.97), "add": state(0.45), "subtract": state(0.4)}
    # "subtract" has the larger gain, but it was just practised: the other ready skill goes first.
    rec = choose_next_exercise(
        graph, PARAMS, view(skills, last_skill_id="subtract", today=("subtract",)), NO_EXPLORE, seed=1
    )
    assert rec.skill_id == "add" and rec.reason == "learn" and "switching between skills" in rec.explanation
    # A skill practised enough today waits for another day while something else is open.
    busy = ("add",) * 3 + ("subtract",) * 6
    rec = choose_next_exercise(graph, PARAMS, view(skills, last_skill_id="add", today=busy), NO_EXPLORE, 1)
    assert rec.skill_id == "add"
    # With a single ready skill there is nothing to interleave with: keep going.
    alone = {"count": state(0.97), "add": state(0.45), "subtract": state(0.99)}
    rec = choose_next_exercise(graph, PARAMS, view(alone, last_skill_id="add", today=("add",)), NO_EXPLORE, 1)
    assert rec.skill_id == "add" and rec.reason == "continue"


def test_review_is_due_when_recall_falls_and_is_interleaved(graph) -> None:
    old = NOW - timedelta(days=6)
    skills = {"count": state(0.99, practiced=old), "add": state(0.4)}
    rec = choose_next_exercise(graph, PARAMS, view(skills), NO_EXPLORE, seed=1)
    assert rec.reason == "review" and rec.skill_id == "count"
    assert rec.details["review"]["days_since_practice"] == 6 and rec.details["review"]["recall"] < 0.9
    assert rec.explanation == (
        "Review: you last practised Counting 6 days ago. A quick review now helps you keep it."
    )
    after = choose_next_exercise(graph, PARAMS, view(skills, last_reason="review"), NO_EXPLORE, seed=1)
    assert after.reason != "review"
    fresh = {"count": state(0.99, practiced=NOW - timedelta(hours=2)), "add": state(0.4)}
    assert choose_next_exercise(graph, PARAMS, view(fresh), NO_EXPLORE, seed=1).reason != "review"


def test_reviews_expand_with_the_memory_model(graph) -> None:
    # After a successful spaced review the skill stays mastered for longer before it is due again.
    from app.domain.memory import review

    def days_until_due(skill: SkillState, since: datetime) -> int:
        for days in range(1, 400):
            at = since + timedelta(days=days)
            rec = choose_next_exercise(
                graph,
                PARAMS,
                StudentView(StudentModel(skills={"count": skill, "add": state(0.4, practiced=at)}), now=at),
                NO_EXPLORE,
                1,
            )
            if rec.reason == "review":
                return days
        raise AssertionError("never due")

    first = state(0.99, practiced=NOW)
    strengthened = state(0.99, practiced=NOW)
    assert strengthened.memory is not None
    for gap in (2, 6, 14):  # three successful reviews at growing gaps
        strengthened.memory = review(strengthened.memory, True, NOW + timedelta(days=gap))
    assert days_until_due(strengthened, NOW + timedelta(days=14)) > days_until_due(first, NOW)


def test_exploration_picks_an_unstarted_ready_skill(graph) -> None:
    skills = {"count": state(0.97), "add": state(0.4)}
    rec = choose_next_exercise(graph, PARAMS, view(skills), PolicyConfig(explore_rate=1.0), seed=4)
    assert rec.reason == "explore" and rec.skill_id == "subtract"


def test_wheel_spinning_routes_to_a_weak_prerequisite(graph) -> None:
    # "count" was earned, but a review just failed (estimate in the due range, practised today).
    skills = {"count": state(0.85, mastered=True), "add": state(0.3, attempts=10), "subtract": state(0.99)}
    rec = choose_next_exercise(graph, PARAMS, view(skills, today=("count",)), NO_EXPLORE, seed=1)
    assert rec.reason == "remediate_prerequisite" and rec.skill_id == "count"
    assert rec.details["remediation"] == {"for_skill": "add", "attempts": 10}
    back = choose_next_exercise(
        graph,
        PARAMS,
        view(skills, today=("count",), last_reason="remediate_prerequisite"),
        NO_EXPLORE,
        seed=1,
    )
    assert back.skill_id == "add"
    skills["add"] = state(0.3, attempts=11)
    assert (
        choose_next_exercise(graph, PARAMS, view(skills, today=("count",)), NO_EXPLORE, seed=1).skill_id
        == "add"
    )


def test_wheel_spinning_on_solid_prerequisites_keeps_going(graph) -> None:
    skills = {"count": state(0.99), "add": state(0.3, attempts=10), "subtract": state(0.99)}
    rec = choose_next_exercise(graph, PARAMS, view(skills), NO_EXPLORE, seed=1)
    assert rec.skill_id == "add" and "taking a few tries" in rec.explanation


def test_a_forgotten_prerequisite_is_refreshed_before_its_dependent(graph) -> None:
    skills = {
        "count": state(0.99, practiced=NOW - timedelta(days=3)),
        "add": state(0.3, attempts=4),
        "subtract": state(0.99, practiced=NOW - timedelta(hours=1)),
    }
    rec = choose_next_exercise(graph, PARAMS, view(skills, last_reason="review"), NO_EXPLORE, seed=1)
    assert rec.reason == "remediate_prerequisite" and rec.skill_id == "count"
    assert "Adding builds on it" in rec.explanation and "3 days ago" in rec.explanation
    # Forgotten for good (needs relearning), it closes its dependents: a review, before anything else.
    skills["count"] = state(0.99, practiced=NOW - timedelta(days=60))
    rec = choose_next_exercise(graph, PARAMS, view(skills, last_reason="review"), NO_EXPLORE, seed=1)
    assert rec.reason == "review" and rec.skill_id == "count"


def test_difficulty_follows_an_adaptive_target(graph) -> None:
    skills = {"count": state(0.5)}
    winning = choose_next_exercise(graph, PARAMS, view(skills, recent_correct=[True] * 10), NO_EXPLORE, 1)
    losing = choose_next_exercise(graph, PARAMS, view(skills, recent_correct=[False] * 10), NO_EXPLORE, 1)
    assert winning.details["target_success"] < 0.7 < losing.details["target_success"]
    assert winning.details["difficulty"] > losing.details["difficulty"]
    v = view(skills)
    assert predicted_success(v, graph, PARAMS, "count-0", NO_EXPLORE) > predicted_success(
        v, graph, PARAMS, "count-4", NO_EXPLORE
    )


def test_no_repeat_within_the_window(graph) -> None:
    skills = {"count": state(0.5)}
    recent = ["count-0", "count-1", "count-2", "count-3"]
    rec = choose_next_exercise(graph, PARAMS, view(skills, recent_exercise_ids=recent), NO_EXPLORE, 1)
    assert rec.exercise_id == "count-4"


def test_opt_out_gives_the_fixed_sequence(graph) -> None:
    skills = {"count": state(0.99), "add": state(0.2)}
    picks = [
        choose_next_exercise(graph, PARAMS, view(skills, personalized=False, n_responses=n), seed=n)
        for n in range(7)
    ]
    assert [p.exercise_id for p in picks] == [
        "count-0",
        "count-1",
        "count-2",
        "count-3",
        "count-4",
        "add-0",
        "add-1",
    ]
    assert {p.reason for p in picks} == {"fixed_order"} and picks[0].policy == "fixed_sequence"


def test_deterministic_under_a_seed(graph) -> None:
    runs = {
        choose_next_exercise(graph, PARAMS, view(), PolicyConfig(explore_rate=0.5), 42).exercise_id
        for _ in range(5)
    }
    assert len(runs) == 1


def test_all_mastered(graph) -> None:
    skills = {s: state(0.99) for s in PARAMS}
    rec = choose_next_exercise(graph, PARAMS, view(skills), NO_EXPLORE)
    assert rec.exercise_id is None and rec.reason == "all_mastered"


def test_baselines(graph) -> None:
    skills = {"count": state(0.99), "add": state(0.2)}
    assert fixed_order(graph, PARAMS, view(skills)).skill_id == "add"
    # OATutor's rule ignores prerequisites: "multiply" (never practised, P(L)=prior) is the lowest.
    low = lowest_mastery_first(graph, PARAMS, view(skills), seed=3)
    assert low.skill_id in {"multiply", "subtract"}
    for name, policy in POLICIES.items():
        rec = policy(graph, PARAMS, view(skills), PolicyConfig(), 7)
        assert rec.exercise_id in graph.exercises, name
