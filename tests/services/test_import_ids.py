"""``flask import-log`` holds student ids to the rule of the API and of rosters: a bad id is a bad row
named by its line (nothing imported), never a KeyError, a misleading database error or a stored tab."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from app.extensions import db
from app.models import Response, Student
from app.services.modelling.imports import import_log
from app.settings import current_settings

HEADER = "order_id,user_id,skill_name,correct\n"


def log(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "log.csv"
    path.write_bytes((HEADER + "".join(rows)).encode())
    return path


def count(model) -> int:
    return db.session.scalar(sa.select(sa.func.count()).select_from(model))


def import_result(runner, path: Path, *more: str):
    return runner.invoke(args=["import-log", str(path), "--format", "assistments", *more])


def test_an_id_over_200_characters_is_a_bad_row_not_a_key_error(app, runner, school, tmp_path) -> None:
    long_id = "L" * 250
    path = log(tmp_path, "1,ok-student,Addition,1\n", f"2,{long_id},Addition,0\n")
    result = import_result(runner, path)
    assert result.exit_code == 1 and "Traceback" not in result.output, result.output
    assert result.output.startswith("Error: log.csv: 1 malformed row(s), nothing imported: row 3: user_id '")
    assert "... (250 characters) must be 1-200 printable characters" in result.output
    with app.app_context():
        assert count(Student) == count(Response) == 0
    # With --skip-bad-rows the good rows go in, and the bad one is listed by its line.
    skipped = import_result(runner, path, "--skip-bad-rows")
    assert skipped.exit_code == 0 and "Responses imported: 1" in skipped.output
    assert "  row 3: user_id 'LLLL" in skipped.output
    with app.app_context():
        assert db.session.scalars(sa.select(Student.external_id)).all() == ["ok-student"]


def test_two_long_ids_sharing_200_characters_are_refused_by_line(app, runner, school, tmp_path) -> None:
    """They used to be cut to the same 200 characters: a unique-constraint error reported as "has
    'flask init-db' been run?"."""
    shared = "s" * 200
    path = log(tmp_path, f"1,{shared}-a,Addition,1\n", f"2,{shared}-b,Addition,1\n")
    result = import_result(runner, path)
    assert result.exit_code == 1 and "init-db" not in result.output
    assert "2 malformed row(s), nothing imported: row 2: user_id" in result.output
    assert "; row 3: user_id" in result.output
    with app.app_context():
        assert count(Student) == 0


@pytest.mark.parametrize(
    "bad, shown", [("a\tb", r"'a\tb'"), ("a\nb", r"'a\nb'"), ("a\x00b", r"'a\x00b'"), ("a\rb", r"'a\rb'")]
)
def test_control_characters_in_an_id_are_refused_as_the_api_does(
    app, runner, school, tmp_path, bad: str, shown: str
) -> None:
    path = log(tmp_path, "1,fine,Addition,1\n", f'2,"{bad}",Addition,0\n')
    result = import_result(runner, path)
    assert result.exit_code == 1, result.output
    line = 3 + sum(bad.count(end) for end in "\r\n")  # a row is named by the line it ends on
    assert f"row {line}: user_id {shown} must be 1-200 printable characters" in result.output
    with app.app_context():
        assert count(Student) == count(Response) == 0


def test_the_service_refuses_them_too_and_surrounding_spaces_are_stripped(app, school, tmp_path) -> None:
    from app.services.modelling.imports import LogImportError

    with app.app_context():
        with pytest.raises(LogImportError, match="row 2: user_id is empty"):
            import_log(
                db.session(),
                log(tmp_path, "1,   ,Addition,1\n"),
                "assistments",
                rules=current_settings().mastery,
            )
        db.session.rollback()
        import_log(
            db.session(),
            log(tmp_path, "1,  padded  ,Addition,1\n"),
            "assistments",
            rules=current_settings().mastery,
        )
        assert db.session.scalars(sa.select(Student.external_id)).all() == ["padded"]


def test_a_nul_in_a_skill_name_is_a_bad_row(app, runner, school, tmp_path) -> None:
    """PostgreSQL refuses NUL in text: without this the import failed as a "database error"."""
    result = import_result(runner, log(tmp_path, '1,s-1,"Add\x00ition",1\n'))
    assert (
        result.exit_code == 1
        and "row 2: the skill name 'Add\\x00ition' contains a NUL character" in result.output
    )
