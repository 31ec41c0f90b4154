"""Operator commands (kebab-case). Scripts rely on them: keep names, output and exit codes stable.

Each command is thin: it calls a service and prints the outcome. Failures exit
non-zero with a one-line ``Error: ...`` message.
"""

from __future__ import annotations

import secrets
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields, replace
from datetime import UTC
from functools import partial
from pathlib import Path
from typing import Any

import click
from flask import Flask, current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade
from sqlalchemy.exc import DatabaseError

from app import csv_writer
from app.domain.access import Principal, Role
from app.domain.bkt import BktParams
from app.domain.content import ContentGraph
from app.domain.errors import ContentError, DomainError
from app.domain.logs import LOG_FORMATS
from app.domain.oneroster import BundleProblems
from app.domain.selection import POLICIES
from app.domain.simulation import (
    POOLED_PARAMS,
    SIMULATION_POLICIES,
    SimulationConfig,
    check_targets,
    format_report,
    run_comparison,
)
from app.domain.worlds import (
    CURVES,
    ForgettingConfig,
    ForgettingWorld,
    format_forgetting,
    format_targets,
    run_forgetting,
)
from app.domain.worlds import check_targets as forgetting_targets
from app.extensions import db
from app.models import Job, Student
from app.observability.commands import log_runs
from app.services.modelling import memory_fit
from app.services.modelling.evaluation import (
    HOLDING_SCHOOL,
    EvaluationReport,
    evaluate_model,
    evaluate_test_log,
)
from app.services.modelling.fitting import FitError, fit_parameters
from app.services.modelling.imports import import_log
from app.services.modelling.mastery import (
    Consistency,
    Mismatch,
    RebuildReport,
    rebuild_in_chunks,
    repair_consistency,
    replay_stale,
)
from app.services.modelling.mastery import check_consistency as check_consistency_of
from app.services.operations import demo, doctor, job_kinds, jobs
from app.services.people import accounts, groups, oneroster
from app.services.people.apps import create_api_key, revoke_api_key
from app.services.reporting import bias, privacy
from app.services.tutoring.config import mastery_rules, policy_config
from app.services.tutoring.content import current_snapshot, sync_content
from app.services.tutoring.content_files import read_content
from app.services.tutoring.students import set_personalization
from app.settings import cluster_address_problem, current_settings

# Commands that can queue their work as a background job instead (`flask worker` runs it).
ENQUEUE_HELP = "Queue it as a background job (run by `flask worker`) instead of running it now."
JOB_SCHOOL_HELP = "With --enqueue: the school the job is recorded under (default: the only one)."


def _database_problem(error: DatabaseError) -> str:
    first_line = str(error.orig).strip().splitlines()[0] if error.orig else str(error)
    return f"database error: {first_line} (has 'flask init-db' been run?)"


def _content_dir(directory: str | None) -> str:
    return directory or current_settings().content_dir


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
@with_appcontext
def init_db_command() -> None:
    """Bring the database schema to the latest migration (safe to run again)."""
    upgrade()
    click.echo(f"Database is at the latest schema ({db.engine.url.render_as_string()}).")


@click.command("doctor")
@with_appcontext
def doctor_command() -> None:
    """Report the Python stack (which pyBKT build fits use), the database and its schema, the content.

    Exits non-zero only when the database cannot be reached or its schema is behind the latest migration.
    """
    migrations = str(current_app.extensions["migrate"].directory)
    checks = doctor.stack_checks() + doctor.database_checks(db.engine, migrations)
    for check in checks:
        status = "ok" if check.ok and not check.warning else ("warn" if check.ok else "FAIL")
        click.echo(f"[{status:>4}] {check.name}: {check.detail}")
    failed = [check.name for check in checks if not check.ok]
    if failed:
        raise click.ClickException(f"{len(failed)} problem(s): {', '.join(failed)} (see above)")


@click.command("validate-content")
@with_appcontext
@click.argument("directory", required=False)
def validate_content_command(directory: str | None) -> None:
    """Check the content files in DIRECTORY (default: the configured content/)."""
    graph = _read_or_fail(_content_dir(directory))
    click.echo(f"Content is valid: {len(graph.skills)} skills, {len(graph.exercises)} exercises.")


@click.command("load-content")
@with_appcontext
@click.argument("directory", required=False)
def load_content_command(directory: str | None) -> None:
    """Validate DIRECTORY and load it into the database; report what changed."""
    graph = _read_or_fail(_content_dir(directory))
    try:
        changes = sync_content(db.session(), graph)
    except DatabaseError as error:
        raise click.ClickException(_database_problem(error)) from None
    for label, items in (
        ("skills added", changes.added_skills),
        ("skills updated", changes.updated_skills),
        ("skills retired", changes.retired_skills),
        ("exercises added", changes.added_exercises),
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
    if changes.replaced_parameters:  # every student's state is replayed under the new defaults
        with _reported_errors():
            click.echo(f"Mastery replayed: {_replayed(replay_stale(db.session(), rules=mastery_rules()))}.")


# --- schools, staff, classes, API keys ------------------------------------------------------------


@contextmanager
def _reported_errors() -> Iterator[None]:
    """Domain and database errors become a one-line ``Error: ...`` and a non-zero exit."""
    try:
        yield
    except DomainError as error:
        db.session.rollback()
        raise click.ClickException(str(error)) from None
    except DatabaseError as error:
        db.session.rollback()
        raise click.ClickException(_database_problem(error)) from None


@click.command("create-demo")
@with_appcontext
@click.option("--school", "school_name", default="Demo school", show_default=True)
@click.option("--students", type=int, default=20, show_default=True, help="Simulated students.")
@click.option("--weeks", type=int, default=3, show_default=True, help="Weeks of school days of practice.")
@click.option("--answers-per-day", type=int, default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
def create_demo_command(school_name: str, students: int, weeks: int, answers_per_day: int, seed: int) -> None:
    """Demo data (marked as such): an admin, a teacher, a class of students with weeks of simulated
    practice and consented group attributes, a bias check. Prints the sign-ins once; safe to run again."""
    try:
        config = demo.DemoConfig(
            students=students, weeks=weeks, answers_per_session=answers_per_day, seed=seed
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    passwords = secrets.token_urlsafe(12), secrets.token_urlsafe(12)
    click.echo(
        f"Simulating {weeks} week(s) of practice for {students} demo students (first run only)...", err=True
    )
    with _reported_errors():
        try:
            made = demo.create_demo(
                db.session(),
                teacher_password=passwords[0],
                admin_password=passwords[1],
                school_name=school_name,
                config=config,
            )
        except demo.DemoExists:
            click.echo(
                f"The demo already exists ({demo.TEACHER_EMAIL}, {demo.ADMIN_EMAIL}); its passwords "
                "were shown when it was created."
            )
            return
    click.echo(
        f"Demo data created in {made.school!r}: {len(made.simulated)} simulated students, "
        f"{made.answers} answers, consented group attributes, a bias check."
    )
    click.echo(f"  Teacher: {made.teacher_email}  password {passwords[0]}")
    click.echo(f"  Admin:   {made.admin_email}  password {passwords[1]}")
    click.echo(f"  Students: class code {made.join_code} with a personal code:")
    for external_id, code in made.codes:
        what = "no answers yet" if external_id in demo.FRESH_STUDENTS else "weeks of simulated practice"
        click.echo(f"    {external_id:<8} {code}  ({what})")


@click.command("create-school")
@with_appcontext
@click.argument("name")
def create_school_command(name: str) -> None:
    """Create the school NAME (a tenant). Safe to run again: an existing school is left as it is."""
    with _reported_errors():
        school, created = accounts.create_school(db.session(), name)
    click.echo(f"{'Created' if created else 'Already exists:'} school {school.name!r} (id {school.id}).")


@click.command("create-teacher")
@with_appcontext
@click.argument("email")
@click.option("--name", required=True, help="The name shown to colleagues and students.")
@click.option("--school", "school_name", help="The school (default: the only one).")
@click.option("--admin", is_flag=True, help="A school admin (manages API keys, sees every class).")
@click.password_option(envvar="TUTOR_PASSWORD", help="Asked for when not given (or set TUTOR_PASSWORD).")
def create_teacher_command(
    email: str, name: str, school_name: str | None, admin: bool, password: str
) -> None:
    """Create a teacher (or, with --admin, a school admin) who signs in with EMAIL and a password."""
    with _reported_errors():
        school = accounts.resolve_school(db.session(), school_name)
        role = Role.ADMIN if admin else Role.TEACHER
        user = accounts.create_staff_user(db.session(), school, email, name, password, role=role)
    click.echo(f"Created {role.value} {user.email} in school {school.name!r}.")


@click.command("create-class")
@with_appcontext
@click.argument("name")
@click.option("--teacher", "teacher_email", required=True, help="Email of the teacher who owns the class.")
def create_class_command(name: str, teacher_email: str) -> None:
    """Create a class owned by a teacher. The join code (students sign in with it) is the last line."""
    with _reported_errors():
        teacher = accounts.find_staff_user(db.session(), teacher_email)
        klass = accounts.create_class(db.session(), teacher, name)
    click.echo(f"Created class {klass.name!r} (id {klass.id}) for {teacher.email}; join code:")
    click.echo(klass.join_code)


@click.command("enroll")
@with_appcontext
@click.argument("join_code")
@click.argument("roster", type=click.File("r", encoding="utf-8-sig"))
@click.option("--reissue", is_flag=True, help="Issue new personal codes to students who already have one.")
def enroll_command(join_code: str, roster: Any, reissue: bool) -> None:
    """Enroll the students of a ROSTER CSV (column external_id; '-' reads stdin) in a class.

    New students are created. Prints CSV (external_id,personal_code,status) on stdout: hand each
    student their personal code; codes are shown once. All or nothing: a bad row enrolls nobody.
    """
    with _reported_errors():
        klass = accounts.find_class_by_code(db.session(), join_code)
        results = accounts.enroll(db.session(), klass, accounts.read_roster(roster.read()), reissue=reissue)
    writer = csv_writer.writer(sys.stdout)  # an id like =HYPERLINK(...) must not run in a spreadsheet
    writer.writerow(["external_id", "personal_code", "status"])
    for row in results:
        status = "new student" if row.created else ("added to class" if row.added else "already in class")
        writer.writerow([row.external_id, row.code or "(unchanged)", status])
    click.echo(
        f"Enrolled {len(results)} student(s) in {klass.name!r}; join code {klass.join_code}.", err=True
    )


@click.command("create-api-key")
@with_appcontext
@click.argument("name")
@click.option("--school", "school_name", help="The app's school (default: the only one).")
def create_api_key_command(name: str, school_name: str | None) -> None:
    """Issue an API key for the learning app NAME (created if new). The key is the last line."""
    with _reported_errors():
        school = accounts.resolve_school(db.session(), school_name)
        issued = create_api_key(db.session(), name, school)
    click.echo(
        f"API key for app {issued.app_name!r} of school {school.name!r} (prefix {issued.prefix}); "
        "shown once, store it now:"
    )
    click.echo(issued.key)


@click.command("revoke-api-key")
@with_appcontext
@click.argument("prefix")
def revoke_api_key_command(prefix: str) -> None:
    """Revoke the API key with this PREFIX (the second part of tk_<prefix>_...). Takes effect at once."""
    with _reported_errors():
        key = revoke_api_key(db.session(), prefix.strip())
    click.echo(f"Revoked key {key.prefix} (revoked at {key.revoked_at:%Y-%m-%d %H:%M:%S} UTC).")


# --- data rights ------------------------------------------------------------------------------------


def _operator_of(school_id: int) -> Principal:
    """The operator at the shell acts as an admin of one school (and is logged as ``admin:operator``)."""
    return Principal(Role.ADMIN, "operator", school_id, "operator (CLI)")


def _operator(student_id: str) -> Principal:
    """The operator, as an admin of this student's school."""
    student = db.session.get(Student, student_id)
    if student is None:
        raise click.ClickException(f"Unknown student {student_id!r}.")
    return _operator_of(student.school_id)


@click.command("export-student")
@with_appcontext
@click.argument("student_id")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv"]),
    default="json",
    show_default=True,
    help="json: one document; csv: a ZIP of CSV files (needs --output).",
)
@click.option(
    "--output", type=click.Path(dir_okay=False, writable=True), help="File to write (default: stdout)."
)
def export_student_command(student_id: str, fmt: str, output: str | None) -> None:
    """Export everything stored about STUDENT_ID (the access is logged)."""
    if fmt == "csv" and not output:
        raise click.ClickException("--format csv writes a ZIP: give --output FILE")
    with _reported_errors():
        policy = policy_config()
        export = privacy.export_student(
            db.session(),
            _operator(student_id),
            student_id,
            threshold=policy.mastery_threshold,
            target_success=policy.target_success,
        )
    data = (
        privacy.export_zip(export)
        if fmt == "csv"
        else current_app.json.dumps(export.as_json(), indent=2).encode()
    )
    if output:
        with open(output, "wb") as handle:
            handle.write(data)
        click.echo(f"Wrote {output} ({len(data)} bytes).", err=True)
    else:
        click.echo(data.decode())


@click.command("delete-student")
@with_appcontext
@click.argument("student_id")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def delete_student_command(student_id: str, yes: bool) -> None:
    """Delete STUDENT_ID and everything derived from them, in one transaction. Cannot be undone."""
    if not yes:
        click.confirm(f"Delete student {student_id} and all their data for good?", abort=True)
    with _reported_errors():
        counts = privacy.delete_student(db.session(), student_id, by=None, actor="operator")
    click.echo("Deleted: " + ", ".join(f"{table} {n}" for table, n in counts.items() if n))


@click.command("set-personalization")
@with_appcontext
@click.argument("student_id")
@click.argument("state", type=click.Choice(["on", "off"]))
def set_personalization_command(student_id: str, state: str) -> None:
    """Switch personalization of STUDENT_ID on or off (recorded with time and actor "operator")."""
    with _reported_errors():
        student = set_personalization(db.session(), _operator(student_id), student_id, enabled=state == "on")
    click.echo(f"Personalization of {student.id} is {'on' if student.personalized else 'off'}.")


@click.command("purge-expired")
@with_appcontext
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option("--enqueue", is_flag=True, help=ENQUEUE_HELP)
@click.option("--school", "school_name", help=JOB_SCHOOL_HELP)
def purge_expired_command(dry_run: bool, enqueue: bool, school_name: str | None) -> None:
    """Delete answers, recommendations and access-log entries past their retention.

    RETENTION_RESPONSE_DAYS and RETENTION_ACCESS_LOG_DAYS (default 365 each). Mastery keeps the
    current state; the raw history goes (each student's state at the cut-off is kept as their baseline).
    """
    if enqueue:
        with _reported_errors():
            _queued(*job_kinds.start_purge(db.session(), _school_admin(school_name), dry_run=dry_run))
        return
    retention = current_settings().retention
    with _reported_errors():
        report = privacy.purge_expired(
            db.session(),
            response_days=retention.response_days,
            access_log_days=retention.access_log_days,
            rules=mastery_rules(),
            dry_run=dry_run,
        )
    verb = "Would delete" if dry_run else "Deleted"
    click.echo(
        f"Answers and recommendations before {report.responses_before:%Y-%m-%d %H:%M} UTC, "
        f"access log before {report.access_log_before:%Y-%m-%d %H:%M} UTC."
    )
    for table, n in report.counts.items():
        click.echo(f"{verb} {table}: {n}")
    click.echo(
        f"Students whose state before the cut-off {'would be' if dry_run else 'was'} kept as a "
        f"baseline: {report.students_folded}"
    )


# --- bias checks ------------------------------------------------------------------------------------


def _school_admin(school_name: str | None) -> Principal:
    """The operator, as an admin of the named (or only) school."""
    return _operator_of(accounts.resolve_school(db.session(), school_name).id)


@click.command("import-group-attributes")
@with_appcontext
@click.argument("roster", type=click.File("r", encoding="utf-8-sig"))
@click.option("--school", "school_name", help="The students' school (default: the only one).")
def import_group_attributes_command(roster: Any, school_name: str | None) -> None:
    """Record group attributes for bias checks, with consent, from a CSV (columns external_id,
    consent_given_by, and one column per attribute; blank = not recorded). All or nothing."""
    with _reported_errors():
        count = groups.import_csv(db.session(), _school_admin(school_name), roster.read())
    click.echo(f"Recorded group attributes (with consent) for {count} student(s).")


@click.command("audit-bias")
@with_appcontext
@click.option(
    "--attribute", required=True, help="gender, language_learner, disability_support, school or class"
)
@click.option("--school", "school_name", help="The school audited (default: the only one).")
@click.option("--skill", "skills", multiple=True, help="Only these skills (repeat the option).")
@click.option("--from", "since", type=click.DateTime(), help="Answers from this date (UTC).")
@click.option("--to", "until", type=click.DateTime(), help="Answers until this date (UTC).")
@click.option("--bootstrap", type=click.IntRange(50, 10000), help="Bootstrap replicates (default 1000).")
@click.option("--seed", type=int, help="Random seed (default 0).")
@click.option("--diagnostic", is_flag=True, help="Also fit pyBKT with a learn rate per group (multilearn).")
@click.option("--enqueue", is_flag=True, help=ENQUEUE_HELP)
def audit_bias_command(
    attribute: str,
    school_name: str | None,
    skills: tuple[str, ...],
    since: Any,
    until: Any,
    bootstrap: int | None,
    seed: int | None,
    diagnostic: bool,
    enqueue: bool,
) -> None:
    """Check whether predictions and decisions serve every group equally well; store the report."""
    if enqueue:
        with _reported_errors():
            queued = job_kinds.start_bias_check(
                db.session(),
                _school_admin(school_name),
                attribute,
                skills=list(skills) or None,
                since=since.replace(tzinfo=UTC) if since else None,
                until=until.replace(tzinfo=UTC) if until else None,
                bootstrap=bootstrap,
                seed=seed,
                diagnostic=diagnostic,
            )
        _queued(*queued)
        return
    with _reported_errors():
        admin = _school_admin(school_name)
        db.session.commit()  # the check then reads in a snapshot of its own, which answers never wait for
        stored = bias.run_bias_check(
            db.session(),
            admin,
            attribute,
            skills=list(skills) or None,
            since=since.replace(tzinfo=UTC) if since else None,
            until=until.replace(tzinfo=UTC) if until else None,
            bootstrap=bootstrap,
            seed=seed,
            diagnostic=diagnostic,
        )
    report = stored.report
    click.echo(f"Bias check {stored.id}: {attribute}, reference group {report['reference']!r}")
    for line in report["summary"]:
        click.echo(f"  {line}")
    for group in report["groups"]:
        if not group["metrics"]:  # suppressed, or no answers: the summary above says which
            continue
        auc, acc = group["metrics"]["auc"], group["metrics"]["attempts_to_mastery"]
        click.echo(
            f"  {group['group']:>20}: {group['students']} students, {group['responses']} answers, "
            f"AUC {_fmt(auc)}, answers to mastery {_fmt(acc)}"
        )
    for fit in report.get("diagnostic", []):
        learns = ", ".join(f"{g} {v:.3f}" for g, v in fit["learn_by_group"].items())
        click.echo(
            f"  multilearn {fit['skill_id']}: learn by group {learns} "
            f"(pooled {fit['pooled_learn']:.3f}); log-likelihood gain {fit['log_likelihood_gain']}"
        )
    click.echo(f"Flags: {len(report['flagged'])}" + "".join(f"\n  {f}" for f in report["flagged"]))


def _fmt(estimate: dict[str, Any]) -> str:
    if estimate["value"] is None:
        return "n/a"
    interval = f" [{estimate['low']:.3f}, {estimate['high']:.3f}]" if estimate["low"] is not None else ""
    return f"{estimate['value']:.3f}{interval}"


# --- OneRoster rosters ---------------------------------------------------------------------------------


@click.command("import-oneroster")
@with_appcontext
@click.argument("bundle", type=click.Path(dir_okay=False))
@click.option("--school", "school_name", help="The school to import into (default: the only one).")
@click.option("--org", help="The sourcedId of the school's org in the bundle (default: its only school org).")
@click.option("--dry-run", is_flag=True, help="Only say what would change; write nothing.")
def import_oneroster_command(bundle: str, school_name: str | None, org: str | None, dry_run: bool) -> None:
    """Import a OneRoster 1.1 or 1.2 CSV BUNDLE (a zip): classes, teachers, pseudonymous students and their
    enrolments, all or nothing; every bad row is listed as file:line: problem."""
    try:
        data = Path(bundle).read_bytes()
    except OSError as error:
        raise click.ClickException(f"cannot read {bundle}: {error.strerror or error}") from None
    with _reported_errors():
        try:
            changes = oneroster.import_roster(
                db.session(), _school_admin(school_name), data, org=org, dry_run=dry_run
            )
        except BundleProblems as error:
            db.session.rollback()
            for problem in error.problems:
                click.echo(str(problem), err=True)
            raise click.ClickException(
                f"{len(error.problems)} problem(s) in {bundle} (listed above): nothing was imported"
            ) from None
    for line in oneroster.summary_lines(changes):
        click.echo(line)


# --- response logs, fitting, replay --------------------------------------------------------------


@click.command("import-log")
@with_appcontext
@click.argument("file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(LOG_FORMATS), required=True, help="Log layout.")
@click.option(
    "--app",
    "app_name",
    default="imported-logs",
    show_default=True,
    help="Learning app the imported students belong to (created if new).",
)
@click.option(
    "--school",
    "school_name",
    help="The school of a new app (default: the only one); students join its roster.",
)
@click.option("--skip-bad-rows", is_flag=True, help="Import the good rows and list the malformed ones.")
@click.option("--enqueue", is_flag=True, help=ENQUEUE_HELP)
def import_log_command(
    file: str, fmt: str, app_name: str, school_name: str | None, skip_bad_rows: bool, enqueue: bool
) -> None:
    """Append the responses of a log FILE (all or nothing); students and skills are created as needed."""
    if enqueue:
        try:
            content = open(file, "rb").read()  # noqa: SIM115 - read whole, at once
        except OSError as error:
            raise click.ClickException(f"cannot read {file}: {error.strerror or error}") from None
        with _reported_errors():
            queued = job_kinds.start_log_import(
                db.session(),
                _school_admin(school_name),
                content,
                fmt,
                file_name=file,
                app_name=app_name,
                skip_bad_rows=skip_bad_rows,
            )
        _queued(*queued)
        return
    bars: list[Any] = []

    def show(written: int, total: int) -> None:
        if not bars:
            bars.append(
                click.progressbar(length=total, label="Importing responses", show_pos=True, file=sys.stderr)
            )
        bars[0].update(written)

    try:
        report = import_log(
            db.session(),
            file,
            fmt,  # type: ignore[arg-type]  # click.Choice checked it
            app_name=app_name,
            school_name=school_name,
            skip_bad_rows=skip_bad_rows,
            rules=mastery_rules(),
            progress=show,
        )
    except DomainError as error:  # LogImportError, or no such school
        raise click.ClickException(str(error)) from None
    except DatabaseError as error:
        raise click.ClickException(_database_problem(error)) from None
    finally:
        if bars:
            bars[0].render_finish()
    click.echo(f"Rows read: {report.rows_read}")
    click.echo(f"Responses imported: {report.responses_imported}")
    click.echo(f"Already imported (skipped): {report.duplicates}")
    click.echo(f"Students created: {report.students_created}")
    click.echo(f"Skills created (marked imported): {len(report.skills_created)}")
    for reason, count in sorted(report.skipped.items()):
        click.echo(f"Skipped, {reason}: {count}")
    if report.bad_rows:
        click.echo(f"Skipped, malformed: {len(report.bad_rows)}")
        for bad in report.bad_rows[:50]:
            click.echo(f"  row {bad.row}: {bad.reason}")
        if len(report.bad_rows) > 50:
            click.echo(f"  ... and {len(report.bad_rows) - 50} more")


@click.command("fit-params")
@with_appcontext
@click.option("--skills", multiple=True, help="Fit only these skill ids (repeatable; default: all).")
@click.option("--forgets", is_flag=True, help="Also fit a forget probability.")
@click.option(
    "--min-responses",
    default=50,
    show_default=True,
    type=click.IntRange(1),
    help="Skills with fewer responses keep their parameters.",
)
@click.option(
    "--num-fits",
    default=5,
    show_default=True,
    type=click.IntRange(1),
    help="EM restarts per skill (the best likelihood wins).",
)
@click.option("--seed", default=42, show_default=True, type=int)
@click.option(
    "--jobs",
    default=None,
    type=click.IntRange(1),
    help="Parallel workers (default: one per core; with the compiled E-step, small jobs use one).",
)
@click.option(
    "--cluster",
    metavar="ADDR",
    default=None,
    help="Fit on the workers of the Dask scheduler at ADDR, e.g. tcp://10.0.0.5:8786 (default: FIT_CLUSTER; "
    "'' fits on this machine).",
)
@click.option(
    "--choose-variant",
    is_flag=True,
    help="Per skill, fit standard BKT or forgets, whichever predicts held-out students better "
    "(3 folds of the skill's students); --forgets is then ignored.",
)
@click.option(
    "--like-pybkt",
    is_flag=True,
    help="Fit exactly as pyBKT's pure build: one-answer students left out of guess/slip, no pooled prior.",
)
@click.option("--enqueue", is_flag=True, help=ENQUEUE_HELP + " (--jobs: the worker decides)")
@click.option("--school", "school_name", help=JOB_SCHOOL_HELP)
def fit_params_command(
    skills: tuple[str, ...],
    forgets: bool,
    min_responses: int,
    num_fits: int,
    seed: int,
    jobs: int | None,
    cluster: str | None,
    choose_variant: bool,
    like_pybkt: bool,
    enqueue: bool,
    school_name: str | None,
) -> None:
    """Fit BKT parameters with pyBKT, store them as a new current version, replay mastery."""
    if enqueue and (choose_variant or like_pybkt):
        raise click.UsageError("--choose-variant and --like-pybkt run in this process, not with --enqueue")
    if cluster is None:
        cluster = current_settings().fit_cluster
    elif not cluster.strip():
        cluster = None  # --cluster '': this machine, whatever FIT_CLUSTER says
    elif problem := cluster_address_problem(cluster):
        raise click.BadParameter(problem, param_hint="--cluster")
    if enqueue and cluster != current_settings().fit_cluster:
        raise click.UsageError("--cluster with --enqueue: the job worker fits where its FIT_CLUSTER says")
    if jobs is not None and cluster is not None:
        raise click.UsageError(f"--jobs counts this machine's processes; the fit runs on {cluster}")
    if enqueue:
        with _reported_errors():
            queued = job_kinds.start_fit(
                db.session(),
                _school_admin(school_name),
                skills=list(skills) or None,
                forgets=forgets,
                min_responses=min_responses,
                num_fits=num_fits,
                seed=seed,
            )
        _queued(*queued)
        return
    try:
        report = fit_parameters(
            db.session(),
            skills=list(skills) or None,
            forgets=forgets,
            min_responses=min_responses,
            num_fits=num_fits,
            seed=seed,
            n_jobs=jobs,
            rules=mastery_rules(),
            cluster=cluster,
            choose_variant=choose_variant,
            like_pybkt=like_pybkt,
        )
    except FitError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"Fit run {report.run_id} ({report.engine}): {report.n_responses} responses, "
        f"{report.n_students} students" + (f"; fitted on the Dask cluster at {cluster}" if cluster else "")
    )
    for fit in report.fitted:
        p = fit.params
        click.echo(
            f"  fitted {fit.skill_id}: prior={p['prior']:.4f} learn={p['learn']:.4f} "
            f"guess={p['guess']:.4f} slip={p['slip']:.4f} forget={p['forget']:.4f} "
            f"(n={fit.n_responses}, LL={fit.log_likelihood:.1f}) {fit.status}, {fit.variant}"
            + (f" constrained: {', '.join(fit.constrained)} held at 0.45" if fit.constrained else "")
        )
    for skill, n in sorted(report.too_little_data.items()):
        click.echo(f"  kept {skill}: too little data ({n} responses < {min_responses})")
    for skill, why in sorted(report.rejected.items()):
        click.echo(f"  rejected {skill}: degenerate fit, parameters not changed ({why})")
    if report.rebuild:
        click.echo(f"Mastery replayed: {_replayed(report.rebuild)}")
    if report.pooled is not None:
        p = report.pooled
        click.echo(
            f"Pooled fit behind the prior: prior={p['prior']:.4f} learn={p['learn']:.4f} "
            f"guess={p['guess']:.4f} slip={p['slip']:.4f} forget={p['forget']:.4f}"
        )
    counts = report.status_counts
    click.echo("Status: " + ", ".join(f"{status} {counts[status]}" for status in counts))
    if choose_variant:
        chosen = [fit.variant for fit in report.fitted]
        click.echo(f"Variants: standard {chosen.count('standard')}, forgets {chosen.count('forgets')}")
    click.echo(
        f"Fitted {len(report.fitted)}, kept {len(report.too_little_data)}, rejected {len(report.rejected)}."
    )


def _replayed(report: RebuildReport) -> str:
    left = (
        f"; {report.remaining} student(s) still behind (replayed by their next answer, or run "
        "'flask rebuild-mastery --stale-only')"
        if report.remaining
        else ""
    )
    return (
        f"{report.responses} responses, {report.students} students, {report.mastery_rows} student-skill "
        f"rows, in {report.chunks} chunk(s){left}"
    )


@click.command("rebuild-mastery")
@with_appcontext
@click.option(
    "--stale-only",
    is_flag=True,
    help="Only the students still behind the current parameters (finish a replay that was stopped).",
)
def rebuild_mastery_command(stale_only: bool) -> None:
    """Recompute every student's mastery from the response log under the current parameters, in chunks of
    students (answers go on meanwhile; safe to stop and run again)."""
    replay = replay_stale if stale_only else rebuild_in_chunks
    report = replay(db.session(), rules=mastery_rules())
    click.echo(f"Mastery rebuilt: {_replayed(report)}.")


@click.command("fit-memory")
@with_appcontext
def fit_memory_command() -> None:
    """Fit the memory model (FSRS) to the school's log; prints the MASTERY_RULES setting to use."""
    with _reported_errors():
        fit = memory_fit.fit_memory(db.session())
        db.session.rollback()  # read only
    click.echo(f"Fitted FSRS to {fit.reviews} reviews of {fit.cards} student-skill pairs.")
    click.echo("Put this in instance/config.py (then restart and run 'flask rebuild-mastery'):")
    click.echo(f"MASTERY_RULES = {{'memory_weights': {list(round(w, 4) for w in fit.weights)}}}")


SHOWN_MISMATCHES = 200


def _numbers(values: object) -> str:
    assert isinstance(values, list | tuple)
    return "[" + ", ".join(f"{v:.10g}" for v in values) + "]"


def _state(values: object) -> str:
    """A mastery row as compared: (P(L), P(L) per speed..., answers)."""
    if values is None:
        return "no row"
    assert isinstance(values, tuple)
    p_mastery, *by_speed, attempts = values
    return f"P(L) {p_mastery:.10g}, by speed {_numbers(by_speed)}, {attempts} answer(s)"


def _describe(mismatch: Mismatch) -> str:
    who = f"student {mismatch.student_id}"
    if mismatch.skill_id == "(answers)":
        return f"{who}: answer count stored {mismatch.stored}, in the log {mismatch.replayed}"
    if mismatch.skill_id == "(pace)":
        return (
            f"{who}: pace (speed weights) stored {_numbers(mismatch.stored)}, "
            f"replayed {_numbers(mismatch.replayed)}"
        )
    return (
        f"{who} skill {mismatch.skill_id}: stored {_state(mismatch.stored)}; "
        f"replayed {_state(mismatch.replayed)}"
    )


def _scope(result: Consistency) -> str:
    behind = (
        f"; {result.behind} still to be replayed under the current parameters, each consistent with the "
        "parameters it was computed under ('flask rebuild-mastery --stale-only' finishes them)"
        if result.behind
        else ""
    )
    return f"{result.students} students, {result.answers} answers{behind}"


def _report_mismatches(result: Consistency) -> None:
    for mismatch in result.mismatches[:SHOWN_MISMATCHES]:
        click.echo(f"  {_describe(mismatch)}")
    if len(result.mismatches) > SHOWN_MISMATCHES:
        click.echo(f"  ... and {len(result.mismatches) - SHOWN_MISMATCHES} more")


@click.command("check-consistency")
@with_appcontext
@click.option(
    "--repair",
    is_flag=True,
    help="Replay the inconsistent students from the log (one transaction), finish the replay of those still "
    "behind the current parameters, then check again.",
)
def check_consistency_command(repair: bool) -> None:
    """Check that the stored mastery, pace and answer counts equal a replay of the response log.

    Lists every difference (student, skill, stored vs replayed) and exits 1 when there is one, 0 when the
    state is consistent. Safe while the service runs.
    """
    rules = mastery_rules()
    with _reported_errors():
        outcome = repair_consistency(db.session(), rules=rules) if repair else None
        found = outcome.found if outcome else check_consistency_of(db.session(), rules=rules)
    if not found.mismatches:
        click.echo(f"Consistent: stored state equals a replay of the log ({_scope(found)}).")
        return
    click.echo(
        f"Inconsistent: {len(found.mismatches)} difference(s) for "
        f"{len(found.students_affected)} student(s) ({_scope(found)}):"
    )
    _report_mismatches(found)
    if outcome is None:
        raise click.ClickException(
            "the stored state differs from a replay of the log (listed above); "
            "'flask check-consistency --repair' rebuilds those students"
        )
    assert outcome.rebuilt is not None
    click.echo(
        f"Repaired {outcome.rebuilt.students} student(s): {outcome.rebuilt.responses} answers "
        f"replayed, {outcome.rebuilt.mastery_rows} student-skill rows written."
    )
    after = outcome.after
    if after.mismatches:
        click.echo(f"Still inconsistent after the repair: {len(after.mismatches)} difference(s):")
        _report_mismatches(after)
        raise click.ClickException("the repair did not make the state consistent (listed above)")
    click.echo(f"Checked again: consistent ({_scope(after)}).")


@click.command("evaluate-model")
@with_appcontext
@click.option(
    "--test-fraction",
    default=0.2,
    show_default=True,
    type=click.FloatRange(0, 1, min_open=True, max_open=True),
)
@click.option("--seed", default=0, show_default=True, type=int)
@click.option("--num-fits", default=5, show_default=True, type=click.IntRange(1))
@click.option("--forgets", is_flag=True)
@click.option("--choose-variant", is_flag=True, help="As fit-params --choose-variant.")
@click.option("--like-pybkt", is_flag=True, help="As fit-params --like-pybkt.")
@click.option("--jobs", default=None, type=click.IntRange(1))
@click.option(
    "--test-log",
    type=click.Path(dir_okay=False, exists=True),
    help="Score this separate log under the current (trained) parameters instead of a split: imported into "
    "a holding school for the evaluation only (rolled back), never fitted on.",
)
@click.option("--format", "fmt", type=click.Choice(LOG_FORMATS), help="The test log's layout (--test-log).")
@click.option(
    "--holding-school", default=HOLDING_SCHOOL, show_default=True, help="Where --test-log is imported."
)
def evaluate_model_command(
    test_fraction: float,
    seed: int,
    num_fits: int,
    forgets: bool,
    choose_variant: bool,
    like_pybkt: bool,
    jobs: int | None,
    test_log: str | None,
    fmt: str | None,
    holding_school: str,
) -> None:
    """Fit on some students and score the tracker's predictions on the held-out ones (or, with --test-log,
    score a separate log under the current parameters); a constant predictor beside every figure."""
    if test_log is not None and fmt is None:
        raise click.UsageError("--test-log needs --format")
    try:
        if test_log is not None:
            report = evaluate_test_log(
                db.session(),
                test_log,
                fmt,  # type: ignore[arg-type]  # click.Choice checked it
                rules=mastery_rules(),
                holding_school=holding_school,
            )
        else:
            report = evaluate_model(
                db.session(),
                test_fraction=test_fraction,
                seed=seed,
                num_fits=num_fits,
                forgets=forgets,
                n_jobs=jobs,
                like_pybkt=like_pybkt,
                choose_variant=choose_variant,
            )
    except (FitError, DomainError) as error:
        raise click.ClickException(str(error)) from None
    _echo_evaluation(report, f"test log {test_log}" if test_log else f"seed {seed}")


def _echo_evaluation(report: EvaluationReport, source: str) -> None:
    o, b = report.overall, report.baseline
    click.echo(f"Students: {report.n_train_students} train, {report.n_test_students} held out ({source})")
    click.echo(
        f"Rows scored: {o.n} of {report.n_rows} ({report.share_scored:.1%}); "
        f"constant predictor: P(correct) = {report.constant:.4f} (the training answers' mean)"
    )
    click.echo(f"{'skill':<40} {'n':>8} {'AUC':>7} {'RMSE':>7} {'logloss':>8} {'acc':>7}  status")
    rows = [
        ("OVERALL", o, ""),
        *[(s, v, report.status.get(s, "")) for s, v in sorted(report.per_skill.items())],
    ]
    if b is not None:
        rows.insert(1, ("CONSTANT (baseline)", b, ""))
    for name, s, status in rows:
        click.echo(
            f"{name[:40]:<40} {s.n:>8} {s.auc:>7.4f} {s.rmse:>7.4f} {s.log_loss:>8.4f} {s.accuracy:>7.4f}  "
            f"{status}".rstrip()
        )
    click.echo(
        f"Calibration error (count-weighted |mean predicted - observed| over the bins): "
        f"{report.calibration_error:.4f}; constant: {report.baseline_calibration_error:.4f}"
    )
    click.echo("Calibration (predicted P(correct) bin: n, mean predicted, observed):")
    for c in report.calibration:
        click.echo(
            f"  [{c.lower:.1f}, {c.upper:.1f}): {c.count:>7} {c.mean_predicted:.3f} {c.observed_rate:.3f}"
        )
    if report.kept_current:
        kept = ", ".join(report.kept_current)
        click.echo(f"Degenerate training fit, scored with current parameters: {kept}")
    if report.unscored_skills:
        click.echo(
            f"Not scored (no fitted parameters): {len(report.unscored_skills)} skills, "
            f"{sum(report.unscored_skills.values())} responses"
        )


def _without_review(policy: Any, graph: Any, params: Any, view: Any, config: Any, seed: int) -> Any:
    return policy(graph, params, view, replace(config, reviews=False), seed)


# Options of the forgetting world only: (option name, ForgettingConfig or ForgettingWorld field).
_FORGETTING_OPTIONS = {
    "weeks": "weeks",
    "post_test_days": "post_test_days",
    "answers_per_session": "answers_per_session",
    "truth_prior": "prior",
    "truth_guess": "guess",
    "truth_slip": "slip",
    "truth_learn": "learn",
    "speed_spread": "speed_spread",
    "forgetting_curve": "curve",
    "memory_strength": "initial_strength_days",
}


@click.command("simulate")
@with_appcontext
@click.option(
    "--world",
    type=click.Choice(["issue-4", "forgetting"]),
    default="issue-4",
    show_default=True,
    help="issue-4: fast and slow learners who never forget; forgetting: school weeks with "
    "forgetting and a delayed post-test (docs/POLICY.md).",
)
@click.option(
    "--students",
    default=None,
    type=click.IntRange(1),
    help="Simulated students per learner group (issue-4, default 50) or in all (forgetting, default 30).",
)
@click.option(
    "--policy",
    "--policies",
    "policies",
    multiple=True,
    type=click.Choice(sorted(SIMULATION_POLICIES)),
    help="Policies to compare (repeatable; default: the five of the service, and in the forgetting "
    "world also spaced_repetition).",
)
@click.option("--seed", default="0", show_default=True, help="Run seed (any text).")
@click.option(
    "--content-params/--pooled-params",
    default=None,
    help="The tracker's parameters: each skill's own (content) or the pooled fit "
    "(default: pooled in issue-4, content in forgetting).",
)
@click.option("--jobs", default=None, type=click.IntRange(1), help="Worker processes (default: cores).")
@click.option(
    "--strict-baselines",
    default=None,
    type=click.FloatRange(0.0, 0.999),
    help="issue-4: also run the baselines at this threshold, to compare at equal accuracy "
    "(default 0.98; 0 skips).",
)
@click.option(
    "--weeks", default=None, type=click.IntRange(1, 52), help="forgetting: school weeks (default 4)."
)
@click.option(
    "--post-test-days",
    default=None,
    type=click.IntRange(0, 365),
    help="forgetting: days from the last session to the post-test (default 14).",
)
@click.option(
    "--answers-per-session",
    default=None,
    type=click.IntRange(1, 600),
    help="forgetting: answers per daily sitting (default 30).",
)
@click.option(
    "--truth-prior",
    default=None,
    type=click.FloatRange(0.0, 1.0),
    help="forgetting: mean share of skills students already know (default 0.1).",
)
@click.option(
    "--truth-guess",
    default=None,
    type=click.FloatRange(0.0, 1.0),
    help="forgetting: mean guess rate (default 0.2).",
)
@click.option(
    "--truth-slip",
    default=None,
    type=click.FloatRange(0.0, 1.0),
    help="forgetting: mean slip rate (default 0.1).",
)
@click.option(
    "--truth-learn",
    default=None,
    type=click.FloatRange(0.0, 1.0),
    help="forgetting: learn rate per attempt at speed 1 (default 0.12).",
)
@click.option(
    "--speed-spread",
    default=None,
    type=click.FloatRange(0.0, 3.0),
    help="forgetting: standard deviation of the students' log speed (default 0.7).",
)
@click.option(
    "--forgetting-curve",
    default=None,
    type=click.Choice(CURVES),
    help="forgetting: exponential (default) or power-law recall.",
)
@click.option(
    "--memory-strength",
    default=None,
    type=click.FloatRange(0.01, 365.0),
    help="forgetting: memory strength in days of a skill just learned (default 3).",
)
def simulate_command(
    world: str,
    students: int | None,
    policies: tuple[str, ...],
    seed: str,
    content_params: bool | None,
    jobs: int | None,
    strict_baselines: float | None,
    **forgetting: Any,
) -> None:
    """Compare the selection policies on simulated students over the current content graph."""
    given = [f"--{name.replace('_', '-')}" for name, value in forgetting.items() if value is not None]
    if world != "forgetting" and given:
        raise click.ClickException(f"{', '.join(given)} only apply to --world forgetting")
    if world == "forgetting" and strict_baselines is not None:
        raise click.ClickException("--strict-baselines only applies to --world issue-4")
    if strict_baselines is not None and 0 < strict_baselines < 0.5:
        raise click.ClickException(
            f"--strict-baselines must be 0 (skip) or in [0.5, 0.999], got {strict_baselines}"
        )
    snapshot = current_snapshot(db.session())
    graph = snapshot.graph
    if not any(graph.exercises_by_skill.values()):
        raise click.ClickException("no content to simulate on: run 'flask load-content' first")
    # "Content" parameters are the service's current ones per skill (shipped defaults, or fitted).
    if world == "forgetting":
        _simulate_forgetting(
            graph,
            snapshot.params if content_params in (None, True) else None,
            students,
            policies,
            seed,
            jobs,
            forgetting,
        )
        return
    config = SimulationConfig(students_per_group=students or 50, seed=seed, policy=policy_config())
    params = snapshot.params if content_params else None
    if content_params:
        config = replace(config, model_params=None)  # for the report's footer
    chosen = {name: SIMULATION_POLICIES[name] for name in (policies or POLICIES)}
    if "adaptive" in chosen:
        # The simulated students never forget, so reviews can only cost attempts here:
        # show ours without them too.
        chosen["adaptive_no_review"] = partial(_without_review, chosen["adaptive"])
        config = replace(config, paced_policies=frozenset({"adaptive", "adaptive_no_review"}))
    report = run_comparison(graph, config, chosen, processes=jobs, params=params)
    click.echo(format_report(report))
    if not {"adaptive", "fixed_order", "lowest_mastery"} <= set(report.policies):
        return
    for check in check_targets(report):
        click.echo(f"[{'met' if check.met else 'NOT met'}] {check.name}: {check.detail}")
    strict_threshold = 0.98 if strict_baselines is None else strict_baselines
    if not strict_threshold:
        return
    # A stricter threshold makes the baselines as accurate as ours: compare attempts there.
    strict = replace(
        config, policy=replace(config.policy, rules=replace(config.policy.rules, threshold=strict_threshold))
    )
    baselines = [p for p in report.policies if not p.startswith("adaptive")]
    strict_report = run_comparison(graph, strict, baselines, processes=jobs, params=params)
    click.echo(f"\nBaselines at threshold {strict_threshold}:")
    click.echo(format_report(strict_report))
    for check in check_targets(report, baseline_report=strict_report)[2:]:
        click.echo(f"[{'met' if check.met else 'NOT met'}] {check.name}: {check.detail}")


def _simulate_forgetting(
    graph: ContentGraph,
    params: dict[str, BktParams] | None,
    students: int | None,
    policies: tuple[str, ...],
    seed: str,
    jobs: int | None,
    options: dict[str, Any],
) -> None:
    world_fields = {f.name for f in fields(ForgettingWorld)}
    chosen = {_FORGETTING_OPTIONS[k]: v for k, v in options.items() if v is not None}
    try:
        world = ForgettingWorld(**{k: v for k, v in chosen.items() if k in world_fields})
        config = ForgettingConfig(
            students=students or 30,
            world=world,
            seed=seed,
            policy=policy_config(),
            model_params=None if params is not None else POOLED_PARAMS,
            **{k: v for k, v in chosen.items() if k not in world_fields},
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    report = run_forgetting(graph, config, list(policies) or None, processes=jobs, params=params)
    click.echo(format_forgetting(report))
    targets = forgetting_targets(report)
    if targets:
        click.echo("\nTargets (issue 17 item 7):")
        click.echo(format_targets(targets))


# --- background jobs --------------------------------------------------------------------------------


def _queued(job: Any, created: bool) -> None:
    already = "" if created else " (the same request was already queued: that job)"
    click.echo(
        f"Job {job.id} ({job.kind}) is {job.state}{already}. Follow it on /admin/jobs, with "
        f"GET /api/v1/jobs/{job.id}, or: flask --app wsgi job {job.id}"
    )


@click.command("worker")
@with_appcontext
@click.option(
    "--threads", type=click.IntRange(1), help="Jobs run at once (default: JOBS_WORKERS, 2).", default=None
)
def worker_command(threads: int | None) -> None:
    """Run background jobs until stopped. SIGINT (Ctrl-C): the running jobs finish first; SIGTERM: stop now,
    the running jobs go back to the queue (nothing of them was committed)."""
    jobs.run_worker(threads)


@click.command("job")
@with_appcontext
@click.argument("job_id", type=click.IntRange(1))
def job_command(job_id: int) -> None:
    """Show a background job: state, progress, result or error."""
    job = db.session.get(Job, job_id)
    if job is None:
        raise click.ClickException(f"Unknown job {job_id}.")
    total = f"/{job.progress_total}" if job.progress_total is not None else ""
    click.echo(f"Job {job.id} ({job.kind}) {job.state}: {job.progress_done}{total} {job.progress_message}")
    if job.result is not None:
        click.echo(f"Result: {current_app.json.dumps(job.result)}")
    if job.error:
        click.echo(f"Error: {job.error}")


def init_app(app: Flask) -> None:
    for command in (
        init_db_command,
        doctor_command,
        validate_content_command,
        load_content_command,
        create_demo_command,
        create_school_command,
        create_teacher_command,
        create_class_command,
        enroll_command,
        create_api_key_command,
        revoke_api_key_command,
        export_student_command,
        delete_student_command,
        set_personalization_command,
        purge_expired_command,
        import_group_attributes_command,
        audit_bias_command,
        import_log_command,
        import_oneroster_command,
        fit_params_command,
        rebuild_mastery_command,
        check_consistency_command,
        evaluate_model_command,
        fit_memory_command,
        simulate_command,
        worker_command,
        job_command,
        lti_group,
    ):
        app.cli.add_command(command)
    for command, params in CHANGES_DATA.items():
        log_runs(command, params)


# Commands that change data: each run is a `cli.command` log line (docs/OPERATIONS.md), with the values of
# these options, which name no person (services log their own details: fits, imports, sign-ins).
CHANGES_DATA: dict[click.Command, tuple[str, ...]] = {
    init_db_command: (),
    load_content_command: (),
    create_demo_command: ("students", "weeks", "seed"),
    create_school_command: (),
    create_teacher_command: ("admin",),
    create_class_command: (),
    enroll_command: ("reissue",),
    create_api_key_command: (),
    revoke_api_key_command: ("prefix",),  # a key's public prefix, as listed on the API keys page
    delete_student_command: ("student_id",),  # the pseudonymous students.id
    set_personalization_command: ("student_id", "state"),
    purge_expired_command: ("dry_run", "enqueue"),
    import_group_attributes_command: (),
    audit_bias_command: ("attribute", "skills", "diagnostic", "enqueue"),
    import_log_command: ("fmt", "skip_bad_rows", "enqueue"),
    import_oneroster_command: ("org", "dry_run"),
    fit_params_command: (
        "skills",
        "forgets",
        "min_responses",
        "num_fits",
        "seed",
        "cluster",
        "choose_variant",
        "like_pybkt",
        "enqueue",
    ),
    rebuild_mastery_command: (),
    check_consistency_command: ("repair",),
    worker_command: ("threads",),  # one line when the worker stops (each job logs its own)
}


# --- LTI 1.3 (the LMS side: app/services/integration/lti.py) ------------------------------------------


@click.group("lti")
def lti_group() -> None:
    """LTI 1.3: register an LMS platform, rotate the tool's signing key."""


@lti_group.command("register-platform")
@with_appcontext
@click.option("--school", "school_name", help="The school its launches belong to (default: the only one).")
@click.option("--name", required=True, help="What the admin page calls it ('Our Moodle').")
@click.option("--issuer", required=True, help="The platform's issuer (Moodle's Platform ID).")
@click.option("--client-id", required=True)
@click.option("--deployment-id", "deployment_ids", multiple=True, required=True, help="Repeat for several.")
@click.option("--auth-login-url", required=True, help="The platform's OIDC authentication request URL.")
@click.option("--auth-token-url", required=True, help="The platform's access token URL.")
@click.option("--key-set-url", help="The platform's public keyset URL (or --key-set-file).")
@click.option("--key-set-file", type=click.File("r"), help="The platform's public keys as a JWKS JSON file.")
@click.option(
    "--accept-names", is_flag=True, help="Take teachers' names from launches (default: none stored)."
)
def lti_register_platform_command(
    school_name: str | None,
    name: str,
    issuer: str,
    client_id: str,
    deployment_ids: tuple[str, ...],
    auth_login_url: str,
    auth_token_url: str,
    key_set_url: str | None,
    key_set_file: Any,
    accept_names: bool,
) -> None:
    """Register an LMS (LTI 1.3 platform) for a school; prints the tool's URLs to give the LMS."""
    from app.domain.lti import tool_urls
    from app.services.integration import lti

    with _reported_errors():
        school = accounts.resolve_school(db.session(), school_name)
        platform = lti.register_platform(
            db.session(),
            None,
            school.id,
            lti.PlatformForm(
                name=name,
                issuer=issuer,
                client_id=client_id,
                auth_login_url=auth_login_url,
                auth_token_url=auth_token_url,
                key_set_url=key_set_url,
                key_set=key_set_file.read() if key_set_file else None,
                deployment_ids=list(deployment_ids),
                accept_names=accept_names,
            ),
        )
    click.echo(f"Registered platform {platform.id} ({platform.name!r}) for school {school.name!r}.")
    urls = tool_urls("https://<this tutor's address>")
    click.echo(f"Give the LMS: login {urls.login}  launch {urls.launch}  keys {urls.jwks}")


@lti_group.command("rotate-key")
@with_appcontext
@click.option("--retire", "retire_kid", help="Instead: stop publishing the key with this kid.")
def lti_rotate_key_command(retire_kid: str | None) -> None:
    """Make a new signing key (the newest signs; older ones stay published until retired), or retire one."""
    from app.services.integration import lti

    with _reported_errors():
        if retire_kid:
            lti.retire_key(db.session(), retire_kid.strip())
            click.echo(f"Retired key {retire_kid}: no longer published.")
            return
        key = lti.rotate_key(db.session())
    published = [k.kid for k in lti.list_keys(db.session()) if k.retired_at is None]
    click.echo(f"New signing key {key.kid}; published: {', '.join(published)}.")


CHANGES_DATA[lti_register_platform_command] = ()
CHANGES_DATA[lti_rotate_key_command] = ()
