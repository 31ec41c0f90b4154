"""Background jobs: follow, list and cancel them; start fits, log imports and retention purges (admins).

Starting a job answers 202 with the job and its ``Location``; a bias check is started with
``POST /bias-checks`` (app/api/bias.py). Clients poll ``GET /jobs/<id>`` until ``state`` is final, then
follow ``result_url``.
"""

from __future__ import annotations

from typing import Any

from flask import request, url_for
from flask.views import MethodView

from app.api.auth import api_blueprint, current_principal
from app.api.job_schemas import (
    FOLLOW_JOB,
    LOCATION,
    FitJobRequestSchema,
    IdempotencyHeaderSchema,
    JobListQuerySchema,
    JobPageSchema,
    JobSchema,
    LogImportRequestSchema,
    PurgeJobRequestSchema,
)
from app.extensions import db
from app.models import Job
from app.services.operations import job_kinds, jobs
from app.settings import current_settings

blp = api_blueprint("jobs", __name__, "Background jobs: bias checks, fits, log imports, retention purges.")

# A log's text travels inside JSON: its escapes (\t, \", \u00e9) can make the body up to about twice the file.
JSON_OVERHEAD = 64 * 1024


@blp.url_value_preprocessor
def _upload_limit(endpoint: str | None, values: dict[str, Any] | None) -> None:
    # Before every other hook reads the body: the log import takes a file, not a small JSON document.
    if endpoint == "jobs.LogImports":
        request.max_content_length = 2 * current_settings().jobs.max_upload_bytes + JSON_OVERHEAD


def accepted(job: Job) -> tuple[Job, int, dict[str, str]]:
    """202 with the job, and where to follow it."""
    return job, 202, {"Location": url_for("jobs.JobById", job_id=job.id)}


@blp.route("/jobs")
class Jobs(MethodView):
    @blp.doc(operationId="list_jobs")
    @blp.arguments(JobListQuerySchema, location="query")
    @blp.response(200, JobPageSchema)
    def get(self, query: dict[str, Any]) -> Any:
        """The school's jobs, newest first, a page at a time (admins)."""
        return jobs.list_jobs(db.session(), current_principal(), **query)


@blp.route("/jobs/<id:job_id>")
class JobById(MethodView):
    @blp.doc(operationId="get_job")
    @blp.response(200, JobSchema)
    def get(self, job_id: int) -> Any:
        """A job: its state, progress, result (and result_url) or error, and times (admins)."""
        return jobs.get_job(db.session(), current_principal(), job_id)


@blp.route("/jobs/<id:job_id>/cancel")
class JobCancel(MethodView):
    @blp.doc(operationId="cancel_job")
    @blp.response(200, JobSchema)
    def post(self, job_id: int) -> Any:
        """Cancel a job (admins): a queued one at once; a running one stops at its next progress point and
        commits nothing (cancel_requested is true until then); a finished job is answered as it is."""
        return jobs.cancel(db.session(), current_principal(), job_id)


@blp.route("/jobs/fits")
class Fits(MethodView):
    @blp.doc(operationId="start_fit", responses=FOLLOW_JOB)
    # Every field has a default, so no body means the defaults (the document says the body is optional).
    @blp.arguments(FitJobRequestSchema, required=False)
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.response(202, JobSchema, headers=LOCATION)
    @blp.alt_response(409, response="CONFLICT")  # an Idempotency-Key reused with other parameters
    def post(self, data: dict[str, Any], headers: dict[str, Any]) -> Any:
        """Queue a fit of the BKT parameters from the response log of every school, then the replay of
        mastery under them (admins; what `flask fit-params` does). Without a body: the defaults."""
        job, _ = job_kinds.start_fit(
            db.session(), current_principal(), idempotency_key=headers.get("idempotency_key"), **data
        )
        return accepted(job)


@blp.route("/jobs/log-imports")
class LogImports(MethodView):
    @blp.doc(operationId="start_log_import", responses=FOLLOW_JOB)
    @blp.arguments(LogImportRequestSchema)
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.response(202, JobSchema, headers=LOCATION)
    @blp.alt_response(409, response="CONFLICT")  # an Idempotency-Key reused with other parameters
    def post(self, data: dict[str, Any], headers: dict[str, Any]) -> Any:
        """Queue the import of a response log (ASSISTments or DataShop) into the school, all or nothing
        (admins; what `flask import-log` does). The file is kept only until the job ends."""
        job, _ = job_kinds.start_log_import(
            db.session(),
            current_principal(),
            data["content"].encode("utf-8"),
            data["format"],
            file_name=data["file_name"],
            app_name=data["app"],
            skip_bad_rows=data["skip_bad_rows"],
            idempotency_key=headers.get("idempotency_key"),
        )
        return accepted(job)


@blp.route("/jobs/purges")
class Purges(MethodView):
    @blp.doc(operationId="start_purge", responses=FOLLOW_JOB)
    @blp.arguments(PurgeJobRequestSchema, required=False)  # dry_run has a default, as above
    @blp.arguments(IdempotencyHeaderSchema, location="headers")
    @blp.response(202, JobSchema, headers=LOCATION)
    @blp.alt_response(409, response="CONFLICT")  # an Idempotency-Key reused with other parameters
    def post(self, data: dict[str, Any], headers: dict[str, Any]) -> Any:
        """Queue the retention purge of the whole service: answers, recommendations and access-log entries
        past RETENTION_*_DAYS (admins; what `flask purge-expired` does). Without a body: not a dry run."""
        job, _ = job_kinds.start_purge(
            db.session(), current_principal(), idempotency_key=headers.get("idempotency_key"), **data
        )
        return accepted(job)
