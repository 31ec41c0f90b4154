"""Who may do what: the roles, the actions, and which role may attempt which action.

This answers only "may this KIND of caller ever do this?" (a 403 when not).
"Is this particular student or class theirs?" is answered by the scoped queries
in ``app.services.people.access`` (a 404 when not, so existence is never revealed).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app.domain.errors import Forbidden


class Role(StrEnum):
    APP = "app"  # a learning app, by API key; sees its school's students
    ADMIN = "admin"  # manages one school
    TEACHER = "teacher"  # sees the classes they own and the students in them
    STUDENT = "student"  # sees only themself


class Action(StrEnum):
    READ_CONTENT = "read content"
    CREATE_STUDENT = "create students"
    READ_STUDENT = "read a student's data"
    SET_PERSONALIZATION = "change a student's personalization"
    PRACTISE = "practise (ask for exercises, answer them)"
    # Only a learning app grades answers itself: a person's answer is graded by the service.
    SEND_GRADES = (
        "send 'correct' (only a learning app's key may grade answers itself); send 'answer' and "
        "the service grades it"
    )
    READ_CLASS = "read classes"
    # The school's students as a list (a student sees only themself, so never a list).
    LIST_STUDENTS = "list students"
    # Which students are in a class (not the class itself): the school's apps and admins, a teacher their own.
    MANAGE_CLASS_MEMBERS = "enrol students into a class or remove them"
    MANAGE_API_KEYS = "manage API keys"
    MANAGE_LMS = "register LMS platforms (LTI)"
    # A class made from an LMS course: pull its class list (NRPS), send its scores again (AGS).
    SYNC_LMS = "sync a class with its LMS course (class list, grades)"
    # Whether a student's mastery goes to their LMS gradebook: the student, or an admin on their behalf.
    SET_LMS_SHARING = "choose whether mastery is sent to the LMS gradebook"
    CHANGE_PASSWORD = "change a password"
    DELETE_STUDENT = "delete a student and all their data"
    SET_GROUP_ATTRIBUTES = "record a student's group attributes"
    DECLINE_GROUP_ATTRIBUTES = "withdraw consent to group attributes"
    RUN_BIAS_CHECK = "run bias checks"
    READ_BIAS_CHECK = "read bias checks"
    # Background jobs: see and cancel the school's; start the service's maintenance (fits of the parameters,
    # log imports, retention purges), which the operator also runs from the shell.
    MANAGE_JOBS = "see or cancel background jobs"
    RUN_MAINTENANCE = "fit parameters, import logs or purge expired data"
    # The school's administration pages: teachers, classes, rosters, class and personal codes.
    MANAGE_SCHOOL = "manage the school's teachers, classes and rosters"
    # Staff try an exercise as a student would; the page shows the accepted answers and the solution.
    PREVIEW_CONTENT = "try exercises as a student would (answers shown)"


PERMISSIONS: dict[Role, frozenset[Action]] = {
    Role.APP: frozenset(
        {
            Action.READ_CONTENT,
            Action.CREATE_STUDENT,
            Action.READ_STUDENT,
            Action.SET_PERSONALIZATION,
            Action.PRACTISE,
            Action.SEND_GRADES,
            Action.READ_CLASS,
            Action.LIST_STUDENTS,
            Action.MANAGE_CLASS_MEMBERS,
            Action.DELETE_STUDENT,
        }
    ),
    Role.ADMIN: frozenset(
        {
            Action.READ_CONTENT,
            Action.READ_STUDENT,
            Action.SET_PERSONALIZATION,
            Action.READ_CLASS,
            Action.LIST_STUDENTS,
            Action.MANAGE_CLASS_MEMBERS,
            Action.MANAGE_API_KEYS,
            Action.MANAGE_LMS,
            Action.SYNC_LMS,
            Action.SET_LMS_SHARING,
            Action.CHANGE_PASSWORD,
            Action.DELETE_STUDENT,
            Action.SET_GROUP_ATTRIBUTES,
            Action.DECLINE_GROUP_ATTRIBUTES,
            Action.RUN_BIAS_CHECK,
            Action.READ_BIAS_CHECK,
            Action.MANAGE_JOBS,
            Action.RUN_MAINTENANCE,
            Action.MANAGE_SCHOOL,
            Action.PREVIEW_CONTENT,
        }
    ),
    Role.TEACHER: frozenset(
        {
            Action.READ_CONTENT,
            Action.PREVIEW_CONTENT,
            Action.READ_STUDENT,
            Action.SET_PERSONALIZATION,
            Action.READ_CLASS,
            Action.LIST_STUDENTS,
            Action.MANAGE_CLASS_MEMBERS,
            Action.SYNC_LMS,
            Action.CHANGE_PASSWORD,
            Action.READ_BIAS_CHECK,
        }
    ),
    # A student practises as themself; whose data they can read is the scope's business.
    Role.STUDENT: frozenset(
        {
            Action.READ_CONTENT,
            Action.READ_STUDENT,
            Action.SET_PERSONALIZATION,
            Action.PRACTISE,
            Action.DECLINE_GROUP_ATTRIBUTES,
            Action.SET_LMS_SHARING,
        }
    ),
}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller of one request.

    ``id`` is the app's id, the staff user's id, or the student's id (as a string);
    ``school_id`` is the tenant every query is confined to.
    """

    role: Role
    id: str
    school_id: int
    name: str

    @property
    def actor(self) -> str:
        """How the caller is recorded in audit fields, e.g. ``teacher:12``."""
        return f"{self.role.value}:{self.id}"


def ensure_allowed(principal: Principal, action: Action) -> None:
    """Raise Forbidden when the principal's role may never perform ``action``."""
    if action not in PERMISSIONS[principal.role]:
        role = principal.role.value
        raise Forbidden(f"{'An' if role[0] in 'aeiou' else 'A'} {role} may not {action.value}.")
