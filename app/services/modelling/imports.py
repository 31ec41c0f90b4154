"""Importing public response logs (ASSISTments, DataShop) into the response log.

All or nothing per file: the whole file is parsed and checked before anything is
written, and the write is one transaction. Imported responses are traced online,
exactly like answers arriving through the API, so the mastery table stays equal
to a replay of the log.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import delete, insert, select, update
from sqlalchemy.orm import Session

from app.domain.errors import DomainError
from app.domain.logs import (
    BadRow,
    LogFormat,
    LogRecord,
    Skip,
    kc_column,
    missing_columns,
    parse_assistments_row,
    parse_datashop_row,
)
from app.domain.tracking import MasteryRules, StudentModel, apply_answer
from app.models import (
    LearningApp,
    LogImport,
    Mastery,
    Response,
    ResponseSkill,
    Skill,
    Student,
    utcnow,
)
from app.services.people.accounts import resolve_school
from app.services.tutoring.content import ContentSnapshot, add_imported_skill, bump_revision, read_snapshot
from app.services.tutoring.student_models import load_model, refresh_answer_counts, row_values
from app.services.tutoring.students import add_students

BATCH = 5000
IMPORT_ID_PREFIX = "import:"
# Called with (responses written in this batch, responses to write in all).
Progress = Callable[[int, int], None]
log = structlog.stdlib.get_logger(__name__)


class LogImportError(DomainError):
    """The file cannot be imported; nothing was written."""


@dataclass
class ImportReport:
    file: str
    format: str
    rows_read: int = 0
    responses_imported: int = 0
    duplicates: int = 0
    students_created: int = 0
    skills_created: list[str] = field(default_factory=list)
    skipped: Counter[str] = field(default_factory=Counter)
    bad_rows: list[BadRow] = field(default_factory=list)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        # The public ASSISTments files are Latin-1.
        return raw.decode("latin-1")


def parse_log(text: str, fmt: LogFormat) -> Iterator[LogRecord | Skip | BadRow]:
    """Parse a whole file's text; raise LogImportError when the header is unusable."""
    first_line = text.split("\n", 1)[0]
    delimiter = "\t" if "\t" in first_line else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    columns = [c.strip() for c in reader.fieldnames or []]
    reader.fieldnames = columns
    if missing := missing_columns(fmt, columns):
        raise LogImportError(
            f"not a {fmt} log: missing column(s) {', '.join(missing)} (found: {', '.join(columns[:12])})"
        )
    kc = kc_column(columns) or ""
    for values in reader:
        row = reader.line_num
        if None in values or any(v is None for v in values.values()):
            yield BadRow(row, f"number of fields differs from the header's {len(columns)}")
            continue
        if fmt == "assistments":
            yield parse_assistments_row(row, values)
        else:
            yield parse_datashop_row(row, values, kc)


def _slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_.\-]+", "-", name).strip("-.") or "skill"
    return slug[:80]


def _map_skills(session: Session, names: Iterable[str], report: ImportReport) -> dict[str, str]:
    """Skill name in the file -> skill id; unknown skills are created, marked as imported."""
    skills = list(session.scalars(select(Skill)))
    by_id = {s.id: s.id for s in skills}
    by_name: dict[str, str] = {}
    for s in skills:
        by_name.setdefault(s.name, s.id)
    mapping: dict[str, str] = {}
    taken = set(by_id)
    position = max((s.position for s in skills), default=0) + 1
    for name in sorted(set(names)):
        if name in by_id:
            mapping[name] = name
        elif name in by_name:
            mapping[name] = by_name[name]
        else:
            skill_id = base = _slug(name)
            suffix = 2
            while skill_id in taken:
                skill_id = f"{base}-{suffix}"
                suffix += 1
            taken.add(skill_id)
            add_imported_skill(session, skill_id, name, position)
            position += 1
            mapping[name] = skill_id
            report.skills_created.append(skill_id)
    session.flush()
    return mapping


def _group_responses(records: list[LogRecord], report: ImportReport) -> dict[str, list[LogRecord]]:
    """Per student, responses in order; rows sharing (student, order) are one multi-skill answer."""
    merged: dict[tuple[str, int], LogRecord] = {}
    for record in records:
        key = (record.student, record.order)
        seen = merged.get(key)
        if seen is None:
            merged[key] = record
        elif seen.correct != record.correct:
            report.bad_rows.append(
                BadRow(
                    record.row,
                    (
                        f"order {record.order} of student {record.student!r} is already on row {seen.row} "
                        "with a different correctness"
                    ),
                )
            )
        else:
            skills = tuple(dict.fromkeys(seen.skills + record.skills))
            merged[key] = LogRecord(
                seen.row, seen.student, skills, seen.correct, seen.order, seen.response_time_ms, seen.groups
            )
    by_student: dict[str, list[LogRecord]] = defaultdict(list)
    for record in merged.values():
        by_student[record.student].append(record)
    for responses in by_student.values():
        responses.sort(key=lambda r: r.order)
    return by_student


def import_log(
    session: Session,
    path: str | Path,
    fmt: LogFormat,
    *,
    app_name: str = "imported-logs",
    school_name: str | None = None,
    skip_bad_rows: bool = False,
    rules: MasteryRules,  # the configured ones: no default that could disagree
    progress: Progress | None = None,
) -> ImportReport:
    """Import one log file in one transaction; raise LogImportError (writing nothing) on bad rows."""
    path = Path(path)
    started = time.perf_counter()
    report = ImportReport(file=str(path), format=fmt)
    try:
        raw = path.read_bytes()
    except OSError as error:
        _refused(report, "unreadable", started)
        raise LogImportError(f"cannot read {path}: {error.strerror or error}") from None
    records: list[LogRecord] = []
    try:
        for parsed in parse_log(_decode(raw), fmt):
            report.rows_read += 1
            if isinstance(parsed, LogRecord):
                records.append(parsed)
            elif isinstance(parsed, Skip):
                report.skipped[parsed.reason] += 1
            else:
                report.bad_rows.append(parsed)
    except LogImportError:
        _refused(report, "not a log of this format", started)
        raise
    by_student = _group_responses(records, report)
    if report.bad_rows and not skip_bad_rows:
        _refused(report, "malformed rows", started)
        shown = "; ".join(f"row {b.row}: {b.reason}" for b in report.bad_rows[:5])
        more = f" (and {len(report.bad_rows) - 5} more)" if len(report.bad_rows) > 5 else ""
        raise LogImportError(
            f"{path.name}: {len(report.bad_rows)} malformed row(s), nothing imported: {shown}{more}. "
            "Fix them, or pass --skip-bad-rows to import the rest."
        )
    if report.bad_rows:
        bad = {b.row for b in report.bad_rows}
        by_student = {s: [r for r in rs if r.row not in bad] for s, rs in by_student.items()}

    app = _log_app(session, app_name, school_name)
    skill_of = _map_skills(session, {s for rs in by_student.values() for r in rs for s in r.skills}, report)
    students = _students(session, app, list(by_student), report)
    if report.skills_created:
        bump_revision(session)
    snapshot = read_snapshot(session)
    _write_responses(session, by_student, students, skill_of, snapshot, rules, report, progress)
    session.add(
        LogImport(
            file_name=path.name,
            sha256=hashlib.sha256(raw).hexdigest(),
            format=fmt,
            app_id=app.id,
            rows_read=report.rows_read,
            responses_imported=report.responses_imported,
            duplicates=report.duplicates,
            skipped=dict(report.skipped),
        )
    )
    session.commit()
    log.info(
        "import.finished",
        file=path.name,
        sha256=hashlib.sha256(raw).hexdigest(),
        format=fmt,
        outcome="imported",
        rows_read=report.rows_read,
        responses_imported=report.responses_imported,
        duplicates=report.duplicates,
        students_created=report.students_created,
        skills_created=len(report.skills_created),
        skipped=dict(report.skipped),
        bad_rows_skipped=len(report.bad_rows),
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )
    return report


def _refused(report: ImportReport, outcome: str, started: float) -> None:
    """Log a file refused whole. Not the error's text: a malformed row's reason can quote the file's
    student ids (the operator sees it at the command line)."""
    log.warning(
        "import.failed",
        file=Path(report.file).name,
        format=report.format,
        outcome=outcome,
        rows_read=report.rows_read,
        bad_rows=len(report.bad_rows),
        duration_ms=round((time.perf_counter() - started) * 1000, 1),
    )


def _log_app(session: Session, name: str, school_name: str | None) -> LearningApp:
    """The app the students are imported into, created if new. App names are unique per school: without
    ``school_name``, the one app of that name (or a new one in the only school)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise LogImportError("an app name must be 1 to 100 characters")
    if school_name is not None:
        school_id = resolve_school(session, school_name).id
        app = session.scalar(
            select(LearningApp).where(LearningApp.school_id == school_id, LearningApp.name == name)
        )
    else:
        named = list(session.scalars(select(LearningApp).where(LearningApp.name == name).limit(2)))
        if len(named) > 1:
            raise LogImportError(f"several schools have an app named {name!r}: say which with --school")
        app = named[0] if named else None
        school_id = app.school_id if app else resolve_school(session, None).id
    if app is None:
        app = LearningApp(name=name, school_id=school_id)
        session.add(app)
        session.flush()
    return app


def _students(session: Session, app: LearningApp, keys: list[str], report: ImportReport) -> dict[str, str]:
    """External id -> student id, creating the missing students in the app's school."""
    found: dict[str, str] = {}
    for start in range(0, len(keys), BATCH):
        chunk = keys[start : start + BATCH]
        found.update(
            session.execute(
                select(Student.external_id, Student.id).where(
                    Student.school_id == app.school_id, Student.external_id.in_(chunk)
                )
            ).all()
        )
    # The ids passed domain.external_ids' rule when parsed: stored as they are, never cut to fit.
    new = add_students(session, app.school_id, [k for k in keys if k not in found], app_id=app.id)
    found.update({s.external_id: s.id for s in new})
    report.students_created = len(new)
    return found


def _write_responses(
    session: Session,
    by_student: dict[str, list[LogRecord]],
    students: dict[str, str],
    skill_of: dict[str, str],
    snapshot: ContentSnapshot,
    rules: MasteryRules,
    report: ImportReport,
    progress: Progress | None,
) -> None:
    """Append each student's responses in order, tracing them with the same tracker as the API (a student
    behind the current parameters from their replay under them, as an answer would)."""
    parameters = snapshot.parameters
    student_ids = [students[k] for k in by_student]
    imported_before: set[tuple[str, str | None]] = set()
    models: dict[str, StudentModel] = {}
    for start in range(0, len(student_ids), BATCH):
        chunk = student_ids[start : start + BATCH]
        imported_before.update(
            session.execute(
                select(Response.student_id, Response.client_response_id).where(
                    Response.student_id.in_(chunk),
                    Response.client_response_id.startswith(IMPORT_ID_PREFIX),
                )
            ).all()
        )
        for student in session.scalars(select(Student).where(Student.id.in_(chunk))):
            models[student.id] = load_model(session, student, snapshot, rules)[0]
    params = {skill: current.params for skill, current in parameters.items()}
    now = utcnow()

    total = sum(len(records) for records in by_student.values())
    pending: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []
    for external_id, records in by_student.items():
        student_id = students[external_id]
        model = models[student_id]
        for record in records:
            client_id = f"{IMPORT_ID_PREFIX}{record.order}"
            if (student_id, client_id) in imported_before:
                report.duplicates += 1
                continue
            skill_ids = [skill_of[name] for name in record.skills]
            steps = apply_answer(model, skill_ids, record.correct, params, now=now, rules=rules)
            pending.append(
                (
                    {
                        "student_id": student_id,
                        "exercise_id": None,
                        "correct": record.correct,
                        "answer": None,
                        "graded_by": "import",
                        "response_time_ms": record.response_time_ms,
                        "client_response_id": client_id,
                        "created_at": now,
                    },
                    [
                        {
                            "skill_id": step.skill_id,
                            "position": position,
                            "parameters_id": parameters[step.skill_id].id,
                            "p_mastery_before": step.p_mastery_before,
                            "p_correct": step.p_correct,
                            "p_mastery_after": step.p_mastery_after,
                            "p_mastery_paced_after": step.p_mastery_paced_after,
                        }
                        for position, step in enumerate(steps)
                    ],
                )
            )
            if len(pending) >= BATCH:
                _flush_responses(session, pending, report, progress, total)
    _flush_responses(session, pending, report, progress, total)

    # The touched students' whole models are rewritten: simpler than diffing, same result.
    for start in range(0, len(student_ids), BATCH):
        chunk = student_ids[start : start + BATCH]
        session.execute(delete(Mastery).where(Mastery.student_id.in_(chunk)))
        rows = [
            {
                "student_id": sid,
                "skill_id": skill_id,
                "parameters_id": parameters[skill_id].id,
                **row_values(state),
            }
            for sid in chunk
            for skill_id, state in models[sid].skills.items()
        ]
        if rows:
            session.execute(insert(Mastery), rows)
        session.execute(
            update(Student),
            [
                {
                    "id": sid,
                    "speed_weights": models[sid].speed_weights,
                    "parameters_revision": snapshot.parameters_revision,
                }
                for sid in chunk
            ],
        )
    refresh_answer_counts(session, student_ids)


def _flush_responses(
    session: Session,
    pending: list[tuple[dict[str, Any], list[dict[str, Any]]]],
    report: ImportReport,
    progress: Progress | None,
    total: int,
) -> None:
    if not pending:
        return
    ids = session.scalars(
        insert(Response).returning(Response.id, sort_by_parameter_order=True),
        [response for response, _ in pending],
    ).all()
    session.execute(
        insert(ResponseSkill),
        [
            {**step, "response_id": response_id}
            for response_id, (_, steps) in zip(ids, pending, strict=True)
            for step in steps
        ],
    )
    report.responses_imported += len(pending)
    if progress:
        progress(len(pending), total)
    pending.clear()
