"""Reports from hand-built records: every number checked against arithmetic done by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from app.domain.bkt import BktParams
from app.domain.content import Exercise, Skill, build_graph
from app.domain.memory import recall, start_memory
from app.domain.reports import (
    ReportConfig,
    SkillRecord,
    StudentRecord,
    build_class_report,
    build_student_report,
    expected_attempts_to_mastery,
)
from app.domain.tracking import HYPOTHESES, MasteryRules, SkillState, StudentModel

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PARAMS = BktParams(prior=0.5, learn=0.2, guess=0.2, slip=0.1)
ONLY_NORMAL_SPEED = [1.0 if h == (1.0, 1.0, 1.0) else 0.0 for h in HYPOTHESES]
N = len(HYPOTHESES)
RULES = MasteryRules()


def graph():
    skills = [
        Skill("a", "Adding"),
        Skill("b", "Borrowing", prerequisites=("a",)),
        Skill("c", "Carrying", prerequisites=("b",)),
    ]
    exercises = [Exercise(f"{s.id}-1", (s.id,), "?", "numeric", ("1",), 0.5) for s in skills]
    return build_graph(skills, exercises)


def test_expected_attempts_follow_the_learning_curve() -> None:
    # 1 - 0.5 * 0.8^n >= 0.95  <=>  n >= log(0.1) / log(0.8) = 10.3  ->  11 answers.
    state = SkillState(0.5, [0.5] * N, attempts=3, correct_count=3)
    assert expected_attempts_to_mastery(state, ONLY_NORMAL_SPEED, PARAMS, RULES, 50) == 11
    assert math.ceil(math.log(0.1) / math.log(0.8)) == 11
    # A learner at speed 2 learns 1 - 0.8^2 = 0.36 per answer: 0.64^n <= 0.1 -> n = 6.
    fast = [1.0 if h == (2.0, 1.0, 1.0) else 0.0 for h in HYPOTHESES]
    assert expected_attempts_to_mastery(state, fast, PARAMS, RULES, 50) == 6
    known = SkillState(0.96, [0.96] * N, attempts=3, correct_count=3)
    assert expected_attempts_to_mastery(known, ONLY_NORMAL_SPEED, PARAMS, RULES, 50) == 0
    # ...but never fewer answers than the right answers still missing for the minimum.
    lucky = SkillState(0.96, [0.96] * N, attempts=1, correct_count=1)
    assert expected_attempts_to_mastery(lucky, ONLY_NORMAL_SPEED, PARAMS, RULES, 50) == 2
    assert expected_attempts_to_mastery(state, ONLY_NORMAL_SPEED, PARAMS, RULES, 5) is None
    # Forgetting caps P(L) at learn / (learn + forget) = 0.2 / 0.3: mastery is never expected.
    forgetful = BktParams(prior=0.5, learn=0.2, guess=0.2, slip=0.1, forget=0.1)
    assert expected_attempts_to_mastery(state, ONLY_NORMAL_SPEED, forgetful, RULES, 50) is None


def test_student_report_statuses_and_not_enough_data() -> None:
    model = StudentModel(
        speed_weights=list(ONLY_NORMAL_SPEED),
        skills={
            "a": SkillState(
                0.97,
                [0.97] * N,
                attempts=6,
                correct_count=5,
                mastered_at=NOW - timedelta(hours=3),
                attempts_at_mastery=6,
                last_practiced_at=NOW - timedelta(hours=3),
                memory=start_memory(NOW - timedelta(hours=3)),
            ),
            "b": SkillState(0.6, [0.6] * N, attempts=2, correct_count=1, last_practiced_at=NOW),
        },
    )
    params = {s: PARAMS for s in "abc"}
    report = build_student_report(graph(), params, model, NOW, ReportConfig())
    a, b, c = report.skills
    assert (a.status, b.status, c.status) == ("mastered", "learning", "locked")
    # Earned this morning: recall is still whole (FSRS counts whole days), not yet due.
    assert a.recall == 1.0 and not a.review_due
    assert a.p_mastery == 0.97 and a.accuracy == 5 / 6 and a.prediction == "mastered"
    assert a.attempts_at_mastery == 6
    # Two answers on b: no confident numbers.
    assert b.enough_data is False and b.p_mastery is None and b.accuracy is None
    assert b.prediction == "not_enough_data" and b.predicted_attempts_to_mastery is None
    assert report.skills_mastered == 1 and report.skills_total == 3 and report.locked == 1
    assert report.ready == ["b"] and report.answers == 8 and report.last_activity_at == NOW
    assert report.speed is None  # 8 answers are too few to judge pace
    # A third answer on b gives an estimate: from 0.6, 0.4 * 0.8^n <= 0.05 <=> n >= 9.3 -> 10.
    model.skills["b"].attempts = 3
    b = build_student_report(graph(), params, model, NOW, ReportConfig()).skills[1]
    assert b.p_mastery == 0.6 and b.predicted_attempts_to_mastery == 10 and b.prediction == "estimate"
    # Days later the earned skill is due for review (P(L) x FSRS recall under the memory posterior).
    later = build_student_report(graph(), params, model, NOW + timedelta(days=6), ReportConfig()).skills[0]
    assert later.status == "due_for_review" and later.review_due and not later.mastered
    assert 0 < later.recall < 1 and later.p_mastery == 0.97 * later.recall
    assert report.reviews_due == []


def record(
    external_id: str,
    *,
    speed: float = 1.0,
    answers: int = 30,
    last: datetime | None = NOW,
    **skills: SkillRecord,
) -> StudentRecord:
    return StudentRecord(external_id, external_id, speed, ONLY_NORMAL_SPEED, answers, answers, last, skills)


def rec(p: float, attempts: int, mastered_after: int | None = None, practised: datetime = NOW) -> SkillRecord:
    mastered_at = practised if mastered_after is not None else None
    memory = start_memory(practised) if mastered_after is not None else None
    return SkillRecord([p] * N, attempts, attempts // 2, mastered_at, mastered_after, practised, memory)


def test_class_report_by_hand() -> None:
    students = [
        record("s1", a=rec(0.97, 5, mastered_after=4), b=rec(0.4, 12)),
        record("s2", a=rec(0.98, 8, mastered_after=6), b=rec(0.3, 10), speed=0.5),
        record(
            "s3",
            a=rec(0.99, 11, mastered_after=11, practised=NOW - timedelta(days=10)),
            last=NOW - timedelta(days=10),
            b=rec(0.5, 2),
        ),
        record("s4", answers=0, last=None),
    ]
    report = build_class_report(graph(), students, ReportConfig(), until=NOW)
    a, b, c = report.skills
    assert [s.skill_id for s in report.skills] == ["a", "b", "c"]
    assert a.share_mastered == 2 / 4 and a.mastered == 2 and a.median_attempts_to_mastery == 6.0
    assert b.share_mastered == 0 and b.median_attempts_to_mastery is None and b.practising == 3
    assert b.wheel_spinning == 2 and b.stuck and report.stuck_skills == ["b"]  # 2 of 3 practising, >= 30%
    assert c.practising == 0 and not c.stuck
    s1, s2, s3, s4 = report.students
    # s3 earned a ten days ago: its estimate decayed with recall; 2 answers on b: not enough data
    decayed = 0.99 * recall(start_memory(NOW - timedelta(days=10)), NOW)
    assert [cell.p_mastery for cell in s3.cells] == [decayed, None, None]
    assert [cell.status for cell in s3.cells] == ["due_for_review", "learning", "not_started"]
    assert [cell.attempts for cell in s3.cells] == [11, 2, 0]
    assert [r.kind for r in s1.needs_help] == ["wheel_spinning"]
    assert s1.needs_help[0].detail == "12 answers on Borrowing without mastering it"
    assert [r.kind for r in s2.needs_help] == ["wheel_spinning", "slow_pace"]
    assert [(r.kind, r.detail) for r in s3.needs_help] == [("inactive", "no activity for 10 days")]
    assert [r.detail for r in s4.needs_help] == ["no answers yet"]
    # s3's "a" is due for review, not mastered: the class counts agree with the cells.
    assert [s.skills_mastered for s in report.students] == [1, 1, 0, 0]
    forgotten = [record("s5", a=rec(0.99, 11, mastered_after=11, practised=NOW - timedelta(days=400)))]
    s5 = build_class_report(graph(), forgotten, ReportConfig(), until=NOW).students[0]
    assert s5.cells[0].status == "needs_relearning"
    assert [(r.kind, r.detail) for r in s5.needs_help][0] == (
        "review_overdue",
        "Adding was mastered but is probably forgotten: it needs a review",
    )


def test_class_report_as_of_an_earlier_date() -> None:
    # Mastered yesterday: as of two days ago it was not.
    students = [record("s1", a=rec(0.97, 5, mastered_after=4))]
    earlier = build_class_report(graph(), students, ReportConfig(), until=NOW - timedelta(days=2))
    assert earlier.students[0].cells[0].mastered is False
    assert earlier.skills[0].median_attempts_to_mastery is None
