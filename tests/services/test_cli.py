"""Operator commands: stable output, idempotence, clear failures, no partial writes."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa

from app import create_app
from app.extensions import db
from app.models import Exercise, LearningApp, School, Skill, SkillParameters
from tests.conftest import CONTENT_DIR, ApiClient


def test_create_api_key_prints_the_key_last(app, runner, client, school) -> None:
    result = runner.invoke(args=["create-api-key", "maths-app"])
    assert result.exit_code == 0, result.output
    key = result.output.strip().splitlines()[-1]
    assert key.startswith("tk_") and " " not in key
    api = ApiClient(client, key)
    assert api.post("/api/v1/students", json={"external_id": "x"}).status_code == 201
    again = runner.invoke(args=["create-api-key", "maths-app"]).output.strip().splitlines()[-1]
    assert again != key and ApiClient(client, again).get("/api/v1/skills").status_code == 200
    bad = runner.invoke(args=["create-api-key", "  "])
    assert bad.exit_code != 0 and "Error: an app name must be" in bad.output


def test_create_api_key_needs_a_school_when_there_is_not_exactly_one(app, runner) -> None:
    none = runner.invoke(args=["create-api-key", "maths-app"])
    assert none.exit_code == 1 and "there is no school yet" in none.output
    for name in ("North", "South"):
        assert runner.invoke(args=["create-school", name]).exit_code == 0
    both = runner.invoke(args=["create-api-key", "maths-app"])
    assert both.exit_code == 1 and "say which one with --school" in both.output
    chosen = runner.invoke(args=["create-api-key", "maths-app", "--school", "South"])
    assert chosen.exit_code == 0 and "of school 'South'" in chosen.output
    # App names are unique per school: North may have its own "maths-app", and is not told South has one.
    same_name = runner.invoke(args=["create-api-key", "maths-app", "--school", "North"])
    assert same_name.exit_code == 0 and "of school 'North'" in same_name.output
    assert "South" not in same_name.output
    with app.app_context():
        apps = db.session.execute(
            sa.select(School.name)
            .join(LearningApp, LearningApp.school_id == School.id)
            .where(LearningApp.name == "maths-app")
            .order_by(School.name)
        ).scalars()
        assert list(apps) == ["North", "South"]
    unknown = runner.invoke(args=["create-api-key", "x", "--school", "West"])
    assert unknown.exit_code == 1 and "Unknown school 'West'" in unknown.output


def test_init_db_is_idempotent(app, runner) -> None:
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0 and "latest schema" in result.output, (result.output, result.exception)


def test_load_content_reports_unchanged_content(app, runner) -> None:
    result = runner.invoke(args=["load-content"])
    assert result.exit_code == 0, result.output
    assert "content unchanged" in result.output.splitlines()[-1]


def test_validate_content(app, runner) -> None:
    result = runner.invoke(args=["validate-content", str(CONTENT_DIR)])
    assert result.exit_code == 0 and result.output.startswith("Content is valid:")


def copy_content(tmp_path: Path) -> Path:
    target = tmp_path / "content"
    shutil.copytree(CONTENT_DIR, target)
    return target


def test_broken_content_changes_nothing(app, runner, tmp_path: Path) -> None:
    content = copy_content(tmp_path)
    skills = (content / "skills.toml").read_text()
    first_id = skills.split('id = "')[1].split('"')[0]
    (content / "skills.toml").write_text(
        skills.replace(f'id = "{first_id}"', 'id = "renamed"', 1).replace('name = "', 'name = "Changed ', 1)
    )
    with app.app_context():
        names_before = dict(db.session.execute(sa.select(Skill.id, Skill.name)).all())
    result = runner.invoke(args=["load-content", str(content)])
    assert result.exit_code == 1
    assert f"unknown prerequisite '{first_id}'" in result.output or "has no exercises" in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: content in ")
    with app.app_context():
        assert dict(db.session.execute(sa.select(Skill.id, Skill.name)).all()) == names_before


def test_content_update_retires_and_versions(app, runner, tmp_path: Path, shipped_graph) -> None:
    content = copy_content(tmp_path)
    skill = shipped_graph.skill_order[0]
    exercise_file = next((content / "exercises").glob("*.toml"))
    text = exercise_file.read_text()
    blocks = text.split("\n[[exercise]]\n")
    retired_id = blocks[1].split('id = "')[1].split('"')[0]
    exercise_file.write_text("\n[[exercise]]\n".join([blocks[0], *blocks[2:]]))
    skills_text = (content / "skills.toml").read_text()
    head, tail = skills_text.split(f'id = "{skill}"', 1)
    bkt_line = next(line for line in tail.splitlines() if line.startswith("bkt"))
    (content / "skills.toml").write_text(
        head
        + f'id = "{skill}"'
        + tail.replace(
            bkt_line, "bkt = { prior = 0.3, learn = 0.25, guess = 0.2, slip = 0.1, forget = 0.0 }", 1
        )
    )

    result = runner.invoke(args=["load-content", str(content)])
    assert result.exit_code == 0, result.output
    assert f"exercises retired: 1 ({retired_id})" in result.output
    assert f"new parameter versions: 1 ({skill})" in result.output
    with app.app_context():
        assert db.session.get(Exercise, retired_id).is_active is False
        versions = db.session.scalars(
            sa.select(SkillParameters)
            .where(SkillParameters.skill_id == skill)
            .order_by(SkillParameters.version)
        ).all()
        assert [v.version for v in versions] == [1, 2]
        assert [v.is_current for v in versions] == [False, True] and versions[1].prior == 0.3
    # The running app sees the new content without a restart.
    runner.invoke(args=["create-school", "S"])
    api_key = runner.invoke(args=["create-api-key", "x"]).output.strip().splitlines()[-1]
    api = ApiClient(app.test_client(), api_key)
    assert api.get(f"/api/v1/exercises/{retired_id}").status_code == 404
    assert api.get(f"/api/v1/skills/{skill}").get_json()["parameters"]["prior"] == 0.3


def test_commands_fail_clearly_without_a_schema(tmp_path: Path) -> None:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "t",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        }
    )
    result = app.test_cli_runner().invoke(args=["create-api-key", "x"])
    assert result.exit_code == 1
    assert "has 'flask init-db' been run?" in result.output


def test_refuses_default_secret_outside_debug(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'x.sqlite3'}")
    with pytest.raises(RuntimeError, match="default SECRET_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    monkeypatch.setenv("SECRET_KEY", "from-env")
    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'x.sqlite3'}"})
    assert app.secret_key == "from-env"


def test_refuses_an_empty_secret_in_every_mode(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """SECRET_KEY= (set but empty) used to pass the check made for the default key."""
    url = f"sqlite:///{tmp_path / 'x.sqlite3'}"
    monkeypatch.setenv("SECRET_KEY", "")
    with pytest.raises(RuntimeError, match="empty SECRET_KEY"):
        create_app({"SQLALCHEMY_DATABASE_URI": url})
    for empty in ("", "   ", None):
        with pytest.raises(RuntimeError, match="empty SECRET_KEY"):
            create_app({"TESTING": True, "SECRET_KEY": empty, "SQLALCHEMY_DATABASE_URI": url})


def test_policy_settings_are_checked_at_start(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.sqlite3'}"
    with pytest.raises(RuntimeError, match="invalid POLICY setting"):
        create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "POLICY": {"explore": 0.2}})
    app = create_app({"TESTING": True, "SQLALCHEMY_DATABASE_URI": url, "POLICY": {"explore_rate": 0.0}})
    with app.app_context():
        from app.services.tutoring.config import policy_config

        assert policy_config().explore_rate == 0.0 and policy_config().mastery_threshold == 0.95


def test_simulate_compares_policies_on_the_shipped_graph(app, runner) -> None:
    result = runner.invoke(
        args=[
            "simulate",
            "--students",
            "2",
            "--policy",
            "adaptive",
            "--policy",
            "fixed_order",
            "--policy",
            "lowest_mastery",
            "--jobs",
            "1",
        ]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    rows = {
        tuple(line.split()[:2])
        for line in lines
        if line.split()[:1]
        and line.split()[0] in ("adaptive", "adaptive_no_review", "fixed_order", "lowest_mastery")
    }
    assert {
        (p, g)
        for p in ("adaptive", "adaptive_no_review", "fixed_order", "lowest_mastery")
        for g in ("fast", "slow")
    } <= rows
    assert "Baselines at threshold 0.98:" in result.output
    assert sum(line.startswith("[met]") or line.startswith("[NOT met]") for line in lines) == 6
    again = runner.invoke(
        args=[
            "simulate",
            "--students",
            "2",
            "--policy",
            "adaptive",
            "--policy",
            "fixed_order",
            "--policy",
            "lowest_mastery",
            "--jobs",
            "1",
        ]
    )
    assert again.output == result.output  # seeded: the same run twice


def test_simulate_needs_content(tmp_path: Path) -> None:
    app = create_app(
        {
            "TESTING": True,
            "SECRET_KEY": "t",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'empty.sqlite3'}",
        }
    )
    with app.app_context():
        from flask_migrate import upgrade

        upgrade()
    result = app.test_cli_runner().invoke(args=["simulate", "--students", "1"])
    assert result.exit_code == 1 and "run 'flask load-content' first" in result.output
