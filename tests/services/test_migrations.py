"""The migrations and the models describe the same schema, and migrations run both ways."""

from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade

from app import create_app
from app.extensions import db
from tests.conftest import BACKENDS, fresh_database


def test_models_match_migrations(app) -> None:
    with app.app_context(), db.engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), db.metadata)
    assert differences == []


def test_upgrade_downgrade_upgrade(tmp_path: Path) -> None:
    app = create_app(
        {"TESTING": True, "SECRET_KEY": "t", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'm.sqlite3'}"}
    )
    with app.app_context():
        upgrade()
        tables = set(sa.inspect(db.engine).get_table_names())
        assert {"students", "responses", "mastery", "skill_parameters", "fit_runs"} <= tables
        downgrade(revision="base")
        assert set(sa.inspect(db.engine).get_table_names()) == {"alembic_version"}
        upgrade()
        assert set(sa.inspect(db.engine).get_table_names()) == tables


@pytest.fixture(params=BACKENDS)
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    with fresh_database(request.param, tmp_path, prefix="tutor_migration") as url:
        yield url


def test_upgrading_a_database_with_data_keeps_every_row(empty_database: str) -> None:
    """SQLite rebuilds tables to alter them: that must never cascade-delete the rows referring to them."""
    app = create_app({"TESTING": True, "SECRET_KEY": "t", "SQLALCHEMY_DATABASE_URI": empty_database})
    t = "2026-01-01 00:00:00+00:00"
    with app.app_context():
        upgrade(revision="0002")
        with db.engine.begin() as conn:
            for statement in (
                f"INSERT INTO learning_apps (id, name, created_at) VALUES (1, 'old-app', '{t}')",
                "INSERT INTO api_keys (id, app_id, prefix, key_hash, created_at) "
                f"VALUES (1, 1, 'p', 'h', '{t}')",
                f"INSERT INTO students (id, app_id, external_id, created_at) VALUES ('s1', 1, 'x', '{t}')",
                "INSERT INTO skills (id, name, description, source, is_active, position) "
                "VALUES ('k', 'K', '', 'content', true, 0)",
                "INSERT INTO skill_parameters (id, skill_id, version, prior, learn, guess, slip, forget, "
                "source, is_current, created_at) "
                f"VALUES (1, 'k', 1, 0.1, 0.2, 0.2, 0.1, 0, 'default', true, '{t}')",
                f"INSERT INTO responses (id, student_id, correct, graded_by, created_at) "
                f"VALUES (1, 's1', true, 'app', '{t}')",
                "INSERT INTO response_skills (response_id, skill_id, position, parameters_id, "
                "p_mastery_before, p_correct, p_mastery_after) VALUES (1, 'k', 0, 1, 0.1, 0.3, 0.4)",
                "INSERT INTO mastery (student_id, skill_id, p_mastery, attempts, correct_count, updated_at, "
                f"parameters_id) VALUES ('s1', 'k', 0.4, 1, 1, '{t}', 1)",
            ):
                conn.exec_driver_sql(statement)
        upgrade()
        if db.engine.dialect.name == "sqlite":  # foreign keys are back on for everyone after a migration
            with db.engine.connect() as conn:
                assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
        counts = {
            table: db.session.scalar(sa.text(f"SELECT COUNT(*) FROM {table}"))
            for table in ("learning_apps", "api_keys", "students", "responses", "response_skills", "mastery")
        }
        assert counts == dict.fromkeys(counts, 1)
        # The existing app and its students now belong to one school.
        school = db.session.execute(
            sa.text("SELECT s.name FROM schools s JOIN students st ON st.school_id = s.id")
        ).scalar()
        assert school == "Default school"
        db.session.remove()
        db.engine.dispose()
