"""What a teacher should act on, from a class report and each student's latest answers. Pure.

The class report (``reports.build_class_report``) says where each student stands by the mastery estimate.
An estimate can look fine while the answers say otherwise, so the dashboard adds flags that read the
answers themselves: low accuracy lately, many hints, an estimate above what the skill's answers show,
wheel-spinning, forgetting (skills that need relearning), no activity; and it suggests groupings: students
stuck on the same skill, or needing a refresh of the same skill, whom a teacher can take together.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from app.domain.reports import ClassReport, ClassStudent, HelpReason, ReportConfig
from app.domain.wording import percent


@dataclass(frozen=True)
class DashboardConfig:
    recent_answers: int = 10  # the latest answers a student's recent accuracy and hints are read from
    min_recent: int = 5  # ... at least this many before judging them
    low_accuracy: float = 0.5  # recent share right below this: flagged
    many_hints: float = 0.4  # recent share of answers after a hint at or above this: flagged
    high_estimate: float = 0.6  # a skill's estimate at or above this ...
    low_skill_accuracy: float = 0.4  # ... while at most this share of its answers were right unaided
    min_skill_answers: int = 4  # ... over at least this many answers: the estimate contradicts the answers
    stuck_answers: int = 5  # learning, this many answers or more, under half right: stuck
    min_group: int = 2  # a suggested grouping has at least this many students

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be in [0, 1], got {getattr(self, name)}"
            for name in ("low_accuracy", "many_hints", "high_estimate", "low_skill_accuracy")
            if not 0.0 <= getattr(self, name) <= 1.0
        ]
        problems += [
            f"{name} must be at least 1, got {getattr(self, name)}"
            for name in ("recent_answers", "min_recent", "min_skill_answers", "stuck_answers", "min_group")
            if getattr(self, name) < 1
        ]
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True)
class RecentAnswers:
    """A student's latest answers (at most ``DashboardConfig.recent_answers``) by the report's end date."""

    answers: int
    right: int  # answered right (with or without a hint)
    hinted: int  # given after at least one hint


@dataclass(frozen=True)
class Flag:
    kind: str  # "no_answers", "low_accuracy", "many_hints", "estimate_vs_answers", "wheel_spinning",
    #            "forgetting", "inactive", "slow_pace"
    text: str  # plain words for the teacher
    numbers: list[tuple[str, str]] = field(default_factory=list)  # the numbers behind it, shown on request
    skill_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class FlaggedStudent:
    student_id: str
    external_id: str
    flags: list[Flag]


@dataclass(frozen=True)
class Grouping:
    kind: str  # "stuck", "refresh"
    skill_id: str
    skill_name: str
    students: list[tuple[str, str]]  # (student id, external id)
    text: str  # "5 students are stuck on Equivalent fractions"


@dataclass(frozen=True)
class Dashboard:
    flagged: list[FlaggedStudent]  # students with at least one flag, most flags first
    groupings: list[Grouping]  # largest first
    on_track: int  # students without a flag
    # (student id, skill id) whose estimate is higher than the skill's answers show (marked in the heatmap)
    contradicted: frozenset[tuple[str, str]] = frozenset()


def _names(ids: Sequence[str], names: Mapping[str, str]) -> str:
    shown = [names[s] for s in ids[:3]]
    more = f" and {len(ids) - 3} more" if len(ids) > 3 else ""
    return ", ".join(shown) + more


def _flags(
    student: ClassStudent, report: ClassReport, recent: RecentAnswers | None, config: DashboardConfig
) -> list[Flag]:
    names = {s.skill_id: s.name for s in report.skills}
    flags: list[Flag] = []
    if student.last_active_at is None:
        return [Flag("no_answers", "No answers yet.")]
    if recent is not None and recent.answers >= config.min_recent:
        numbers = [
            ("Latest answers", str(recent.answers)),
            ("Right", str(recent.right)),
            ("After a hint", str(recent.hinted)),
        ]
        if recent.right < config.low_accuracy * recent.answers:
            flags.append(
                Flag(
                    "low_accuracy",
                    f"Got {recent.right} of their last {recent.answers} answers right.",
                    numbers,
                )
            )
        if recent.hinted >= config.many_hints * recent.answers:
            flags.append(
                Flag(
                    "many_hints",
                    f"Used a hint on {recent.hinted} of their last {recent.answers} answers.",
                    numbers,
                )
            )
    contradicted = [
        (report.skills[i].skill_id, cell)
        for i, cell in enumerate(student.cells)
        if cell.estimate is not None
        and cell.estimate >= config.high_estimate
        and cell.attempts >= config.min_skill_answers
        and cell.correct <= config.low_skill_accuracy * cell.attempts
        and not cell.mastered
    ]
    for skill_id, cell in contradicted:
        flags.append(
            Flag(
                "estimate_vs_answers",
                f"{names[skill_id]}: the estimate ({percent(cell.estimate or 0.0)}%) is higher than the "
                "answers "
                f"show ({cell.correct} of {cell.attempts} right without a hint).",
                [
                    ("Mastery estimate", f"{percent(cell.estimate or 0.0)}%"),
                    ("Answers", str(cell.attempts)),
                    ("Right without a hint", str(cell.correct)),
                ],
                (skill_id,),
            )
        )
    by_kind: dict[str, list[HelpReason]] = {}
    for reason in student.needs_help:
        by_kind.setdefault(reason.kind, []).append(reason)
    spinning = [r.skill_id for r in by_kind.get("wheel_spinning", []) if r.skill_id]
    if spinning:
        cells = {report.skills[i].skill_id: c for i, c in enumerate(student.cells)}
        flags.append(
            Flag(
                "wheel_spinning",
                f"Many answers without mastering {_names(spinning, names)}.",
                [(names[s], f"{cells[s].attempts} answers") for s in spinning],
                tuple(spinning),
            )
        )
    forgotten = [r.skill_id for r in by_kind.get("review_overdue", []) if r.skill_id]
    if forgotten:
        flags.append(
            Flag(
                "forgetting",
                f"Probably forgotten since mastering: {_names(forgotten, names)}.",
                [(names[s], "needs relearning") for s in forgotten],
                tuple(forgotten),
            )
        )
    for reason in by_kind.get("inactive", []):
        flags.append(Flag("inactive", reason.detail[:1].upper() + reason.detail[1:] + "."))
    if by_kind.get("slow_pace") and student.speed is not None:  # a slow pace is judged only once known
        flags.append(
            Flag(
                "slow_pace",
                f"Learning more slowly than the model expects ({student.speed:.1f}×).",
                [("Pace (1 = as expected)", f"{student.speed:.1f}×"), ("Answers", str(student.answers))],
            )
        )
    return flags


def _groupings(report: ClassReport, rules: ReportConfig, config: DashboardConfig) -> list[Grouping]:
    out = []
    for index, skill in enumerate(report.skills):
        stuck, refresh = [], []
        for student in report.students:
            cell = student.cells[index]
            if (
                cell.status == "learning"
                and cell.attempts >= config.stuck_answers
                and (cell.attempts >= rules.wheel_spin_attempts or 2 * cell.correct < cell.attempts)
            ):
                stuck.append((student.student_id, student.external_id))
            elif cell.status in ("due_for_review", "needs_relearning"):
                refresh.append((student.student_id, student.external_id))
        if len(stuck) >= config.min_group:
            out.append(
                Grouping(
                    "stuck",
                    skill.skill_id,
                    skill.name,
                    stuck,
                    f"{len(stuck)} students are stuck on {skill.name}",
                )
            )
        if len(refresh) >= config.min_group:
            out.append(
                Grouping(
                    "refresh",
                    skill.skill_id,
                    skill.name,
                    refresh,
                    f"{len(refresh)} students need a refresh of {skill.name}",
                )
            )
    order = {s.skill_id: i for i, s in enumerate(report.skills)}
    return sorted(out, key=lambda g: (-len(g.students), g.kind != "stuck", order[g.skill_id]))


def build_dashboard(
    report: ClassReport,
    recent: Mapping[str, RecentAnswers],
    rules: ReportConfig,
    config: DashboardConfig = DashboardConfig(),
) -> Dashboard:
    """Flags per student and suggested groupings (see the module docstring)."""
    flagged = []
    for student in report.students:
        flags = _flags(student, report, recent.get(student.student_id), config)
        if flags:
            flagged.append(FlaggedStudent(student.student_id, student.external_id, flags))
    flagged.sort(key=lambda f: (f.flags[0].kind == "no_answers", -len(f.flags), f.external_id))
    contradicted = frozenset(
        (f.student_id, skill_id)
        for f in flagged
        for flag in f.flags
        if flag.kind == "estimate_vs_answers"
        for skill_id in flag.skill_ids
    )
    return Dashboard(
        flagged, _groupings(report, rules, config), len(report.students) - len(flagged), contradicted
    )
