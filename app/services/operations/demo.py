"""Demo data for ``scripts/serve``: a school admin, a teacher and a class whose students have weeks of
simulated practice and consented group attributes, so every page has something true to show.

Everything is marked as demo data: the class is called "Demo class (demo data: simulated students)", the
simulated students are ``sim-01``, ``sim-02``, ..., their consent was "given by" ``demo data
(simulated)``. Three students with no answers (``demo-1`` to ``demo-3``) are there to practise by hand.

The simulated students are the hidden students of the forgetting world (``domain/worlds.py``: they learn,
forget and guess by a model of their own, never the tutor's). Each one practises on school days over the
last weeks, chosen for by the tutor's own policy and traced by its own tracker at the time of each answer,
exactly as ``tutoring.answers`` does it live. Answers carry the time they were given, as log imports do
(``services/modelling/imports.py``): every row is written with the moment the tracker was given, so the
mastery table equals a replay of the log (``flask check-consistency`` passes) and forgetting since the last
session shows as it would have. A few students stand out on purpose: some lean on hints, some stopped
practising a week ago.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.domain.access import Principal, Role
from app.domain.content import ContentGraph, Exercise
from app.domain.grading import stored_answer
from app.domain.selection import Recommendation as Choice
from app.domain.selection import choose_next_exercise
from app.domain.simulation import build_view
from app.domain.tracking import StudentModel, apply_answer
from app.domain.worlds import ForgettingConfig, ForgettingWorld, HiddenStudent
from app.models import Mastery, Recommendation, Response, ResponseSkill, StaffUser, Student, utcnow
from app.services.people import groups
from app.services.people.accounts import create_class, create_school, create_staff_user, enroll
from app.services.reporting.bias import run_bias_check
from app.services.tutoring.config import mastery_rules, policy_config
from app.services.tutoring.content import ContentSnapshot, current_snapshot
from app.services.tutoring.student_models import refresh_answer_counts, row_values

TEACHER_EMAIL = "teacher@demo.school"
ADMIN_EMAIL = "admin@demo.school"
CLASS_NAME = "Demo class (demo data: simulated students)"
CONSENT_BY = "demo data (simulated)"
FRESH_STUDENTS = ("demo-1", "demo-2", "demo-3")
HINT_HEAVY_EVERY, QUIT_EARLY_EVERY = 6, 7  # students 3, 9, ... lean on hints; 5, 12, ... stopped a week ago


class DemoExists(Exception):
    """The demo was created before (its passwords were shown then)."""


@dataclass(frozen=True)
class DemoConfig:
    students: int = 20  # simulated students (20 or more: groups of 10+ let a bias check show numbers)
    weeks: int = 3  # of school days (Monday to Friday) with practice, up to yesterday
    answers_per_session: int = 8
    seed: int = 0

    def __post_init__(self) -> None:
        problems = [
            f"{name} must be at least 1, got {getattr(self, name)}"
            for name in ("students", "weeks", "answers_per_session")
            if getattr(self, name) < 1
        ]
        if self.students > 200:
            problems.append(f"students must be at most 200, got {self.students}")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass
class Demo:
    school: str
    teacher_email: str
    admin_email: str
    class_id: int
    join_code: str
    codes: list[tuple[str, str]]  # (external id, personal code) for signing in as a student
    simulated: list[str] = field(default_factory=list)  # student ids
    answers: int = 0
    bias_check_id: int | None = None


def create_demo(
    session: Session,
    *,
    teacher_password: str,
    admin_password: str,
    school_name: str = "Demo school",
    config: DemoConfig = DemoConfig(),
    now: datetime | None = None,
    bias_check: bool = True,
) -> Demo:
    """Create the demo school's admin, teacher and class, and simulate its students' practice.

    Raises ``DemoExists`` when the demo teacher is already there (nothing is written then).
    """
    if session.scalar(select(StaffUser.id).where(StaffUser.email == TEACHER_EMAIL)) is not None:
        raise DemoExists(f"the demo teacher {TEACHER_EMAIL} already exists")
    now = now or utcnow()
    school, _ = create_school(session, school_name)
    admin = create_staff_user(session, school, ADMIN_EMAIL, "Demo admin", admin_password, role=Role.ADMIN)
    teacher = create_staff_user(
        session, school, TEACHER_EMAIL, "Demo teacher", teacher_password, role=Role.TEACHER
    )
    klass = create_class(session, teacher, CLASS_NAME)
    names = [f"sim-{i + 1:02d}" for i in range(config.students)]
    enrolled = {e.external_id: e for e in enroll(session, klass, [*FRESH_STUDENTS, *names])}
    demo = Demo(
        school.name,
        TEACHER_EMAIL,
        ADMIN_EMAIL,
        klass.id,
        klass.join_code,
        [(n, enrolled[n].code or "") for n in (*FRESH_STUDENTS, names[0])],
        [enrolled[n].student_id for n in names],
    )
    demo.answers = simulate_practice(session, demo.simulated, config, now)
    admin_principal = Principal(Role.ADMIN, str(admin.id), school.id, admin.name)
    _group_attributes(session, admin_principal, demo.simulated, config.seed)
    if bias_check:
        demo.bias_check_id = run_bias_check(session, admin_principal, "language_learner").id
    return demo


def practice_weeks(config: DemoConfig, now: datetime) -> list[datetime]:
    """The start of each school day's sitting (Monday to Friday, 09:00 UTC) over the ``weeks`` weeks up to
    yesterday: every answer lies in the past, the latest ones recent enough to be remembered."""
    today = now.replace(hour=9, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=n) for n in range(7 * config.weeks, 0, -1)]
    return [day for day in days if day.weekday() < 5]


def simulate_practice(session: Session, student_ids: Sequence[str], config: DemoConfig, now: datetime) -> int:
    """Weeks of practice for each student (hidden students of the forgetting world), written as the service
    writes answers, at the times they were given. Commits once; returns the number of answers."""
    snapshot = current_snapshot(session)
    days = practice_weeks(config, now)
    # The world's own calendar is not used (its start must be a Monday): only its hidden students.
    start = days[0] - timedelta(days=days[0].weekday())
    world = ForgettingConfig(
        students=max(len(student_ids), 1),
        weeks=config.weeks,
        answers_per_session=config.answers_per_session,
        start=start,
        world=ForgettingWorld(prior=0.3, learn=0.3),
        seed=f"demo:{config.seed}",
    )
    total = 0
    for index, student_id in enumerate(student_ids):
        total += _practise(
            session, snapshot, student_id, HiddenStudent(snapshot.graph, world, index), index, days, config
        )
    refresh_answer_counts(session, list(student_ids))
    session.commit()
    return total


def _answer_text(exercise: Exercise, correct: bool) -> str:
    """What the simulated student typed: the answer, or a wrong one the grader refuses."""
    if exercise.answer_kind == "ordered":  # stored as the answer list's JSON text, as a real one is
        return stored_answer(list(exercise.answers) if correct else list(exercise.items))
    if exercise.answer_kind == "multiple_select":
        wrong = [c for c in exercise.choices if c not in exercise.answers][:1] or list(exercise.answers[:1])
        return stored_answer(list(exercise.answers) if correct else wrong)
    if correct:
        return exercise.answers[0]
    if exercise.answer_kind == "multiple_choice":
        return next(c for c in exercise.choices if c not in exercise.answers)
    return exercise.answers[0] + "0" if exercise.answer_kind == "numeric" else "(not sure)"


def _practise(
    session: Session,
    snapshot: ContentSnapshot,
    student_id: str,
    hidden: HiddenStudent,
    index: int,
    days: list[datetime],
    config: DemoConfig,
) -> int:
    graph: ContentGraph = snapshot.graph
    rules, policy = mastery_rules(), policy_config()
    rng = random.Random(f"demo:{config.seed}:{index}")
    hint_heavy = index % HINT_HEAVY_EVERY == 3
    sittings = days[:5] if index % QUIT_EARLY_EVERY == 5 else days
    model = StudentModel()
    exercises: list[str] = []
    outcomes: list[bool] = []
    times: list[datetime] = []
    last: Choice | None = None
    window = max(policy.recent_window, 10)  # as tutoring/next_exercise._view reads the log
    answers: list[tuple[Choice, Exercise, bool, int, datetime, list[dict[str, Any]]]] = []
    for day in sittings:
        for k in range(config.answers_per_session):
            at = day + timedelta(minutes=2 * k)
            view = build_view(graph, model, at, exercises, outcomes, times, last, window)
            choice = choose_next_exercise(graph, snapshot.params, view, policy, rng.getrandbits(63))
            if choice.exercise_id is None:
                break
            exercise = graph.exercises[choice.exercise_id]
            hints = 1 if exercise.hints and rng.random() < (0.6 if hint_heavy else 0.05) else 0
            correct = hidden.answer(exercise, at) or (hints > 0 and rng.random() < 0.5)  # a hint helps
            steps = apply_answer(
                model, exercise.skill_ids, correct and hints == 0, snapshot.params, now=at, rules=rules
            )
            answers.append(
                (
                    choice,
                    exercise,
                    correct,
                    hints,
                    at,
                    [
                        {
                            "skill_id": s.skill_id,
                            "position": i,
                            "parameters_id": snapshot.parameters[s.skill_id].id,
                            "p_mastery_before": s.p_mastery_before,
                            "p_correct": s.p_correct,
                            "p_mastery_after": s.p_mastery_after,
                            "p_mastery_paced_after": s.p_mastery_paced_after,
                            "estimate_before": s.estimate_before,
                            "estimate_after": s.estimate_after,
                        }
                        for i, s in enumerate(steps)
                    ],
                )
            )
            exercises.append(exercise.id)
            outcomes.append(correct)
            times.append(at)
            last = choice
    if not answers:
        return 0
    recommendation_ids = session.scalars(
        insert(Recommendation).returning(Recommendation.id, sort_by_parameter_order=True),
        [
            {
                "student_id": student_id,
                "created_at": at,
                "exercise_id": choice.exercise_id,
                "skill_id": choice.skill_id,
                "policy": choice.policy,
                "reason": choice.reason,
                "explanation": choice.explanation,
                "details": choice.details,
                "hints_shown": hints,
            }
            for choice, _, _, hints, at, _ in answers
        ],
    ).all()
    # As the web practice pages record them: graded here, keyed by the recommendation they answer.
    response_ids = session.scalars(
        insert(Response).returning(Response.id, sort_by_parameter_order=True),
        [
            {
                "student_id": student_id,
                "exercise_id": exercise.id,
                "correct": correct,
                "answer": _answer_text(exercise, correct),
                "graded_by": "server",
                "response_time_ms": None,
                "client_response_id": f"web-{rec}",
                "created_at": at,
                "recommendation_id": rec,
                "hints_used": hints,
            }
            for (_, exercise, correct, hints, at, _), rec in zip(answers, recommendation_ids, strict=True)
        ],
    ).all()
    session.execute(
        insert(ResponseSkill),
        [
            {**step, "response_id": response_id}
            for response_id, (*_, steps) in zip(response_ids, answers, strict=True)
            for step in steps
        ],
    )
    session.execute(
        insert(Mastery),
        [
            {
                "student_id": student_id,
                "skill_id": skill_id,
                "parameters_id": snapshot.parameters[skill_id].id,
                **row_values(state),
            }
            for skill_id, state in model.skills.items()
        ],
    )
    student = session.get(Student, student_id)
    assert student is not None
    student.speed_weights = model.speed_weights
    student.parameters_revision = snapshot.parameters_revision  # traced under the current parameters
    return len(answers)


def _group_attributes(session: Session, admin: Principal, student_ids: Sequence[str], seed: int) -> None:
    """Consented attributes for the bias checks: drawn at random, independent of how each student learns
    (so a check should find no concern), with one group too small to show (it is suppressed)."""
    rng = random.Random(f"demo-groups:{seed}")
    order = list(student_ids)
    rng.shuffle(order)
    for position, student_id in enumerate(order):
        groups.set_group_attributes(
            session,
            admin,
            student_id,
            {
                "language_learner": "yes" if position % 12 < 5 else "no",
                "gender": "female" if position % 2 == 0 else "male",
                "disability_support": "yes" if position % 4 == 0 and position < 12 else "no",
            },
            consent_given_by=CONSENT_BY,
            commit=False,
        )
    session.commit()
