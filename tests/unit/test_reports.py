"""Reports from hand-built records: every number checked against arithmetic done by hand."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from app.domain.bkt import BktParams
from app.domain.content import Exercise, Skill, build_graph
from app.domain.reports import (
    ReportConfig,
    SkillRecord,
    StudentRecord,
    build_class_report,
    build_student_report,
    expected_attempts_to_mastery,
)
from app.domain.tracking import SPEEDS, SkillState, StudentModel

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
PARAMS = BktParams(prior=0.5, learn=0.2, guess=0.2, slip=0.1)
ONLY_NORMAL_SPEED = [1.0 if k == 1.0 else 0.0 for k in SPEEDS]


def graph():
    skills = [Skill("a", "Adding"), Skill("b", "Borrowing", prerequisites=("a",)),
              Skill("c", "Carrying", prerequisites=("b",))]
    exercises = [Exercise(f"{s.id}-1", (s.id,), "?", "numeric", ("1",), 0.5) for s in skills]
    return build_graph(skills, exercises)


def test_expected_attempts_follow_the_learning_curve() -> None:
    # 1 - 0.5 * 0.8^n >= 0.95  <=>  n >= log(0.1) / log(0.8) = 10.3  ->  11 answers.
    state = SkillState(0.5, [0.5] * len(SPEEDS))
    assert expected_attempts_to_mastery(state, ONLY_NORMAL_SPEED, PARAMS, 0.95, 50) == 11
    assert math.ceil(math.log(0.1) / math.log(0.8)) == 11
    # A learner at speed 2 learns 1 - 0.8^2 = 0.36 per answer: 0.64^n <= 0.1 -> n = 6.
    fast = [1.0 if k == 2.0 else 0.0 for k in SPEEDS]
    assert expected_attempts_to_mastery(state, fast, PARAMS, 0.95, 50) == 6
    known = SkillState(0.96, [0.96] * 5)
    assert expected_attempts_to_mastery(known, ONLY_NORMAL_SPEED, PARAMS, 0.95, 50) == 0
    assert expected_attempts_to_mastery(state, ONLY_NORMAL_SPEED, PARAMS, 0.95, 5) is None
    # Forgetting caps P(L) at learn / (learn + forget) = 0.2 / 0.3: mastery is never expected.
    forgetful = BktParams(prior=0.5, learn=0.2, guess=0.2, slip=0.1, forget=0.1)
    assert expected_attempts_to_mastery(state, ONLY_NORMAL_SPEED, forgetful, 0.95, 50) is None


def test_student_report_statuses_and_not_enough_data() -> None:
    model = StudentModel(speed_weights=list(ONLY_NORMAL_SPEED), skills={
        "a": SkillState(0.97, [0.97] * 5, attempts=6, correct_count=5, mastered_at=NOW - timedelta(days=1),
                        attempts_at_mastery=6, last_practiced_at=NOW - timedelta(days=1)),
        "b": SkillState(0.6, [0.6] * 5, attempts=2, correct_count=1, last_practiced_at=NOW),
    })
    params = {s: PARAMS for s in "abc"}
    report = build_student_report(graph(), params, model, NOW, ReportConfig())
    a, b, c = report.skills
    assert (a.status, b.status, c.status) == ("mastered", "learning", "locked")
    assert a.p_mastery == 0.97 and a.accuracy == 5 / 6 and a.prediction == "mastered"
    assert a.attempts_at_mastery == 6
    # One day since practice, half-life 4 days: recall 2^(-1/4) = 0.84 > 0.8, not yet due.
    assert a.recall == 2 ** -0.25 and not a.review_due
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


def record(external_id: str, *, speed: float = 1.0, answers: int = 30, last: datetime | None = NOW,
           **skills: SkillRecord) -> StudentRecord:
    return StudentRecord(external_id, external_id, speed, answers, answers, last, skills)


def rec(p: float, attempts: int, mastered_after: int | None = None, practised: datetime = NOW,
        reviews: int = 0) -> SkillRecord:
    mastered_at = NOW - timedelta(days=1) if mastered_after is not None else None
    return SkillRecord(p, attempts, attempts // 2, mastered_at, mastered_after, practised, reviews)


def test_class_report_by_hand() -> None:
    students = [
        record("s1", a=rec(0.97, 5, mastered_after=4), b=rec(0.4, 12)),
        record("s2", a=rec(0.98, 8, mastered_after=6), b=rec(0.3, 10), speed=0.5),
        record("s3", a=rec(0.99, 11, mastered_after=11, practised=NOW - timedelta(days=10)),
               last=NOW - timedelta(days=10), b=rec(0.5, 2)),
        record("s4", answers=0, last=None),
    ]
    report = build_class_report(graph(), students, ReportConfig(), until=NOW)
    a, b, c = report.skills
    assert [s.skill_id for s in report.skills] == ["a", "b", "c"]
    assert a.share_mastered == 3 / 4 and a.mastered == 3 and a.median_attempts_to_mastery == 6.0
    assert b.share_mastered == 0 and b.median_attempts_to_mastery is None and b.practising == 3
    assert b.wheel_spinning == 2 and b.stuck and report.stuck_skills == ["b"]  # 2 of 3 practising, >= 30%
    assert c.practising == 0 and not c.stuck
    s1, s2, s3, s4 = report.students
    assert [cell.p_mastery for cell in s3.cells] == [0.99, None, None]  # 2 answers on b: not enough data
    assert [cell.attempts for cell in s3.cells] == [11, 2, 0]
    assert [r.kind for r in s1.needs_help] == ["wheel_spinning"]
    assert s1.needs_help[0].detail == "12 answers on Borrowing without mastering it"
    assert [r.kind for r in s2.needs_help] == ["wheel_spinning", "slow_pace"]
    # 10 days since s3 practised a (half-life 4 days): recall 2^-2.5 = 18% < 50%, and 10 days idle.
    assert [(r.kind, r.detail) for r in s3.needs_help] == [
        ("review_overdue", "Adding: predicted recall 18%, review overdue"),
        ("inactive", "no activity for 10 days")]
    assert [r.detail for r in s4.needs_help] == ["no answers yet"]
    assert [s.skills_mastered for s in report.students] == [1, 1, 1, 0]


def test_class_report_as_of_an_earlier_date() -> None:
    # Mastered yesterday: as of two days ago it was not.
    students = [record("s1", a=rec(0.97, 5, mastered_after=4))]
    earlier = build_class_report(graph(), students, ReportConfig(), until=NOW - timedelta(days=2))
    assert earlier.students[0].cells[0].mastered is False
    assert earlier.skills[0].median_attempts_to_mastery is None
