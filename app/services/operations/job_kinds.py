"""The kinds of background job: each one function that calls a service, and one ``register`` call.

Each ``start_*`` function checks what can be checked at once (who asks, values a service would refuse) and
queues the job; the ``_run_*`` function does the work in a worker, through the same service the shell
commands call, with the principal of the person who asked. Every kind here commits its work once (all or
nothing), so a job stopped halfway, cancelled or killed, leaves nothing behind.

Fits and purges act on the whole service (parameters are shared by every school, retention applies to
all); the job is recorded under the school of the admin who asked.

A new kind, e.g. a OneRoster import or an LTI grade send (issue 20)::

    def _run_grade_send(ctx: JobContext) -> dict[str, Any]:
        sent = lti.send_grades(ctx.session, ctx.principal, ctx.params["line_item"], progress=ctx.progress)
        return {"grades_sent": sent}

    register(JobKind("lti_grade_send", "LTI grade send", Action.SEND_GRADES, _run_grade_send))

plus a ``start_grade_send`` here and a route in ``app/api/jobs.py`` if it is started from the API.
"""

from __future__ import annotations

import hashlib
import re
import tempfile
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from app.domain.access import Action, Principal, ensure_allowed
from app.domain.errors import InvalidInput
from app.domain.logs import LOG_FORMATS
from app.models import BiasReport, FitRun, Job, LogImport, School
from app.services.integration import lti_grades, lti_roster
from app.services.modelling.fitting import fit_parameters
from app.services.modelling.imports import import_log
from app.services.operations.jobs import JobContext, JobKind, Upload, register, submit
from app.services.people import oneroster
from app.services.reporting import bias, privacy
from app.services.tutoring.config import mastery_rules
from app.settings import current_settings

BIAS_CHECK, FIT_PARAMS, IMPORT_LOG, PURGE_EXPIRED = "bias_check", "fit_params", "import_log", "purge_expired"


def _created(model: type, key: str) -> Any:
    """A result link: the id of the row of ``model`` the work's commit created."""

    def link(created: list[object]) -> dict[str, Any]:
        ids = [obj.id for obj in created if isinstance(obj, model)]  # type: ignore[attr-defined]
        return {key: ids[-1]} if ids else {}

    return link


def _time(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


# --- bias checks ----------------------------------------------------------------------------------------


def start_bias_check(
    session: Session,
    principal: Principal,
    attribute: str,
    *,
    skills: Sequence[str] | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    bootstrap: int | None = None,
    seed: int | None = None,
    diagnostic: bool = False,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Queue a bias check (admins). What the check itself would refuse (an unknown attribute, a window
    without any answer) is refused now, before it is queued."""
    bias.check_request(session, principal, attribute, skills=skills, since=since, until=until)
    params = {
        "attribute": attribute,
        "skills": sorted(skills) if skills else None,
        "since": since.isoformat() if since else None,
        "until": until.isoformat() if until else None,
        "bootstrap": bootstrap,
        "seed": seed,
        "diagnostic": diagnostic,
    }
    return submit(session, principal, BIAS_CHECK, params, idempotency_key=idempotency_key)


def _run_bias_check(ctx: JobContext) -> dict[str, Any]:
    p = ctx.params
    stored = bias.run_bias_check(
        ctx.session,
        ctx.principal,
        p["attribute"],
        skills=p["skills"],
        since=_time(p["since"]),
        until=_time(p["until"]),
        bootstrap=p["bootstrap"],
        seed=p["seed"],
        diagnostic=p["diagnostic"],
        progress=lambda done, total: ctx.progress(done, total, "comparing groups"),
    )
    return {"bias_check_id": stored.id, "flags": len(stored.report.get("flagged", []))}


register(
    JobKind(
        BIAS_CHECK,
        "Bias check",
        Action.RUN_BIAS_CHECK,
        _run_bias_check,
        link=_created(BiasReport, "bias_check_id"),
        api_url="/api/v1/bias-checks/{bias_check_id}",
        page_url="/bias-checks/{bias_check_id}",
    )
)


# --- fits -----------------------------------------------------------------------------------------------


def start_fit(
    session: Session,
    principal: Principal,
    *,
    skills: Sequence[str] | None = None,
    forgets: bool = False,
    min_responses: int = 50,
    num_fits: int = 5,
    seed: int = 42,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Queue a fit of the BKT parameters from the whole response log, then the replay (admins)."""
    params = {
        "skills": sorted(skills) if skills else None,
        "forgets": forgets,
        "min_responses": min_responses,
        "num_fits": num_fits,
        "seed": seed,
    }
    return submit(session, principal, FIT_PARAMS, params, idempotency_key=idempotency_key)


def _run_fit(ctx: JobContext) -> dict[str, Any]:
    p = ctx.params
    ctx.progress(0, None, "fitting")
    report = fit_parameters(
        ctx.session,
        skills=p["skills"],
        forgets=p["forgets"],
        min_responses=p["min_responses"],
        num_fits=p["num_fits"],
        seed=p["seed"],
        rules=mastery_rules(),
    )
    return {
        "fit_run_id": report.run_id,
        "fitted": [fit.skill_id for fit in report.fitted],
        "kept": sorted(report.too_little_data),
        "rejected": sorted(report.rejected),
        "n_responses": report.n_responses,
        "replayed_responses": report.rebuild.responses if report.rebuild else 0,
    }


# The fit and its replay commit together today. When the replay commits in chunks of its own (issue 21,
# item 2), the fit's commit marks the job succeeded and the chunks follow under the same lease.
register(
    JobKind(
        FIT_PARAMS,
        "Parameter fit",
        Action.RUN_MAINTENANCE,
        _run_fit,
        link=_created(FitRun, "fit_run_id"),
    )
)


# --- log imports ----------------------------------------------------------------------------------------

SAFE_NAME = re.compile(r"[^A-Za-z0-9_.\- ]+")


def start_log_import(
    session: Session,
    principal: Principal,
    content: bytes,
    fmt: str,
    *,
    file_name: str = "upload.csv",
    app_name: str = "imported-logs",
    skip_bad_rows: bool = False,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Queue the import of a log file into the admin's school (admins). The file is kept with the job (at
    most JOBS_MAX_UPLOAD_BYTES) until it ends."""
    ensure_allowed(principal, Action.RUN_MAINTENANCE)
    limit = current_settings().jobs.max_upload_bytes
    if len(content) > limit:
        raise InvalidInput(f"the file is {len(content)} bytes, more than JOBS_MAX_UPLOAD_BYTES ({limit})")
    if not content.strip():
        raise InvalidInput("the file is empty")
    if fmt not in LOG_FORMATS:
        raise InvalidInput(f"unknown log format {fmt!r} (known: {', '.join(LOG_FORMATS)})")
    name = SAFE_NAME.sub("-", Path(file_name).name).strip(" .-")[:200] or "upload.csv"
    digest = hashlib.sha256(content).hexdigest()
    params = {
        "format": fmt,
        "app": app_name.strip(),
        "skip_bad_rows": skip_bad_rows,
        "file_name": name,
        "size": len(content),
        "sha256": digest,
    }
    upload = Upload(name, content, digest)
    return submit(session, principal, IMPORT_LOG, params, idempotency_key=idempotency_key, upload=upload)


def _run_import(ctx: JobContext) -> dict[str, Any]:
    p = ctx.params
    if ctx.file is None:
        raise InvalidInput("the uploaded file is no longer kept (the job ended once already)")
    school = ctx.session.get(School, ctx.principal.school_id)
    written = 0

    def progress(batch: int, total: int) -> None:
        nonlocal written
        written += batch
        ctx.progress(written, total, "importing responses")

    with tempfile.TemporaryDirectory(prefix="tutor-import-") as directory:
        path = Path(directory) / p["file_name"]  # the name is recorded with the import
        path.write_bytes(ctx.file.content)
        ctx.progress(0, None, "reading the file")
        report = import_log(
            ctx.session,
            path,
            p["format"],
            app_name=p["app"],
            school_name=school.name if school else None,
            skip_bad_rows=p["skip_bad_rows"],
            rules=mastery_rules(),
            progress=progress,
        )
    return {
        "rows_read": report.rows_read,
        "responses_imported": report.responses_imported,
        "duplicates": report.duplicates,
        "students_created": report.students_created,
        "skills_created": len(report.skills_created),
        "skipped": dict(report.skipped),
        "bad_rows_skipped": len(report.bad_rows),
    }


register(
    JobKind(
        IMPORT_LOG,
        "Log import",
        Action.RUN_MAINTENANCE,
        _run_import,
        link=_created(LogImport, "log_import_id"),
    )
)


# --- retention ------------------------------------------------------------------------------------------


def start_purge(
    session: Session, principal: Principal, *, dry_run: bool = False, idempotency_key: str | None = None
) -> tuple[Job, bool]:
    """Queue the retention purge (RETENTION_RESPONSE_DAYS, RETENTION_ACCESS_LOG_DAYS) of the whole service
    (admins); ``dry_run`` counts only."""
    return submit(session, principal, PURGE_EXPIRED, {"dry_run": dry_run}, idempotency_key=idempotency_key)


def _run_purge(ctx: JobContext) -> dict[str, Any]:
    retention = current_settings().retention
    ctx.progress(0, None, "counting" if ctx.params["dry_run"] else "purging")
    report = privacy.purge_expired(
        ctx.session,
        response_days=retention.response_days,
        access_log_days=retention.access_log_days,
        rules=mastery_rules(),
        dry_run=ctx.params["dry_run"],
    )
    return {
        "dry_run": report.dry_run,
        "responses_before": report.responses_before.isoformat(),
        "access_log_before": report.access_log_before.isoformat(),
        "counts": report.counts,
        "students_folded": report.students_folded,
    }


register(JobKind(PURGE_EXPIRED, "Retention purge", Action.RUN_MAINTENANCE, _run_purge))


# --- OneRoster imports ----------------------------------------------------------------------------------

ONEROSTER_IMPORT = "oneroster_import"
LISTED = 100  # items of each list of changes kept in the job's result (the counts are whole)


def start_oneroster_import(
    session: Session,
    principal: Principal,
    content: bytes,
    *,
    file_name: str = "roster.zip",
    org: str | None = None,
    idempotency_key: str | None = None,
) -> tuple[Job, bool]:
    """Queue the import of a OneRoster bundle into the admin's school (admins); the zip is kept with the job
    (at most JOBS_MAX_UPLOAD_BYTES) until it ends. The import checks the whole bundle again when it runs."""
    ensure_allowed(principal, Action.RUN_MAINTENANCE)
    limit = current_settings().jobs.max_upload_bytes
    if len(content) > limit:
        raise InvalidInput(f"the file is {len(content)} bytes, more than JOBS_MAX_UPLOAD_BYTES ({limit})")
    if not content:
        raise InvalidInput("the file is empty")
    name = SAFE_NAME.sub("-", Path(file_name).name).strip(" .-")[:200] or "roster.zip"
    digest = hashlib.sha256(content).hexdigest()
    params = {"org": org, "file_name": name, "size": len(content), "sha256": digest}
    upload = Upload(name, content, digest)
    return submit(
        session, principal, ONEROSTER_IMPORT, params, idempotency_key=idempotency_key, upload=upload
    )


def _run_oneroster_import(ctx: JobContext) -> dict[str, Any]:
    if ctx.file is None:
        raise InvalidInput("the uploaded file is no longer kept (the job ended once already)")
    changes = oneroster.import_roster(
        ctx.session,
        ctx.principal,
        ctx.file.content,
        org=ctx.params["org"],
        progress=lambda message: ctx.progress(0, None, message),
    )
    result = changes.as_json()
    return {key: value[:LISTED] if isinstance(value, list) else value for key, value in result.items()}


# The result is the school's classes as they now are (the counts and lists are in the job's result).
register(
    JobKind(
        ONEROSTER_IMPORT,
        "OneRoster import",
        Action.RUN_MAINTENANCE,
        _run_oneroster_import,
        page_url="/classes",
    )
)


# --- LTI Advantage: scores to the LMS (AGS), class lists from it (NRPS) --------------------------------
# Queued by the tutor itself (after answers and launches, and by the minute's sweep) as "admin:lms"; a class
# list also by the class's teacher (its page's button).


def _run_grade_send(ctx: JobContext) -> dict[str, Any]:
    return dict(
        lti_grades.send_scores(
            ctx.session,
            ctx.principal,
            ctx.params["platform_id"],
            progress=lambda checked: ctx.progress(checked, None, "sending scores to the LMS"),
        )
    )


# Each score commits on its own (a run stopped halfway resumes with the scores still due).
register(
    JobKind(
        lti_grades.GRADE_SEND,
        "LMS grade send",
        Action.SYNC_LMS,
        _run_grade_send,
        single_commit=False,
    )
)


def _run_roster_sync(ctx: JobContext) -> dict[str, Any]:
    return lti_roster.sync_roster(
        ctx.session,
        ctx.principal,
        ctx.params["context_id"],
        progress=lambda message: ctx.progress(0, None, message),
    )


register(
    JobKind(
        lti_roster.ROSTER_SYNC,
        "LMS class list sync",
        Action.SYNC_LMS,
        _run_roster_sync,
        page_url="/classes/{class_id}",
    )
)
