"""LTI Advantage in the tutor's terms, pure: what a course's link practises (deep linking's choice), the score
a student's mastery of it makes (AGS), when a failed send is tried again, and what a class list from the
platform changes (NRPS). The protocol itself (tokens, signatures, the services' requests) is pylti1p3next's,
in ``app/services/integration``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from app.domain.content import ContentGraph
from app.domain.lti import CURRICULUM, LEARNER_ROLES, MAX_ID, LinkTarget, TargetKind

# --- what a link practises ------------------------------------------------------------------------------


def linked_skills(graph: ContentGraph, target: LinkTarget | None) -> tuple[str, ...]:
    """The skills a link scores, in prerequisite order: practicable ones only (with exercises). Empty when
    the target names a unit or skill the content no longer has."""
    target = target or CURRICULUM
    practicable = [s for s in graph.skill_order if graph.exercises_by_skill.get(s)]
    if target.kind is TargetKind.UNIT:
        return tuple(s for s in practicable if graph.skills[s].unit == target.value)
    if target.kind is TargetKind.SKILL:
        return (target.value,) if target.value in practicable else ()
    return tuple(practicable)


def target_title(graph: ContentGraph, target: LinkTarget | None) -> str:
    """The link's title in the LMS and on the practice page ("Fractions", "Place value")."""
    target = target or CURRICULUM
    if target.kind is TargetKind.SKILL and target.value in graph.skills:
        return graph.skills[target.value].name
    if target.kind is TargetKind.UNIT:
        return target.value
    return "The whole curriculum"


@dataclass(frozen=True)
class Choice:
    target: str  # LinkTarget as text: the form's value
    title: str
    skills: int  # how many skills it scores


@dataclass(frozen=True)
class UnitChoices:
    unit: Choice
    skills: tuple[Choice, ...]


def link_choices(graph: ContentGraph) -> tuple[Choice, tuple[UnitChoices, ...]]:
    """What an instructor can link: the whole curriculum, then each unit with its skills, in curriculum
    order (skills of no unit come under "Other skills", which cannot be linked as one)."""
    whole = Choice(str(CURRICULUM), target_title(graph, CURRICULUM), len(linked_skills(graph, CURRICULUM)))
    units: dict[str, list[Choice]] = {}
    for skill_id in linked_skills(graph, CURRICULUM):
        skill = graph.skills[skill_id]
        units.setdefault(skill.unit, []).append(Choice(f"skill:{skill_id}", skill.name, 1))
    grouped = []
    for unit, skills in units.items():
        target = LinkTarget(TargetKind.UNIT, unit)
        head = Choice(str(target), unit, len(skills)) if unit else Choice("", "Other skills", len(skills))
        grouped.append(UnitChoices(head, tuple(skills)))
    return whole, tuple(grouped)


def focus_skills(graph: ContentGraph, target: LinkTarget | None) -> frozenset[str] | None:
    """The skills practice keeps to for a link (its skills; selection adds their prerequisites), or None:
    the whole curriculum, no restriction."""
    if target is None or target.kind is TargetKind.CURRICULUM:
        return None
    return frozenset(linked_skills(graph, target))


# --- the score (AGS) ----------------------------------------------------------------------------------

# AGS 2.0 activityProgress and gradingProgress values the tutor sends.
IN_PROGRESS, COMPLETED = "InProgress", "Completed"
PENDING, FULLY_GRADED = "Pending", "FullyGraded"


@dataclass(frozen=True)
class Score:
    """A score for the platform: the linked skills mastered out of those linked."""

    given: float  # skills mastered, in [0, maximum]
    maximum: float  # skills linked, >= 1
    activity: str  # InProgress, or Completed once every linked skill is mastered
    grading: str  # Pending (a partial score the tutor will update by itself), or FullyGraded
    comment: str

    def same_as(
        self, given: float | None, maximum: float | None, activity: str | None, grading: str | None
    ) -> bool:
        """Whether the platform already has this score (the comment follows from the numbers)."""
        return (given, maximum, activity, grading) == (self.given, self.maximum, self.activity, self.grading)


def score_of(linked: Sequence[str], mastered: Iterable[str], practised: Iterable[str]) -> Score | None:
    """The score of a student on a link's skills, or None when there is nothing honest to send: no skill
    linked, or none of them practised yet (the activity has not started).

    ``mastered``: the skills the student's report shows as mastered (earned, and the estimate now at or
    above the review level: ``tracking.status_of``); ``practised``: those with at least one answer. The
    score is the share of the linked skills mastered, as ``mastered of linked``: while some are not,
    the activity is in progress and the grade pending (it changes with the next answers, or as memory
    fades); with all mastered it is completed and fully graded (it may still fall back when a skill comes
    due for review)."""
    if not linked:
        return None
    linked_set = set(linked)
    if not linked_set & set(practised):
        return None
    done = len(linked_set & set(mastered))
    total = len(linked_set)
    complete = done == total
    noun = "skill" if total == 1 else "skills"
    return Score(
        given=float(done),
        maximum=float(total),
        activity=COMPLETED if complete else IN_PROGRESS,
        grading=FULLY_GRADED if complete else PENDING,
        comment=f"{done} of {total} {noun} mastered in the tutor.",
    )


FIRST_RETRY = timedelta(minutes=1)
LAST_RETRY = timedelta(hours=6)


def retry_delay(attempts: int) -> timedelta:
    """How long to wait after ``attempts`` (>= 1) failed sends in a row: 1 minute, doubled each time, at most
    6 hours (a platform down for a day still gets the score within hours of coming back)."""
    if attempts < 1:
        return timedelta(0)
    return min(FIRST_RETRY * (1 << min(attempts - 1, 20)), LAST_RETRY)


def is_transient(status: int | None) -> bool:
    """Whether a failed request may work later: no answer at all (``None``: refused, timed out), a timeout,
    too many requests, or a server error. Any other status is the request's fault: not retried until the
    student's state changes again."""
    return status is None or status in (408, 425, 429) or status >= 500


# --- class lists (NRPS) ----------------------------------------------------------------------------------

ACTIVE = "Active"
LEARNER_SUB_ROLE = "#Learner"


@dataclass(frozen=True)
class Member:
    """One person of a platform's class list, as far as the tutor reads it: no name, email or picture."""

    sub: str
    learner: bool
    active: bool


def read_members(members: Iterable[Any]) -> list[Member]:
    """The members of an NRPS membership container (``members``), ids and roles only; entries without a
    usable ``user_id`` are skipped. The first entry of a ``user_id`` counts."""
    found: dict[str, Member] = {}
    for member in members:
        if not isinstance(member, Mapping):
            continue
        sub = member.get("user_id")
        roles = member.get("roles")
        if not isinstance(sub, str) or not sub or len(sub) > MAX_ID or any(ord(c) < 32 for c in sub):
            continue
        role_list = [r for r in roles if isinstance(r, str)] if isinstance(roles, list) else []
        learner = any(r in LEARNER_ROLES or r.endswith(LEARNER_SUB_ROLE) or r == "Learner" for r in role_list)
        status = member.get("status", ACTIVE)
        found.setdefault(sub, Member(sub, learner, status == ACTIVE))
    return list(found.values())


@dataclass(frozen=True)
class RosterPlan:
    """What a class list changes in the course's class."""

    add: tuple[str, ...]  # subs of active learners to enrol (made students when new)
    end: tuple[str, ...]  # subs of the class's LMS learners to unenrol (no longer active learners there)
    kept: int  # active learners already in the class
    skipped: int  # active learners who are teachers here (a person is a student or a teacher)


def plan_roster(members: Sequence[Member], enrolled: Iterable[str], teachers: Iterable[str]) -> RosterPlan:
    """``enrolled``: subs of the platform's learners in the class now; ``teachers``: subs that are staff
    accounts of the platform. Active learners are enrolled; the class's LMS learners who are not active
    learners of the list any more (removed, inactive, or now only an instructor) are unenrolled. Members
    who joined the class otherwise (a join code) are never touched."""
    enrolled_set, teacher_set = set(enrolled), set(teachers)
    active = {m.sub for m in members if m.learner and m.active}
    skipped = active & teacher_set
    active -= teacher_set
    return RosterPlan(
        add=tuple(sorted(active - enrolled_set)),
        end=tuple(sorted(enrolled_set - active)),
        kept=len(active & enrolled_set),
        skipped=len(skipped),
    )
