"""The export holds everything stored about a student, column by column.

The data map (docs/DATA.md, "Student data") names the tables keyed by a student; the models add any table
with a foreign key to them. ``privacy.EXPORT_MAP`` classifies every column of those tables: exported
under a field (exactly as stored), shown in another form, implied by the export's structure, or withheld
with a reason. A new column or table fails here until it is classified there; then a student with a row
in every such table is exported through HTTP, and each exported column's stored values must be in the
files.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from flask import Flask

import app.models  # noqa: F401 - registers every table on the metadata
from app.csv_writer import cell
from app.extensions import db
from app.models import LtiAccount, LtiContext, LtiPlatform, LtiResourceLink, LtiScore, Response
from app.services.reporting.privacy import EXPORT_MAP, Implied, Shown, Withheld
from tests.conftest import World

DATA_MAP = Path(__file__).resolve().parents[2] / "docs" / "DATA.md"
FIELD_FILES = {"profile", "sign_in", "purged_history"}  # one row per field: field,value


def student_tables() -> set[str]:
    """Tables keyed by a student: a foreign key to ``students``, or to a table that has one."""
    linked = {"students"}
    while True:
        more = {
            t.name
            for t in db.metadata.sorted_tables
            if t.name not in linked and any(fk.column.table.name in linked for fk in t.foreign_keys)
        }
        if not more:
            return linked
        linked |= more


def data_map_student_tables() -> set[str]:
    text = DATA_MAP.read_text(encoding="utf-8")
    section = text.split("## Student data (personal)", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^### (\w+)\s*$", section, flags=re.MULTILINE))


def test_every_stored_column_of_a_student_is_exported_or_withheld_with_a_reason() -> None:
    tables = student_tables()
    assert tables == data_map_student_tables(), "docs/DATA.md's 'Student data' and the foreign keys differ"
    assert set(EXPORT_MAP) == tables, "classify these tables in app/services/reporting/privacy.py EXPORT_MAP"
    unclassified, stale = [], []
    for table in db.metadata.sorted_tables:
        if table.name not in tables:
            continue
        columns = {c.name for c in table.columns}
        classified = EXPORT_MAP[table.name][1]
        unclassified += [f"{table.name}.{c}" for c in sorted(columns - set(classified))]
        stale += [f"{table.name}.{c}" for c in sorted(set(classified) - columns)]
    assert unclassified == [], "export these columns, or withhold them with a reason, in privacy.EXPORT_MAP"
    assert stale == [], "privacy.EXPORT_MAP names columns that no longer exist"
    for table, (_, columns) in EXPORT_MAP.items():
        for column, how in columns.items():
            assert (
                isinstance(how, str)
                and how
                or isinstance(how, Shown)
                and how.field
                and how.how
                or isinstance(how, Implied)
                and how.how
                or isinstance(how, Withheld)
                and how.reason
            ), (table, column)


def read_zip(data: bytes) -> dict[str, list[list[str]]]:
    bundle = zipfile.ZipFile(io.BytesIO(data))
    return {
        name[:-4]: list(csv.reader(io.StringIO(bundle.read(name).decode(), newline="")))
        for name in bundle.namelist()
        if name.endswith(".csv")
    }


def exported_values(files: dict[str, list[list[str]]], section: str, field: str) -> set[str] | None:
    """Every cell of ``field`` in the section's file (None: the file has no such field)."""
    rows = files[section.split(".")[0]]
    if section in FIELD_FILES:
        found = [value for name, value in rows[1:] if name == field]
        return set(found) if found else None
    if field not in rows[0]:
        return None
    column = rows[0].index(field)
    return {row[column] for row in rows[1:]}


def json_fields(export: dict[str, Any], section: str) -> set[str]:
    top, _, nested = section.partition(".")
    value = export[top]
    items = value if isinstance(value, list) else [value]
    if nested:
        items = [step for item in items for step in item[nested]]
    return {key for item in items for key in item}


def stored(table: sa.Table, student_id: str) -> list[Any]:
    if table.name == "students":
        where = table.c.id == student_id
    elif "student_id" in table.c:
        where = table.c.student_id == student_id
    else:  # response_skills
        where = table.c.response_id.in_(sa.select(Response.id).where(Response.student_id == student_id))
    return list(db.session.execute(sa.select(table).where(where)).mappings())


def test_the_export_carries_every_exported_column_of_every_table(app: Flask, world: World, runner) -> None:
    """Student A with rows in every student table; their own export (not logged, so it stays the same
    between the download and the check) against the database, column by column."""
    app1, teacher, student = world.actors["app1"], world.actors["teacher_a"], world.actors["student_a"]
    for i in range(4):
        chosen = app1.request("GET", f"/api/v1/students/{world.student_a}/next-exercise").get_json()
        assert (
            app1.request(
                "POST",
                f"/api/v1/students/{world.student_a}/responses",
                json={
                    "exercise_id": chosen["exercise"]["id"],
                    "correct": i % 2 == 0,
                    "hints_used": i,
                    "response_time_ms": 1000 + i,
                    "client_response_id": f"c-{i}",
                },
            ).status_code
            == 201
        )
    assert teacher.request("GET", f"/api/v1/students/{world.student_a}/report").status_code == 200
    assert (
        teacher.request(
            "PATCH", f"/api/v1/students/{world.student_a}", json={"personalized": False}
        ).status_code
        == 200
    )
    assert (
        world.actors["admin"]
        .request(
            "PUT",
            f"/api/v1/students/{world.student_a}/group-attributes",
            json={"values": {"gender": "female"}, "consent_given_by": "parent"},
        )
        .status_code
        == 200
    )
    with app.app_context():
        db.session.execute(
            sa.update(Response)
            .where(Response.client_response_id == "c-0")
            .values(created_at=datetime.now(UTC) - timedelta(days=500))
        )
        db.session.commit()
    assert runner.invoke(args=["purge-expired"]).exit_code == 0  # a student_baselines row
    with (
        app.app_context()
    ):  # an lti_accounts row: student A also launches from an LMS (tests/web/test_lti_launch.py)
        lms = LtiPlatform(
            school_id=world.north,
            name="North's LMS",
            issuer="https://lms.north.test",
            client_id="tutor",
            auth_login_url="https://lms.north.test/auth",
            auth_token_url="https://lms.north.test/token",
            key_set_url="https://lms.north.test/jwks",
        )
        db.session.add(lms)
        db.session.flush()
        db.session.add(
            LtiAccount(
                platform_id=lms.id,
                sub="lms-sub-1",
                student_id=world.student_a,
                last_launch_at=datetime.now(UTC),
            )
        )
        # ... and has a score on a graded link of that course (an lti_scores row, every column set)
        course = LtiContext(platform_id=lms.id, context_id="course-1", class_id=world.class_a)
        db.session.add(course)
        db.session.flush()
        link = LtiResourceLink(
            context_id=course.id,
            resource_link_id="link-1",
            lineitem_url="https://lms.north.test/li/1",
            target="skill:place-value",
        )
        db.session.add(link)
        db.session.flush()
        db.session.add(
            LtiScore(
                resource_link_id=link.id,
                student_id=world.student_a,
                changes=3,
                handled=2,
                changed_at=datetime.now(UTC),
                score_given=0.0,
                score_maximum=1.0,
                activity_progress="InProgress",
                grading_progress="Pending",
                sent_at=datetime.now(UTC),
                attempts=1,
                next_attempt_at=datetime.now(UTC) + timedelta(minutes=1),
                last_error="Test LMS did not answer",
            )
        )
        db.session.commit()
    export = student.request("GET", "/me/export").get_json()
    files = read_zip(student.request("GET", "/me/export?format=csv").get_data())

    missing, wrong = [], []
    with app.app_context():
        for table in db.metadata.sorted_tables:
            if table.name not in EXPORT_MAP:
                continue
            section, columns = EXPORT_MAP[table.name]
            rows = stored(table, world.student_a)
            assert rows, f"the test student has no {table.name} row: nothing would be checked"
            for column, how in columns.items():
                if isinstance(how, (Implied, Withheld)):
                    continue
                field = how if isinstance(how, str) else how.field
                if field not in json_fields(export, section):
                    missing.append(f"{table.name}.{column} as {section}.{field} (JSON)")
                found = exported_values(files, section, field)
                if found is None:
                    missing.append(f"{table.name}.{column} as {section}.{field} (CSV)")
                elif isinstance(how, str) and found != {cell(row[column]) for row in rows}:
                    wrong.append(
                        f"{table.name}.{column}: stored {sorted({cell(r[column]) for r in rows})}, "
                        f"exported {sorted(found)}"
                    )
    assert missing == [] and wrong == []
    assert "code_hash" not in str(export) and not any("code_hash" in str(rows) for rows in files.values())
