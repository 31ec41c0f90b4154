"""What a teacher should act on (domain/dashboard.py): flags that read the answers, and groupings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.domain.dashboard import DashboardConfig, RecentAnswers, build_dashboard
from app.domain.reports import Cell, ClassReport, ClassSkill, ClassStudent, HelpReason, ReportConfig

NOW = datetime(2026, 3, 2, 12, tzinfo=UTC)
SKILLS = [
    ClassSkill("ef", "Equivalent fractions", 0.0, 0, 5, None, 0, False, "Fractions"),
    ClassSkill("pv", "Place value", 0.0, 0, 5, None, 0, False, "Whole numbers"),
]


def student(
    name: str,
    cells: list[Cell],
    *,
    last: datetime | None = NOW,
    help: list[HelpReason] | None = None,
    speed: float = 1.0,
    answers: int = 10,
) -> ClassStudent:
    return ClassStudent(
        name, name, cells, sum(c.mastered for c in cells), answers, answers, last, speed, help or []
    )


LEARNING = Cell(0.4, 3, False, "learning", 0.4, 2)
STUCK = Cell(0.3, 8, False, "learning", 0.3, 2)  # 8 answers, 2 right
NOT_STARTED = Cell(None, 0, False)


def report(*students: ClassStudent) -> ClassReport:
    return ClassReport(SKILLS, list(students), [], None, NOW)


def test_answers_that_contradict_a_fine_looking_estimate_are_flagged() -> None:
    # "1 of 5 right" with an estimate of 74%: the dashboard says so, the heatmap marks it.
    fine_looking = Cell(0.74, 5, False, "learning", 0.74, 1)
    built = build_dashboard(
        report(student("amy", [fine_looking, NOT_STARTED])), {"amy": RecentAnswers(5, 1, 0)}, ReportConfig()
    )
    [amy] = built.flagged
    kinds = [f.kind for f in amy.flags]
    assert kinds == ["low_accuracy", "estimate_vs_answers"]
    assert amy.flags[0].text == "Got 1 of their last 5 answers right."
    assert amy.flags[1].text == (
        "Equivalent fractions: the estimate (74%) is higher than the answers show "
        "(1 of 5 right without a hint)."
    )
    assert ("Right without a hint", "1") in amy.flags[1].numbers
    assert built.contradicted == frozenset({("amy", "ef")}) and built.on_track == 0


def test_hints_wheel_spinning_forgetting_and_idleness() -> None:
    help = [
        HelpReason("wheel_spinning", "pv", "12 answers on Place value without mastering it"),
        HelpReason("review_overdue", "ef", "Equivalent fractions was mastered but is probably forgotten"),
        HelpReason("inactive", None, "no activity for 9 days"),
        HelpReason("slow_pace", None, "learning at 0.5× the pace the model expects"),
    ]
    cells = [Cell(0.5, 6, False, "needs_relearning", 0.5, 5), Cell(0.3, 12, False, "learning", 0.3, 6)]
    built = build_dashboard(
        report(student("ben", cells, help=help, speed=0.5, answers=25)),
        {"ben": RecentAnswers(10, 7, 4)},
        ReportConfig(),
    )
    [ben] = built.flagged
    assert [f.text for f in ben.flags] == [
        "Used a hint on 4 of their last 10 answers.",
        "Many answers without mastering Place value.",
        "Probably forgotten since mastering: Equivalent fractions.",
        "No activity for 9 days.",
        "Learning more slowly than the model expects (0.5×).",
    ]


def test_a_student_doing_well_is_on_track_and_one_without_answers_is_listed_last() -> None:
    good = student("cat", [Cell(0.8, 6, False, "learning", 0.8, 5), NOT_STARTED])
    new = student("dan", [NOT_STARTED, NOT_STARTED], last=None, answers=0)
    struggling = student("eve", [LEARNING, NOT_STARTED])
    built = build_dashboard(
        report(good, new, struggling),
        {"cat": RecentAnswers(6, 5, 0), "eve": RecentAnswers(6, 2, 0)},
        ReportConfig(),
    )
    assert [f.external_id for f in built.flagged] == ["eve", "dan"]
    assert built.flagged[1].flags[0].text == "No answers yet." and built.on_track == 1
    # Too few recent answers to judge: no accuracy flag.
    few = build_dashboard(
        report(student("fay", [LEARNING, NOT_STARTED])), {"fay": RecentAnswers(4, 0, 4)}, ReportConfig()
    )
    assert few.flagged == []


def test_groupings_name_the_skill_and_the_students_largest_first() -> None:
    due = Cell(0.8, 6, False, "due_for_review", 0.8, 5)
    built = build_dashboard(
        report(
            student("a", [STUCK, due]),
            student("b", [STUCK, due]),
            student("c", [STUCK, NOT_STARTED]),
            student("d", [LEARNING, due]),
            student("e", [Cell(0.9, 5, True, "mastered", 0.9, 5), NOT_STARTED]),
        ),
        {},
        ReportConfig(),
    )
    assert [(g.text, [s for _, s in g.students]) for g in built.groupings] == [
        ("3 students are stuck on Equivalent fractions", ["a", "b", "c"]),
        ("3 students need a refresh of Place value", ["a", "b", "d"]),
    ]
    # One student alone is not a group.
    alone = build_dashboard(
        report(student("a", [STUCK, NOT_STARTED]), student("b", [LEARNING, due])), {}, ReportConfig()
    )
    assert alone.groupings == []


def test_the_dashboard_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="low_accuracy must be in \\[0, 1\\], got 2"):
        DashboardConfig(low_accuracy=2)
    with pytest.raises(ValueError, match="min_group must be at least 1"):
        DashboardConfig(min_group=0)


def test_idleness_is_read_from_the_report_as_of_its_end() -> None:
    # The report as of a past date: idleness and the flags are those of that date (the report's until).
    idle = [HelpReason("inactive", None, "no activity for 30 days")]
    built = build_dashboard(
        report(student("gil", [LEARNING, NOT_STARTED], last=NOW - timedelta(days=30), help=idle)),
        {},
        ReportConfig(),
    )
    assert [f.kind for f in built.flagged[0].flags] == ["inactive"]
