"""A school's roster as its information system would export it: a small builder of OneRoster bundles for the
tests (1.1 or 1.2, bulk or delta), written with the domain's writer."""

from __future__ import annotations

from dataclasses import dataclass, field

from app.domain.oneroster import (
    AcademicSession,
    Bundle,
    Class,
    Course,
    Enrollment,
    Mode,
    Org,
    Role,
    User,
    files_of,
)
from tests.oneroster_support import write_bundle

WHEN = "2024-10-01T08:00:00Z"


@dataclass
class Roster:
    version: str = "1.1"
    org: str = "org-hill"
    orgs: dict[str, tuple[str, str]] = field(default_factory=dict)  # sourcedId -> (name, type)
    classes: dict[str, tuple[str, str]] = field(default_factory=dict)  # sourcedId -> (title, status)
    # sourcedId -> (role, given name, family name, email, status)
    users: dict[str, tuple[str, str, str, str, str]] = field(default_factory=dict)
    # sourcedId -> (class, user, role, primary, status)
    enrollments: dict[str, tuple[str, str, str, str, str]] = field(default_factory=dict)
    org_of: dict[str, str] = field(default_factory=dict)  # a class's or user's org, when not ``org``

    def __post_init__(self) -> None:
        self.orgs.setdefault("district", ("North District", "district"))
        self.orgs.setdefault(self.org, ("Hill School", "school"))

    def klass(self, sid: str, title: str, status: str = "", org: str | None = None) -> Roster:
        self.classes[sid] = (title, status)
        if org:
            self.org_of[sid] = org
        return self

    def teacher(
        self,
        sid: str,
        email: str,
        given: str = "Tom",
        family: str = "Lee",
        status: str = "",
        org: str | None = None,
    ) -> Roster:
        self.users[sid] = ("teacher", given, family, email, status)
        if org:
            self.org_of[sid] = org
        return self

    def student(self, sid: str, given: str = "Ann", family: str = "Smith", status: str = "") -> Roster:
        # Names and an email a real export carries: none of them may end up in the database.
        self.users[sid] = ("student", given, family, f"{given}.{family}@home.example".lower(), status)
        return self

    def enrol(self, class_sid: str, user_sid: str, *, primary: str = "", status: str = "") -> Roster:
        role = self.users[user_sid][0] if user_sid in self.users else "student"
        self.enrollments[f"enr-{class_sid}-{user_sid}"] = (class_sid, user_sid, role, primary, status)
        return self

    def unenrol(self, class_sid: str, user_sid: str) -> Roster:
        del self.enrollments[f"enr-{class_sid}-{user_sid}"]
        return self

    def bundle(self, mode: Mode = Mode.BULK, files: tuple[str, ...] | None = None) -> bytes:
        """The zip; ``files``: only these are sent (the others are absent), e.g. a delta of enrollments."""
        delta = mode is Mode.DELTA

        def meta(status: str) -> tuple[str, str]:
            return (status or "active", WHEN) if delta else (status, "")

        term = AcademicSession("term-1", *meta(""), 0, "Fall", "term", "2024-09-01", "2024-12-20", "", "2025")
        course = Course("course-1", *meta(""), 0, "term-1", "Year 7", "Y7", self.org)
        orgs = tuple(Org(sid, *meta(""), 0, name, kind, "", "") for sid, (name, kind) in self.orgs.items())
        classes = tuple(
            Class(
                sid,
                *meta(status),
                0,
                title,
                "course-1",
                "",
                "scheduled",
                self.org_of.get(sid, self.org),
                ("term-1",),
            )
            for sid, (title, status) in self.classes.items()
        )
        users = tuple(
            User(
                sid,
                *meta(status),
                0,
                "true",
                email.split("@")[0] or sid,
                given,
                family,
                email,
                role if self.version == "1.1" else "",
                (self.org_of.get(sid, self.org),),
            )
            for sid, (role, given, family, email, status) in self.users.items()
        )
        roles = (
            tuple(
                Role(f"role-{sid}", *meta(status), 0, sid, "primary", role, self.org_of.get(sid, self.org))
                for sid, (role, _, _, _, status) in self.users.items()
            )
            if self.version == "1.2"
            else ()
        )
        enrollments = tuple(
            Enrollment(
                sid,
                *meta(status),
                0,
                class_sid,
                self.org_of.get(class_sid, self.org),
                user,
                role,
                primary,
                "",
                "",
            )
            for sid, (class_sid, user, role, primary, status) in self.enrollments.items()
        )
        sent = set(files) if files is not None else set(files_of(self.version))
        modes = {name: mode if name in sent else Mode.ABSENT for name in files_of(self.version)}
        if not roles:
            modes["roles"] = Mode.ABSENT
        if self.version == "1.1":
            modes.pop("roles", None)
        return write_bundle(
            Bundle(self.version, modes, orgs, (term,), (course,), classes, users, roles, enrollments)
        )


def hill_roster(version: str = "1.1") -> Roster:
    """Two classes, two teachers, three students."""
    return (
        Roster(version)
        .klass("k-maths", "Maths 7B")
        .klass("k-science", "Science 7B")
        .teacher("t-lee", "T.Lee@Hill.example")
        .teacher("t-kim", "m.kim@hill.example", "Mia", "Kim")
        .student("s-1", "Ann", "Smith")
        .student("s-2", "Bob", "Jones")
        .student("s-3", "Cy", "Brown")
        .enrol("k-maths", "t-lee", primary="true")
        .enrol("k-science", "t-kim")
        .enrol("k-maths", "s-1")
        .enrol("k-maths", "s-2")
        .enrol("k-maths", "s-3")
        .enrol("k-science", "s-1")
    )
