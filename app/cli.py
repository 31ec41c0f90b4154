"""Operator commands (kebab-case). Scripts rely on them: keep names, output and exit codes stable.

Each command is thin: it calls a service and prints the outcome. Failures exit
non-zero with a one-line ``Error: ...`` message.
"""

from __future__ import annotations

import click
from flask import Flask, current_app
from flask_migrate import upgrade
from sqlalchemy.exc import DatabaseError

from app.domain.content import ContentGraph
from app.domain.errors import ContentError
from app.extensions import db
from app.services.apps import create_api_key
from app.services.content import sync_content
from app.services.content_files import read_content


def _database_problem(error: DatabaseError) -> str:
    first_line = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    return f"database error: {first_line} (has 'flask init-db' been run?)"


def _content_dir(directory: str | None) -> str:
    return directory or str(current_app.config["CONTENT_DIR"])


def _read_or_fail(directory: str) -> ContentGraph:
    try:
        return read_content(directory)
    except ContentError as error:
        for problem in error.problems:
            click.echo(f"  {problem}", err=True)
        raise click.ClickException(
            f"content in {directory} is invalid: {len(error.problems)} problem(s), listed above"
        ) from None


@click.command("init-db")
def init_db_command() -> None:
    """Bring the database schema to the latest migration (safe to run again)."""
    upgrade()
    click.echo(f"Database is at the latest schema ({db.engine.url.render_as_string()}).")


@click.command("validate-content")
@click.argument("directory", required=False)
def validate_content_command(directory: str | None) -> None:
    """Check the content files in DIRECTORY (default: the configured content/)."""
    graph = _read_or_fail(_content_dir(directory))
    click.echo(f"Content is valid: {len(graph.skills)} skills, {len(graph.exercises)} exercises.")


@click.command("load-content")
@click.argument("directory", required=False)
def load_content_command(directory: str | None) -> None:
    """Validate DIRECTORY and load it into the database; report what changed."""
    graph = _read_or_fail(_content_dir(directory))
    try:
        changes = sync_content(db.session(), graph)
    except DatabaseError as error:
        raise click.ClickException(_database_problem(error)) from None
    for label, items in (
        ("skills added", changes.added_skills), ("skills updated", changes.updated_skills),
        ("skills retired", changes.retired_skills), ("exercises added", changes.added_exercises),
        ("exercises updated", changes.updated_exercises),
        ("exercises retired", changes.retired_exercises),
        ("new parameter versions", changes.new_parameters),
        ("fitted parameters kept", changes.kept_fitted_parameters),
    ):
        if items:
            shown = ", ".join(items[:10]) + (f", ... (+{len(items) - 10})" if len(items) > 10 else "")
            click.echo(f"{label}: {len(items)} ({shown})")
    summary = "content updated" if changes.changed else "content unchanged"
    click.echo(f"Loaded: {summary}; {len(graph.skills)} skills, {len(graph.exercises)} exercises.")


@click.command("create-api-key")
@click.argument("name")
def create_api_key_command(name: str) -> None:
    """Issue an API key for the learning app NAME (created if new). The key is the last line."""
    try:
        issued = create_api_key(db.session(), name)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    except DatabaseError as error:
        raise click.ClickException(_database_problem(error)) from None
    click.echo(f"API key for app {issued.app_name!r} (prefix {issued.prefix}); shown once, store it now:")
    click.echo(issued.key)


def init_app(app: Flask) -> None:
    for command in (init_db_command, validate_content_command, load_content_command,
                    create_api_key_command):
        app.cli.add_command(command)
