"""A strict reader (and writer) of OneRoster 1.1 and 1.2 CSV bundles: the zip a student information system
exports, with ``manifest.csv`` and the rostering files this service uses (orgs, academicSessions, courses,
classes, users, enrollments; 1.2 also roles, where a user's role moved to).

``read_bundle`` checks everything it can without a database and reports every problem at once, each named by
file, line and why (a missing column or required field, a bad status, role, date or flag, a duplicate or an
unknown sourcedId). Unknown columns are ignored (the binding lets systems add their own on the right), a
UTF-8 byte order mark and CRLF line ends are accepted. References are checked against the bundle where the
file referred to is ``bulk`` (complete); a ``delta`` file may refer to rows sent earlier, which only the
service can check.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from app.domain.errors import DomainError

VERSIONS = ("1.1", "1.2")
MANIFEST = "manifest.csv"
# The most a bundle may unpack to: a school's roster is megabytes; a zip that claims more is refused unread.
MAX_UNPACKED_BYTES = 512 * 1024 * 1024


class Mode(StrEnum):
    BULK = "bulk"  # the whole set: a row that is not there is gone
    DELTA = "delta"  # changes only: rows not there are unchanged
    ABSENT = "absent"


ACTIVE, TO_BE_DELETED, INACTIVE = "active", "tobedeleted", "inactive"
# 1.1 still lists "inactive" (deprecated; read as tobedeleted); 1.2 keeps only active and tobedeleted.
STATUSES = {"1.1": (ACTIVE, TO_BE_DELETED, INACTIVE), "1.2": (ACTIVE, TO_BE_DELETED)}
ORG_TYPES = ("department", "school", "district", "local", "state", "national")
SESSION_TYPES = ("gradingPeriod", "semester", "schoolYear", "term")
CLASS_TYPES = ("homeroom", "scheduled")
USER_ROLES = {
    "1.1": ("administrator", "aide", "guardian", "parent", "proctor", "relative", "student", "teacher"),
    "1.2": (
        "aide",
        "counselor",
        "districtAdministrator",
        "guardian",
        "parent",
        "principal",
        "proctor",
        "relative",
        "siteAdministrator",
        "student",
        "systemAdministrator",
        "teacher",
    ),
}
ENROLLMENT_ROLES = {
    "1.1": ("administrator", "proctor", "student", "teacher"),
    "1.2": ("administrator", "proctor", "student", "teacher", "aide", "guardian", "parent", "relative"),
}
ROLE_TYPES = ("primary", "secondary")
BOOLEANS = ("true", "false")
DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?(Z|[+-]\d{2}:\d{2})?")
YEAR = re.compile(r"\d{4}")


@dataclass(frozen=True)
class Problem:
    file: str
    line: int  # 1 is the header; 0: the bundle or the file as a whole
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}" if self.line else f"{self.file}: {self.message}"


class BundleProblems(DomainError):
    """The bundle cannot be imported: ``problems`` lists every problem found (nothing was written)."""

    SHOWN = 50

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        shown = "; ".join(str(p) for p in problems[: self.SHOWN])
        more = len(problems) - self.SHOWN
        super().__init__(
            f"{len(problems)} problem(s) in the OneRoster bundle, nothing was imported: {shown}"
            + (f"; and {more} more" if more > 0 else "")
        )


# --- records ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Record:
    sourced_id: str
    status: str  # "" (bulk), active, tobedeleted (or 1.1's inactive)
    date_last_modified: str
    line: int = field(compare=False)

    @property
    def deleted(self) -> bool:
        return self.status in (TO_BE_DELETED, INACTIVE)


@dataclass(frozen=True)
class Org(Record):
    name: str
    type: str
    identifier: str
    parent_sourced_id: str


@dataclass(frozen=True)
class AcademicSession(Record):
    title: str
    type: str
    start_date: str
    end_date: str
    parent_sourced_id: str
    school_year: str


@dataclass(frozen=True)
class Course(Record):
    school_year_sourced_id: str
    title: str
    course_code: str
    org_sourced_id: str


@dataclass(frozen=True)
class Class(Record):
    title: str
    course_sourced_id: str
    class_code: str
    class_type: str
    school_sourced_id: str
    term_sourced_ids: tuple[str, ...]


@dataclass(frozen=True)
class User(Record):
    enabled_user: str
    username: str
    given_name: str
    family_name: str
    email: str
    role: str  # 1.1: from users.csv; 1.2: "" (roles.csv holds them)
    org_sourced_ids: tuple[str, ...]  # 1.1: from users.csv; 1.2: primaryOrgSourcedId, if any


@dataclass(frozen=True)
class Role(Record):
    """1.2: one role of a user at an org."""

    user_sourced_id: str
    role_type: str
    role: str
    org_sourced_id: str


@dataclass(frozen=True)
class Enrollment(Record):
    class_sourced_id: str
    school_sourced_id: str
    user_sourced_id: str
    role: str
    primary: str
    begin_date: str
    end_date: str


@dataclass(frozen=True)
class Bundle:
    version: str
    modes: dict[str, Mode]  # file name ("users") -> its mode in the manifest
    orgs: tuple[Org, ...] = ()
    academic_sessions: tuple[AcademicSession, ...] = ()
    courses: tuple[Course, ...] = ()
    classes: tuple[Class, ...] = ()
    users: tuple[User, ...] = ()
    roles: tuple[Role, ...] = ()
    enrollments: tuple[Enrollment, ...] = ()

    def mode(self, name: str) -> Mode:
        return self.modes.get(name, Mode.ABSENT)


# --- the files: each column, whether it is required, how it is checked ------------------------------------


@dataclass(frozen=True)
class Column:
    name: str  # the header
    attr: str  # the record's field
    required: bool = False
    check: str = ""  # "", "date", "year", "list", or an enumeration's key (see _ENUMS)


def _common() -> list[Column]:
    return [
        Column("sourcedId", "sourced_id", True),
        Column("status", "status", check="status"),
        Column("dateLastModified", "date_last_modified", check="datetime"),
    ]


FILES: dict[str, dict[str, Any]] = {
    "orgs": {
        "record": Org,
        "columns": {
            v: [
                *_common(),
                Column("name", "name", True),
                Column("type", "type", True, "org_type"),
                Column("identifier", "identifier"),
                Column("parentSourcedId", "parent_sourced_id"),
            ]
            for v in VERSIONS
        },
    },
    "academicSessions": {
        "record": AcademicSession,
        "columns": {
            v: [
                *_common(),
                Column("title", "title", True),
                Column("type", "type", True, "session_type"),
                Column("startDate", "start_date", True, "date"),
                Column("endDate", "end_date", True, "date"),
                Column("parentSourcedId", "parent_sourced_id"),
                Column("schoolYear", "school_year", True, "year"),
            ]
            for v in VERSIONS
        },
    },
    "courses": {
        "record": Course,
        "columns": {
            v: [
                *_common(),
                Column("schoolYearSourcedId", "school_year_sourced_id"),
                Column("title", "title", True),
                Column("courseCode", "course_code"),
                Column("orgSourcedId", "org_sourced_id", True),
            ]
            for v in VERSIONS
        },
    },
    "classes": {
        "record": Class,
        "columns": {
            v: [
                *_common(),
                Column("title", "title", True),
                Column("courseSourcedId", "course_sourced_id", True),
                Column("classCode", "class_code"),
                Column("classType", "class_type", True, "class_type"),
                Column("schoolSourcedId", "school_sourced_id", True),
                Column("termSourcedIds", "term_sourced_ids", True, "list"),
            ]
            for v in VERSIONS
        },
    },
    "users": {
        "record": User,
        "columns": {
            "1.1": [
                *_common(),
                Column("enabledUser", "enabled_user", True, "boolean"),
                Column("orgSourcedIds", "org_sourced_ids", True, "list"),
                Column("role", "role", True, "user_role"),
                Column("username", "username", True),
                Column("givenName", "given_name", True),
                Column("familyName", "family_name", True),
                Column("email", "email"),
            ],
            "1.2": [
                *_common(),
                Column("enabledUser", "enabled_user", True, "boolean"),
                Column("username", "username", True),
                Column("givenName", "given_name", True),
                Column("familyName", "family_name", True),
                Column("email", "email"),
                Column("primaryOrgSourcedId", "org_sourced_ids", check="list"),
            ],
        },
    },
    "roles": {
        "record": Role,
        "columns": {
            "1.2": [
                *_common(),
                Column("userSourcedId", "user_sourced_id", True),
                Column("roleType", "role_type", True, "role_type"),
                Column("role", "role", True, "user_role"),
                Column("orgSourcedId", "org_sourced_id", True),
            ]
        },
    },
    "enrollments": {
        "record": Enrollment,
        "columns": {
            v: [
                *_common(),
                Column("classSourcedId", "class_sourced_id", True),
                Column("schoolSourcedId", "school_sourced_id", True),
                Column("userSourcedId", "user_sourced_id", True),
                Column("role", "role", True, "enrollment_role"),
                Column("primary", "primary", check="boolean"),
                Column("beginDate", "begin_date", check="date"),
                Column("endDate", "end_date", check="date"),
            ]
            for v in VERSIONS
        },
    },
}
# The bundle's attribute for each file.
ATTRIBUTES = {
    "orgs": "orgs",
    "academicSessions": "academic_sessions",
    "courses": "courses",
    "classes": "classes",
    "users": "users",
    "roles": "roles",
    "enrollments": "enrollments",
}


def files_of(version: str) -> list[str]:
    """The files this reader reads in a bundle of ``version`` (each must be named in its manifest)."""
    return [name for name, spec in FILES.items() if version in spec["columns"]]


def _enums(version: str) -> dict[str, tuple[str, ...]]:
    return {
        "status": STATUSES[version],
        "org_type": ORG_TYPES,
        "session_type": SESSION_TYPES,
        "class_type": CLASS_TYPES,
        "user_role": USER_ROLES[version],
        "enrollment_role": ENROLLMENT_ROLES[version],
        "role_type": ROLE_TYPES,
        "boolean": BOOLEANS,
    }


def _valid_date(value: str) -> bool:
    if not DATE.fullmatch(value):
        return False
    try:
        date.fromisoformat(value)
    except ValueError:
        return False
    return True


def _valid_datetime(value: str) -> bool:
    if not DATETIME.fullmatch(value):
        return False
    try:
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return False
    return True


def _split_list(value: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in value.split(",") if part.strip())


# --- reading ----------------------------------------------------------------------------------------------


def _text(data: bytes, name: str, problems: list[Problem]) -> str | None:
    try:
        return data.decode("utf-8-sig")  # a byte order mark is tolerated, and dropped
    except UnicodeDecodeError as error:
        problems.append(Problem(name, 0, f"not UTF-8 text (byte {error.start})"))
        return None


def _rows(text: str, name: str, problems: list[Problem]) -> list[tuple[int, list[str]]] | None:
    """The file's rows with their line numbers (a quoted value may span lines: the row's first line)."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[tuple[int, list[str]]] = []
    try:
        while True:
            line = reader.line_num + 1
            try:
                row = next(reader)
            except StopIteration:
                return rows
            if row and any(cell.strip() for cell in row):  # blank lines (a trailing newline) are skipped
                rows.append((line, row))
    except csv.Error as error:
        problems.append(Problem(name, reader.line_num, f"not valid CSV ({error})"))
        return None


def _read_manifest(data: bytes, problems: list[Problem]) -> tuple[str, dict[str, Mode]] | None:
    text = _text(data, MANIFEST, problems)
    rows = _rows(text, MANIFEST, problems) if text is not None else None
    if rows is None:
        return None
    if not rows or [c.strip() for c in rows[0][1][:2]] != ["propertyName", "value"]:
        problems.append(Problem(MANIFEST, 1, "the header must be propertyName,value"))
        return None
    properties: dict[str, tuple[int, str]] = {}
    for line, row in rows[1:]:
        if len(row) < 2:
            problems.append(Problem(MANIFEST, line, "a row needs a propertyName and a value"))
            continue
        key, value = row[0].strip(), row[1].strip()
        if key in properties:
            problems.append(
                Problem(MANIFEST, line, f"{key} is given twice (first on line {properties[key][0]})")
            )
            continue
        properties[key] = (line, value)
    found = len(problems)
    if "manifest.version" not in properties:
        problems.append(Problem(MANIFEST, 0, "missing required property manifest.version"))
    elif properties["manifest.version"][1] != "1.0":
        line, value = properties["manifest.version"]
        problems.append(Problem(MANIFEST, line, f"manifest.version must be 1.0, not {value!r}"))
    if "oneroster.version" not in properties:
        problems.append(Problem(MANIFEST, 0, "missing required property oneroster.version"))
        return None
    line, version = properties["oneroster.version"]
    if version not in VERSIONS:
        problems.append(
            Problem(
                MANIFEST, line, f"oneroster.version must be one of {', '.join(VERSIONS)}, not {version!r}"
            )
        )
        return None
    modes: dict[str, Mode] = {}
    for name in files_of(version):
        key = f"file.{name}"
        if key not in properties:
            problems.append(Problem(MANIFEST, 0, f"missing required property {key}"))
            continue
        line, value = properties[key]
        try:
            modes[name] = Mode(value)
        except ValueError:
            problems.append(Problem(MANIFEST, line, f"{key} must be absent, bulk or delta, not {value!r}"))
    return (version, modes) if len(problems) == found else None


def _read_file(
    name: str, data: bytes, version: str, mode: Mode, problems: list[Problem]
) -> list[Record] | None:
    """The file's good rows (each bad one is a problem); None when the file cannot be read at all."""
    file_name = f"{name}.csv"
    text = _text(data, file_name, problems)
    rows = _rows(text, file_name, problems) if text is not None else None
    if rows is None:
        return None
    if not rows:
        problems.append(Problem(file_name, 0, "the file is empty (the header is required)"))
        return None
    header = [cell.strip() for cell in rows[0][1]]
    columns: list[Column] = FILES[name]["columns"][version]
    position: dict[str, int] = {}
    for index, title in enumerate(header):
        if title in position:
            problems.append(Problem(file_name, 1, f"column {title!r} appears twice"))
        position.setdefault(title, index)
    # Required columns must be there; an optional one may be left out (its values are then empty).
    missing = [c.name for c in columns if c.required and c.name not in position]
    if missing:
        problems.append(Problem(file_name, 1, f"missing column(s) {', '.join(missing)}"))
        return None
    if len(rows) == 1:
        problems.append(
            Problem(file_name, 0, f"no data rows (a file without rows is marked absent in {MANIFEST})")
        )
        return None
    enums = _enums(version)
    record_type = FILES[name]["record"]
    records: list[Record] = []
    seen: dict[str, int] = {}
    for line, row in rows[1:]:
        if len(row) != len(header):
            problems.append(
                Problem(file_name, line, f"{len(row)} values, but the header has {len(header)} columns")
            )
            continue
        values: dict[str, Any] = {}
        bad = False
        for column in columns:
            value = row[position[column.name]].strip() if column.name in position else ""
            why = _check(column, value, enums, mode)
            if why:
                problems.append(Problem(file_name, line, why))
                bad = True
            values[column.attr] = _split_list(value) if column.check == "list" else value
        sourced_id = values["sourced_id"]
        if sourced_id and sourced_id in seen:
            problems.append(
                Problem(file_name, line, f"sourcedId {sourced_id!r} repeats line {seen[sourced_id]}")
            )
            bad = True
        seen.setdefault(sourced_id, line)
        if bad:
            continue
        if record_type is User and version == "1.2":
            values["role"] = ""
        records.append(record_type(line=line, **values))
    return records


def _check(column: Column, value: str, enums: dict[str, tuple[str, ...]], mode: Mode) -> str:
    """Why ``value`` is not acceptable in ``column`` ("" when it is)."""
    if column.name in ("status", "dateLastModified") and mode is Mode.DELTA and not value:
        return f"missing required field {column.name} (a delta file gives it on every row)"
    if not value:
        return f"missing required field {column.name}" if column.required else ""
    if column.check == "status":
        if value not in enums["status"]:
            return f"bad status {value!r} (one of {', '.join(enums['status'])})"
    elif column.check == "datetime":
        if not _valid_datetime(value):
            return (
                f"bad date {value!r} in {column.name} (an ISO 8601 date and time, e.g. 2024-09-01T08:00:00Z)"
            )
    elif column.check == "date":
        if not _valid_date(value):
            return f"bad date {value!r} in {column.name} (YYYY-MM-DD)"
    elif column.check == "year":
        if not YEAR.fullmatch(value):
            return f"bad year {value!r} in {column.name} (YYYY)"
    elif column.check == "list":
        if not _split_list(value):
            return f"missing required field {column.name}" if column.required else ""
    elif column.check:
        allowed = enums[column.check]
        if value not in allowed:
            kind = "role" if column.check.endswith("role") else "value"
            return f"bad {kind} {value!r} in {column.name} (one of {', '.join(allowed)})"
    return ""


# (file, record attribute, referred file, whether the attribute is a list)
REFERENCES = (
    ("orgs", "parent_sourced_id", "orgs"),
    ("academicSessions", "parent_sourced_id", "academicSessions"),
    ("courses", "school_year_sourced_id", "academicSessions"),
    ("courses", "org_sourced_id", "orgs"),
    ("classes", "course_sourced_id", "courses"),
    ("classes", "school_sourced_id", "orgs"),
    ("classes", "term_sourced_ids", "academicSessions"),
    ("users", "org_sourced_ids", "orgs"),
    ("roles", "user_sourced_id", "users"),
    ("roles", "org_sourced_id", "orgs"),
    ("enrollments", "class_sourced_id", "classes"),
    ("enrollments", "school_sourced_id", "orgs"),
    ("enrollments", "user_sourced_id", "users"),
)


def _header_of(version: str, name: str, attr: str) -> str:
    columns: list[Column] = FILES[name]["columns"][version]
    return next(c.name for c in columns if c.attr == attr)


def _check_references(bundle: Bundle, unread: set[str], problems: list[Problem]) -> None:
    """References to a bulk file must name one of its rows; a delta file's rows may be known already. A file
    that could not be read at all (its problem is reported) is not referred to: that would only repeat it."""
    for name, attr, target in REFERENCES:
        if bundle.mode(target) is not Mode.BULK or target in unread:
            continue
        known = {r.sourced_id for r in getattr(bundle, ATTRIBUTES[target])}
        for record in getattr(bundle, ATTRIBUTES[name]):
            value = getattr(record, attr)
            for sourced_id in value if isinstance(value, tuple) else (value,):
                if sourced_id and sourced_id not in known:
                    problems.append(
                        Problem(
                            f"{name}.csv",
                            record.line,
                            f"unknown reference {_header_of(bundle.version, name, attr)} {sourced_id!r} "
                            f"(not in {target}.csv)",
                        )
                    )


def read_bundle(data: bytes) -> Bundle:
    """The bundle in the zip ``data``; BundleProblems (every problem found) when it is not acceptable."""
    problems: list[Problem] = []
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        members = {info.filename: info for info in archive.infolist() if not info.is_dir()}
    except (zipfile.BadZipFile, ValueError):
        raise BundleProblems([Problem("bundle", 0, "not a zip file")]) from None
    if MANIFEST not in members:
        raise BundleProblems([Problem("bundle", 0, f"no {MANIFEST} at the top of the zip")])
    unpacked = sum(info.file_size for info in members.values())
    if unpacked > MAX_UNPACKED_BYTES:
        raise BundleProblems(
            [
                Problem(
                    "bundle", 0, f"unpacks to {unpacked} bytes, more than {MAX_UNPACKED_BYTES} (a zip bomb?)"
                )
            ]
        )

    def read(name: str) -> bytes | None:
        try:
            return archive.read(name)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError) as error:
            problems.append(Problem(name, 0, f"cannot be read from the zip ({error})"))
            return None

    manifest = read(MANIFEST)
    read_manifest = _read_manifest(manifest, problems) if manifest is not None else None
    if read_manifest is None:
        raise BundleProblems(problems)
    version, modes = read_manifest
    contents: dict[str, Any] = {}
    unread: set[str] = set()  # files with a problem of their own that stops their rows being read
    for name, mode in modes.items():
        file_name = f"{name}.csv"
        if mode is Mode.ABSENT:
            if file_name in members:
                problems.append(
                    Problem(file_name, 0, f"is in the zip but {MANIFEST} says file.{name} is absent")
                )
            continue
        if file_name not in members:
            unread.add(name)
            problems.append(
                Problem(file_name, 0, f"missing from the zip ({MANIFEST} says file.{name} is {mode})")
            )
            continue
        data_of_file = read(file_name)
        records = (
            _read_file(name, data_of_file, version, mode, problems) if data_of_file is not None else None
        )
        if records is None:
            unread.add(name)
        else:
            contents[ATTRIBUTES[name]] = tuple(records)
    bundle = Bundle(version=version, modes=modes, **contents)
    _check_references(bundle, unread, problems)
    if problems:
        raise BundleProblems(sorted(problems, key=lambda p: (p.file, p.line)))
    return bundle
