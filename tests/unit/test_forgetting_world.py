"""The forgetting world (app/domain/worlds.py): its hidden students, the loop, the report and the targets."""

from __future__ import annotations

import ast
import json
import math
import os
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.domain.bkt import BktParams
from app.domain.content import ContentGraph, Exercise, Skill, build_graph
from app.domain.selection import POLICIES, PolicyConfig, Recommendation, StudentView
from app.domain.simulation import START
from app.domain.tracking import MasteryStatus, StudentModel, apply_answer
from app.domain.worlds import (
    DEFAULT_POLICIES,
    Estimate,
    ForgettingConfig,
    ForgettingReport,
    ForgettingResult,
    ForgettingWorld,
    HiddenStudent,
    check_targets,
    format_forgetting,
    format_targets,
    mean_ci,
    pace_recovery,
    ratio_ci,
    run_forgetting,
    run_student,
    spearman,
    summarize_tercile,
    terciles,
)

ROOT = Path(__file__).resolve().parents[2]
Params = Mapping[str, BktParams]


def ex(eid: str, *skills: str, difficulty: float = 0.5) -> Exercise:
    return Exercise(eid, skills, "?", "numeric", ("1",), difficulty)


@pytest.fixture(scope="module")
def graph() -> ContentGraph:
    skills = [Skill("a", "A"), Skill("b", "B", prerequisites=("a",)), Skill("c", "C", prerequisites=("a",))]
    exercises = [ex(f"{s.id}-{i}", s.id, difficulty=i / 5) for s in skills for i in range(5)]
    exercises.append(ex("bc", "b", "c"))
    return build_graph(skills, exercises)


class Fixed:
    """A stand-in random stream: always the same number (to drive the world's rules exactly)."""

    def __init__(self, value: float) -> None:
        self.value = value

    def random(self) -> float:
        return self.value


def student(graph: ContentGraph, index: int = 0, **world: object) -> HiddenStudent:
    base = {"prior": 0.0, "speed_spread": 0.0, "skill_spread": 0.0}
    return HiddenStudent(graph, ForgettingConfig(world=ForgettingWorld(**{**base, **world})), index)


def test_modules_import_only_stdlib_and_the_domain() -> None:
    for name in ("worlds.py", "spaced_baseline.py"):
        tree = ast.parse((ROOT / "app" / "domain" / name).read_text())
        imported = [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
        imported += [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module]
        allowed = sys.stdlib_module_names | {"__future__"}
        outside = [m for m in imported if m.split(".")[0] not in allowed and not m.startswith("app.domain")]
        assert imported and outside == []


# --- the hidden student ---------------------------------------------------------------------------------


def test_recall_curves() -> None:
    world = ForgettingWorld()
    assert world.recall(0, 3) == 1.0 and world.recall(3, 3) == pytest.approx(math.exp(-1))
    assert world.recall(-1, 3) == 1.0  # a clock that moved back is no time passed
    power = ForgettingWorld(curve="power")
    assert power.recall(3, 3) == pytest.approx(0.5) and power.recall(30, 3) == pytest.approx(1 / 11)
    assert power.recall(30, 3) > world.recall(30, 3)  # a power law forgets less in the long run


def test_an_unlearned_skill_is_not_known_and_a_learned_one_fades(graph: ContentGraph) -> None:
    s = student(graph, learn=1.0)
    assert s.truth("a", START) == 0.0
    s.memory["a"].rng = Fixed(0.5)  # type: ignore[assignment]
    s.answer(graph.exercises["a-0"], START)
    assert s.memory["a"].known and s.truth("a", START) == 1.0
    assert s.truth("a", START + timedelta(days=3)) == pytest.approx(math.exp(-1))  # strength 3 days


def test_answers_follow_the_hidden_state_and_the_item_difficulty(graph: ContentGraph) -> None:
    s = student(graph, learn=0.0)
    s.guess, s.slip = 0.2, 0.1
    at = START
    unknown = {
        d: sum(s.answer(ex(f"x{d}", "a", difficulty=d), at) for _ in range(4000)) / 4000
        for d in (0.0, 0.5, 1.0)
    }
    # guess x (1 - 0.5 (2d - 1)): 0.3 at difficulty 0, 0.2 in the middle, 0.1 at 1.
    assert unknown[0.0] == pytest.approx(0.3, abs=0.03) and unknown[0.5] == pytest.approx(0.2, abs=0.03)
    assert unknown[1.0] == pytest.approx(0.1, abs=0.02) and not s.memory["a"].known
    state = s.memory["b"]
    known = {}
    for d in (0.0, 1.0):
        hits = 0
        for _ in range(4000):
            state.known, state.strength, state.last = True, 1e9, at  # always retrieved
            hits += s.answer(ex("y", "b", difficulty=d), at)
        known[d] = hits / 4000
    # 1 - slip x (1 + 0.5 (2d - 1)): 0.95 at difficulty 0, 0.85 at 1.
    assert known[0.0] == pytest.approx(0.95, abs=0.015) and known[1.0] == pytest.approx(0.85, abs=0.02)


def test_spaced_retrievals_strengthen_memory_more_than_massed_ones(graph: ContentGraph) -> None:
    massed, spaced = student(graph, learn=1.0), student(graph, learn=1.0)
    for s in (massed, spaced):
        s.memory["a"].rng = Fixed(0.0)  # every retrieval succeeds
        s.answer(graph.exercises["a-0"], START)  # learned: strength 3 days
    for k in range(1, 6):
        massed.answer(graph.exercises["a-1"], START + timedelta(minutes=k))
        spaced.answer(graph.exercises["a-1"], START + timedelta(days=2 * k))
    # Massed (a minute apart, recall ~1): each retrieval adds little more than massed_gain.
    assert massed.memory["a"].strength == pytest.approx(3.0 * 1.05**5, rel=0.01)
    expected = 3.0
    for _ in range(5):
        r = math.exp(-2 / expected)
        expected *= 1 + 2.0 * (1 - r) + 0.05
    assert spaced.memory["a"].strength == pytest.approx(expected)
    assert spaced.memory["a"].strength > 5 * massed.memory["a"].strength
    later = START + timedelta(days=24)  # two weeks after the last spaced review
    assert spaced.truth("a", later) > 0.5 and massed.truth("a", later) < 0.01


def test_a_failed_retrieval_makes_the_skill_unknown_and_relearning_is_faster(graph: ContentGraph) -> None:
    world = ForgettingWorld(prior=0.0, speed_spread=0.0, skill_spread=0.0, learn=0.2)
    first = 1 - 0.8**1  # learn 0.2 at speed 1, no prerequisites
    again = 1 - 0.8**2  # relearn_boost 2
    s = HiddenStudent(graph, ForgettingConfig(world=world), 0)
    state = s.memory["a"]
    state.rng = Fixed((first + again) / 2)  # type: ignore[assignment]  # learns only at the relearning rate
    s.answer(graph.exercises["a-0"], START)
    assert not state.known and not state.ever
    state.known, state.ever, state.strength, state.last = True, True, 10.0, START
    # 20 days later recall is exp(-2) = 0.14 < the draw: forgotten, then relearned at once (savings).
    s.answer(graph.exercises["a-0"], START + timedelta(days=20))
    assert state.known and state.strength == pytest.approx(5.0)  # lapse_factor 0.5 of 10 days
    assert state.last == START + timedelta(days=20)
    state.rng = Fixed(0.99)  # type: ignore[assignment]  # not retrieved, not relearned
    s.answer(graph.exercises["a-0"], START + timedelta(days=40))
    assert not state.known and state.ever and s.truth("a", START + timedelta(days=40)) == 0.0


def test_learning_is_slower_while_prerequisites_are_not_recalled(graph: ContentGraph) -> None:
    world = {"learn": 0.3, "prerequisite_factor": 0.25}
    fast = 1 - 0.7**1.0
    slow = 1 - 0.7**0.25
    draw = (fast + slow) / 2  # learned with the prerequisite recalled, not without it
    without, with_it = student(graph, **world), student(graph, **world)
    for s in (without, with_it):
        s.memory["b"].rng = Fixed(draw)  # type: ignore[assignment]
    a = with_it.memory["a"]
    a.known, a.ever, a.strength, a.last = True, True, 1e9, START
    without.answer(graph.exercises["b-0"], START)
    with_it.answer(graph.exercises["b-0"], START)
    assert not without.memory["b"].known and with_it.memory["b"].known
    # A prerequisite half forgotten counts half: q = 0.25 + 0.75 * recall.
    assert slow < 1 - 0.7 ** (0.25 + 0.75 * 0.5) < fast


def test_speed_is_continuous_and_prior_knowledge_varies(graph: ContentGraph) -> None:
    config = ForgettingConfig(world=ForgettingWorld(prior=0.3))
    students = [HiddenStudent(graph, config, i) for i in range(400)]
    logs = [math.log(s.speed) for s in students]
    mean = sum(logs) / len(logs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in logs) / (len(logs) - 1))
    assert mean == pytest.approx(0.0, abs=0.1) and sd == pytest.approx(0.7, abs=0.08)
    assert len({round(s.speed, 6) for s in students}) == 400  # not groups
    known = [sum(s.memory[k].known for k in "abc") for s in students]
    assert {0, 1, 2, 3} <= set(known)  # from nothing to everything
    shares = [s.prior_share for s in students]
    assert sum(shares) / len(shares) == pytest.approx(0.3, abs=0.03) and max(shares) - min(shares) > 0.5
    # b and c need a: known without it only at a quarter of the rate.
    alone = sum(s.memory["b"].known and not s.memory["a"].known for s in students)
    together = sum(s.memory["b"].known and s.memory["a"].known for s in students)
    assert alone < together
    guesses = [s.guess for s in students]
    assert sum(guesses) / len(guesses) == pytest.approx(0.2, abs=0.01) and len(set(guesses)) == 400


def test_the_kth_attempt_at_a_skill_draws_the_same_numbers_whatever_else_happened(
    graph: ContentGraph,
) -> None:
    config = ForgettingConfig()
    one, two = HiddenStudent(graph, config, 5), HiddenStudent(graph, config, 5)
    assert one.speed == two.speed and one.guess == two.guess
    for k in range(6):
        one.answer(graph.exercises["a-1"], START + timedelta(minutes=k))
    for k in range(6):
        two.answer(graph.exercises["c-2"], START + timedelta(minutes=k))
        two.answer(graph.exercises["a-3"], START + timedelta(minutes=10 + k))
    assert one.memory["a"].rng.getstate() == two.memory["a"].rng.getstate()
    other = HiddenStudent(graph, config, 6)
    assert other.memory["a"].rng.getstate() != one.memory["a"].rng.getstate()


def test_the_post_test_does_not_teach_or_draw_from_practice(graph: ContentGraph) -> None:
    s = student(graph, learn=1.0)
    s.answer(graph.exercises["a-0"], START)
    before = (s.memory["a"].rng.getstate(), s.memory["a"].strength, s.memory["a"].last)
    at = START + timedelta(days=3)
    expected, right = s.post_test(["a", "b", "c"], at)
    assert expected == pytest.approx(math.exp(-1)) and right in (0, 1, 2, 3)
    assert (s.memory["a"].rng.getstate(), s.memory["a"].strength, s.memory["a"].last) == before
    assert s.post_test(["a", "b", "c"], at) == (expected, right)  # the same test, the same result


# --- the schedule and the loop ------------------------------------------------------------------------------


def test_school_days_weekends_off_and_a_delayed_post_test() -> None:
    config = ForgettingConfig(weeks=2, post_test_days=14)
    days = config.session_days()
    assert len(days) == 10 and {d.weekday() for d in days} == {0, 1, 2, 3, 4}
    assert days[5] - days[4] == timedelta(days=3)  # Friday to Monday
    assert config.post_test_time() == days[-1] + timedelta(days=14)
    assert config.answer_time(days[1], 29) == days[1] + timedelta(minutes=29)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="prior must be in"):
        ForgettingWorld(prior=1.5)
    with pytest.raises(ValueError, match="curve"):
        ForgettingWorld(curve="linear")
    with pytest.raises(ValueError, match="Monday"):
        ForgettingConfig(start=datetime(2025, 1, 7, tzinfo=UTC))
    with pytest.raises(ValueError, match="students must be at least 1"):
        ForgettingConfig(students=0)


def test_each_step_sees_the_view_the_service_builds_on_the_simulated_clock(graph: ContentGraph) -> None:
    config = ForgettingConfig(weeks=2, answers_per_session=4, policy=PolicyConfig(recent_window=12))
    calls: list[tuple[StudentView, int, Recommendation]] = []

    def spy(
        g: ContentGraph, params: Params, view: StudentView, policy_config: PolicyConfig, seed: int
    ) -> Recommendation:
        exercise_id = sorted(g.exercises)[view.n_responses % len(g.exercises)]
        rec = Recommendation(exercise_id, g.exercises[exercise_id].skill_ids[0], "test", "", "test")
        if view.now.weekday() == 2 and view.now.minute >= 2:  # Wednesdays: the sitting ends after two
            rec = Recommendation(None, None, "nothing_ready", "", "test")
        calls.append((view, seed, rec))
        return rec

    result = run_student(graph, "spy", 0, config, spy, trace=True)
    answered = [(view, rec) for view, _, rec in calls if rec.exercise_id is not None]
    assert result.answers == len(answered) == 8 * 4 + 2 * 2
    assert [s.at for s in result.steps] == [view.now for view, _ in answered]
    assert all(s.at.weekday() < 5 and s.at.hour == START.hour for s in result.steps)
    history = [rec.exercise_id for _, rec in answered]
    for n, (view, _) in enumerate(answered):
        assert view.n_responses == n
        assert list(view.recent_exercise_ids) == history[:n][::-1][:12]
        assert list(view.recent_at) == [s.at for s in result.steps[:n]][::-1][:12]
        if n:
            assert view.last_skill_id == graph.exercises[history[n - 1]].skill_ids[0]
    seeds = [seed for _, seed, _ in calls]
    assert len(set(seeds)) == len(seeds)
    calls.clear()
    assert run_student(graph, "spy", 0, config, spy, trace=True) == result


def cycle(
    g: ContentGraph, params: Params, view: StudentView, policy_config: PolicyConfig, seed: int
) -> Recommendation:
    """Every exercise in turn, never done."""
    exercise_id = sorted(g.exercises)[view.n_responses % len(g.exercises)]
    return Recommendation(exercise_id, g.exercises[exercise_id].skill_ids[0], "test", "", "test")


def test_the_tutor_sees_only_the_answers(graph: ContentGraph) -> None:
    config = ForgettingConfig(weeks=1, answers_per_session=50, speed_check_after=200)
    params = {s: BktParams(0.2, 0.2, 0.1, 0.1) for s in "abc"}
    result = run_student(graph, "cycle", 3, config, cycle, params=params, trace=True)
    assert result.answers == 250 and result.speed_estimate is not None
    # The tutor's model is the answers, at their simulated times, through apply_answer: nothing else.
    model = StudentModel()
    for step in result.steps[:200]:
        apply_answer(
            model,
            graph.exercises[step.exercise_id].skill_ids,
            step.correct,
            params,
            now=step.at,
            rules=config.policy.rules,
        )
    assert model.speed == result.speed_estimate
    # ... under the tutor's parameters (not the truth's), which drive its choices.
    ours = run_student(graph, "adaptive", 3, config, params=params, trace=True)
    wrong = {s: BktParams(0.0, 0.05, 0.3, 0.3) for s in "abc"}
    other = run_student(graph, "adaptive", 3, config, params=wrong, trace=True)
    assert [s.exercise_id for s in other.steps] != [s.exercise_id for s in ours.steps]


def test_declarations_and_claims_use_the_trackers_status_for_ours(graph: ContentGraph) -> None:
    # Students who know everything and never forget: every claim and declaration is true.
    world = ForgettingWorld(prior=1.0, prior_strength_days=1e9, slip=0.02, guess=0.2)
    config = ForgettingConfig(students=1, weeks=1, answers_per_session=20, world=world)
    for name in ("adaptive", "fixed_order"):
        r = run_student(graph, name, 0, config)
        assert r.declarations == 3 and r.declared_truth == pytest.approx(3.0)
        assert r.post_claims_truth == pytest.approx(r.post_claims)  # whatever is claimed is true
        assert r.retained == pytest.approx(3.0)
        assert all(count == 0 or truth == pytest.approx(count) for count, truth in r.session_claims)
    # The tracker's own status decides our claims: a skill earned once and left for weeks is due.
    model = StudentModel()
    params = {s: BktParams(0.3, 0.3, 0.1, 0.1) for s in "abc"}
    for k in range(8):
        apply_answer(model, ("a",), True, params, now=START + timedelta(minutes=k), rules=config.policy.rules)
    assert model.status("a", params["a"], START + timedelta(minutes=9)) == MasteryStatus.MASTERED
    assert model.status("a", params["a"], START + timedelta(days=60)) != MasteryStatus.MASTERED


@pytest.mark.slow
def test_the_report_is_reproducible_and_independent_of_worker_processes(graph: ContentGraph) -> None:
    config = ForgettingConfig(students=6, weeks=1, answers_per_session=8, seed="crn")
    report = run_forgetting(graph, config, processes=1)
    assert report.policies == DEFAULT_POLICIES and len(report.students) == 6 * len(DEFAULT_POLICIES)
    assert [(r.policy, r.tercile) for r in report.rows[:3]] == [
        ("adaptive", "slow"),
        ("adaptive", "middle"),
        ("adaptive", "fast"),
    ]
    assert run_forgetting(graph, config, processes=2) == report
    # The same hidden students under every policy.
    by_policy = {p: [r.speed for r in report.results(p)] for p in report.policies}
    assert len({tuple(v) for v in by_policy.values()}) == 1
    other = run_forgetting(graph, replace(config, seed="other"), ["random"], processes=1)
    assert [r.speed for r in other.students] != by_policy["random"]


@pytest.mark.slow
def test_the_report_does_not_depend_on_pythonhashseed(graph: ContentGraph) -> None:
    code = (
        "import json; from app.domain.content import Exercise, Skill, build_graph;"
        "from app.domain.worlds import ForgettingConfig, run_forgetting;"
        "ex = lambda e, s, d: Exercise(e, (s,), '?', 'numeric', ('1',), d);"
        "g = build_graph([Skill('a', 'A'), Skill('b', 'B', prerequisites=('a',))],"
        " [ex(f'{s}-{i}', s, i / 4) for s in 'ab' for i in range(4)]);"
        "r = run_forgetting(g, ForgettingConfig(students=3, weeks=1, answers_per_session=6, seed='h'),"
        " ['adaptive', 'random', 'spaced_repetition'], processes=1);"
        "print(json.dumps([[x.policy, x.answers, x.retained, x.declared_truth] for x in r.students]))"
    )
    outputs = set()
    for hashseed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hashseed}
        done = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        outputs.add(done.stdout)
    assert len(outputs) == 1 and json.loads(outputs.pop())


# --- statistics, the summary and the targets ---------------------------------------------------------


def test_statistics_by_hand() -> None:
    e = mean_ci([1.0, 2.0, 3.0])
    assert e.value == 2.0 and e.high - e.value == pytest.approx(1.96 / math.sqrt(3))
    assert math.isnan(mean_ci([]).value) and math.isnan(mean_ci([4.0]).low)
    r = ratio_ci([1, 2, 3, 4], [2, 2, 2, 2], "t")
    assert r.value == pytest.approx(10 / 8) and r.low <= r.value <= r.high
    assert ratio_ci([1, 2, 3, 4], [2, 2, 2, 2], "t") == r  # seeded
    assert math.isnan(ratio_ci([1.0], [0.0], "t").value)
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(0.9486832980505138)  # scipy.stats.spearmanr
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    groups = terciles({i: float(10 - i) for i in range(9)})
    assert [groups[i] for i in range(9)] == ["fast"] * 3 + ["middle"] * 3 + ["slow"] * 3


def result(
    index: int = 0,
    speed: float = 1.0,
    answers: int = 100,
    declarations: int = 4,
    declared_truth: float = 4.0,
    sessions: tuple[tuple[int, float], ...] = ((2, 2.0), (4, 3.0)),
    post: tuple[int, float] = (4, 2.0),
    retained: float = 5.0,
    policy: str = "adaptive",
    estimate: float | None = 1.0,
) -> ForgettingResult:
    return ForgettingResult(
        policy,
        index,
        speed,
        answers,
        (("learn", 60), ("review", 40)),
        declarations,
        declared_truth,
        sessions,
        post[0],
        post[1],
        retained,
        6,
        10,
        8,
        24,
        estimate,
    )


def test_tercile_summary_by_hand() -> None:
    rows = [
        result(0, declared_truth=3.0, sessions=((2, 2.0), (4, 2.0))),
        result(1, retained=3.0, sessions=((0, 0.0), (4, 4.0)), post=(0, 0.0)),
    ]
    s = summarize_tercile("adaptive", "slow", rows, 0)
    assert s.retention.value == pytest.approx((0.5 + 0.3) / 2)
    assert s.answers_per_retained.value == pytest.approx(200 / 8)
    assert s.declared_truly_known.value == pytest.approx(7 / 8) and s.declarations == 8
    # Session 1: 2 claims, 2 true; session 2: 8 claims, 6 true -> the lowest is session 2.
    assert (s.honesty_min, s.honesty_min_session) == (pytest.approx(0.75), 2)
    assert s.honesty_mean.value == pytest.approx(8 / 10)
    assert s.honesty_post.value == pytest.approx(0.5) and s.claims_post == 2.0 and s.known_post == 1.0
    assert s.practice_days == pytest.approx(3.0) and s.post_test_score.value == pytest.approx(0.6)


def report_of(students: list[ForgettingResult], config: ForgettingConfig | None = None) -> ForgettingReport:
    config = config or ForgettingConfig()
    policies = tuple(dict.fromkeys(r.policy for r in students))
    groups = terciles({r.index: r.speed for r in students})
    rows = tuple(
        summarize_tercile(p, t, [r for r in students if r.policy == p and groups[r.index] == t], 0)
        for p in policies
        for t in ("slow", "middle", "fast")
    )
    return ForgettingReport(config, policies, 10, 20, (0.3, 0.1, 0.2), "test", rows, tuple(students))


def test_targets_are_checked_against_the_numbers() -> None:
    ours = [result(i, speed=1.0 + i, retained=5.0, estimate=1.0 + i) for i in range(6)]
    rand = [replace(r, policy="random", retained=2.0) for r in ours]
    fixed = [replace(r, policy="fixed_order", retained=4.9) for r in ours]
    report = report_of(ours + rand + fixed)
    targets = {t.name.split(":")[0]: t for t in check_targets(report)}
    assert targets["post-test retention above every baseline"].met is True
    assert targets["post-test retention >= 5 points above random order"].met is True
    assert "+30.0 points" in targets["post-test retention >= 5 points above random order"].detail
    honesty = next(t for name, t in targets.items() if name.startswith(">= 90%"))
    assert honesty.met is False and "post-test 50.0%" in honesty.detail  # 2 of 4 claims true
    declared = targets["true mastery at declaration >= 95% in every speed tercile"]
    assert declared.met is True and "prior 0.1 vs 0.3" in declared.detail  # the truth differs
    assert targets["pace recovery"].met is True and "rho 1.00" in targets["pace recovery"].detail
    assert targets["issue 4's targets on the world without forgetting"].met is None

    honest = [
        replace(
            r, session_claims=((2, 2.0), (4, 3.9)), post_claims=0, post_claims_truth=0.0, declared_truth=3.0
        )
        for r in ours
    ]
    closer = [replace(r, retained=4.0) for r in rand]
    targets = {t.name: t for t in check_targets(report_of(honest + closer))}
    assert targets["post-test retention >= 5 points above random order"].met is True  # +10 points
    assert next(t for n, t in targets.items() if n.startswith(">= 90%")).met is True  # no claim: none false
    assert targets["true mastery at declaration >= 95% in every speed tercile"].met is False  # 75%
    shuffled = [replace(r, speed_estimate=float(6 - r.index)) for r in ours]
    rho, n = pace_recovery(report_of(shuffled), "adaptive")
    assert n == 6 and rho.value < 0.8


def test_format_shows_every_policy_and_tercile(graph: ContentGraph) -> None:
    config = ForgettingConfig(students=3, weeks=1, answers_per_session=5)
    report = run_forgetting(graph, config, ["adaptive", "spaced_repetition"], processes=1)
    text = format_forgetting(report)
    table = text.split("\n\n")[0].splitlines()
    assert len(table) == 2 + 6 and len({len(line) for line in table}) == 1
    assert table[2].split()[:2] == ["adaptive", "slow"]
    assert table[7].split()[:2] == ["spaced_repetition", "fast"]
    assert "3 skills, 16 exercises; 3 students; 1 school weeks of 5 answers a day" in text
    assert "picks by reason" in text
    lines = format_targets(check_targets(report)).splitlines()
    assert lines[0].split()[0] == "target" and len(lines) == 2 + 5  # spaced_repetition is the only baseline
    assert Estimate(1.0, 0.5, 1.5).value == 1.0


@pytest.mark.slow
def test_the_shipped_graph_runs_small_under_every_policy() -> None:
    from app.services.tutoring.content_files import read_content  # the shipped content, as the service reads

    graph = read_content(ROOT / "content")
    config = ForgettingConfig(students=3, weeks=1, answers_per_session=12)
    report = run_forgetting(graph, config, processes=2)
    assert report.n_skills == 43 and set(report.policies) == set(POLICIES) | {"spaced_repetition"}
    for r in report.students:
        assert 0 < r.answers <= 60 and 0.0 <= r.retained <= 43
        assert len(r.session_claims) == 5
