"""Schemas of background jobs: the job resource, its list, and the requests that start fits, imports and
purges (a bias check's request is ``BiasCheckRequestSchema``)."""

from __future__ import annotations

from typing import Any

from marshmallow import Schema, fields, pre_dump, validate

from app.api.roster_schemas import MAX_PAGE
from app.api.schemas import NO_NUL, JsonBoolean, OutputSchema, Probability, RoundedDict, WholeNumber
from app.domain.jobs import IDEMPOTENCY_KEY, IDEMPOTENCY_KEY_RULE, STATES, progress_share
from app.domain.logs import LOG_FORMATS
from app.models import Job
from app.services.operations.job_kinds import BIAS_CHECK, FIT_PARAMS, IMPORT_LOG, PURGE_EXPIRED
from app.services.operations.jobs import MAX_PER_PAGE, all_kinds

KIND_NAMES = (BIAS_CHECK, FIT_PARAMS, IMPORT_LOG, PURGE_EXPIRED)

LOCATION = {
    "Location": {
        "description": "The job's URL (GET it to follow its state and progress).",
        "schema": {"type": "string"},
    }
}
# The 202's own OpenAPI links: what a client (and a link-following tester) does with the answer's id, stated
# so that nothing takes it for the id of what the job will store (a bias check's is result.bias_check_id).
FOLLOW_JOB = {
    202: {
        "links": {
            "GetJob": {
                "operationId": "get_job",
                "parameters": {"job_id": "$response.body#/id"},
                "description": "Follow the job (the same URL as Location) until its state is final.",
            },
            "CancelJob": {
                "operationId": "cancel_job",
                "parameters": {"job_id": "$response.body#/id"},
                "description": "Cancel the job.",
            },
        }
    }
}


class IdempotencyHeaderSchema(Schema):
    idempotency_key = fields.String(
        data_key="Idempotency-Key",
        validate=validate.Regexp(f"^{IDEMPOTENCY_KEY.pattern}$", error=IDEMPOTENCY_KEY_RULE),
        metadata={
            "description": "A key the client makes up for this request (e.g. a UUID). A retry with the same "
            "key gets the same job, however long after (and a 409 with other parameters). Without a key, "
            "the same request while such a job is still queued or running gets that job."
        },
    )


class JobProgressSchema(OutputSchema):
    done = fields.Integer(metadata={"description": "Steps done (answers imported, skills compared, ...)."})
    total = fields.Integer(
        allow_none=True, metadata={"description": "Steps in all; null while not known (then show a spinner)."}
    )
    share = Probability(allow_none=True, metadata={"description": "done / total; null while total is null."})
    message = fields.String(metadata={"description": "What it is doing, in a few words."})


class JobSchema(OutputSchema):
    id = fields.Integer()
    kind = fields.String(validate=validate.OneOf(KIND_NAMES), metadata={"description": "What the job does."})
    state = fields.String(
        validate=validate.OneOf(STATES),
        metadata={
            "description": "queued, running, then succeeded, failed or cancelled (final). A job whose worker "
            "stopped goes back to queued; its work is committed at most once."
        },
    )
    params = RoundedDict(metadata={"description": "What was asked (the request's values)."})
    progress = fields.Nested(JobProgressSchema, metadata={"description": "How far it got."})
    result = RoundedDict(
        allow_none=True,
        metadata={
            "description": "What it produced (succeeded only): ids of what it stored (bias_check_id, "
            "fit_run_id, log_import_id) and counts; null before then."
        },
    )
    result_url = fields.String(
        allow_none=True,
        metadata={"description": "The API URL of what it stored (e.g. the bias check), or null."},
    )
    error = fields.String(
        allow_none=True, metadata={"description": "Why it failed, in words (failed only); else null."}
    )
    created_by = fields.String(metadata={"description": "Who asked for it, e.g. admin:12."})
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True, metadata={"description": "First taken by a worker."})
    finished_at = fields.DateTime(allow_none=True)
    heartbeat_at = fields.DateTime(
        allow_none=True, metadata={"description": "Last heard from its worker (while running)."}
    )
    attempts = fields.Integer(metadata={"description": "Times a worker started it."})
    cancel_requested = fields.Boolean()
    idempotency_key = fields.String(allow_none=True)

    @pre_dump
    def _computed(self, job: Job, **kwargs: Any) -> dict[str, Any]:
        kind = all_kinds().get(job.kind)
        return {
            **{name: getattr(job, name) for name in JOB_COLUMNS},
            "progress": {
                "done": job.progress_done,
                "total": job.progress_total,
                "share": progress_share(job.progress_done, job.progress_total),
                "message": job.progress_message,
            },
            "result_url": kind.url_of(kind.api_url, job.result) if kind else None,
        }


JOB_COLUMNS = [name for name in JobSchema._declared_fields if name not in ("progress", "result_url")]


class JobPageSchema(OutputSchema):
    items = fields.List(fields.Nested(JobSchema))
    page = fields.Integer()
    per_page = fields.Integer()
    total = fields.Integer(metadata={"description": "Jobs matching the filters, over all pages."})
    next_page = fields.Integer(
        allow_none=True, metadata={"description": "The page after this one; null on the last page."}
    )


class JobListQuerySchema(Schema):
    state = fields.String(
        validate=validate.OneOf(STATES), metadata={"description": "Only jobs in this state."}
    )
    kind = fields.String(
        validate=validate.OneOf(KIND_NAMES), metadata={"description": "Only jobs of this kind."}
    )
    page = WholeNumber(
        strict=False,
        load_default=1,
        validate=validate.Range(1, MAX_PAGE),
        metadata={"description": "From 1."},
    )
    per_page = WholeNumber(
        strict=False,
        load_default=50,
        validate=validate.Range(1, MAX_PER_PAGE),
        metadata={"description": f"Jobs per page, 1 to {MAX_PER_PAGE}."},
    )


class FitJobRequestSchema(Schema):
    skills = fields.List(
        fields.String(validate=[validate.Length(1, 100), validate.Regexp(NO_NUL)]),
        validate=validate.Length(1, 500),
        metadata={"description": "Fit only these skills (default: every skill with enough answers)."},
    )
    forgets = JsonBoolean(load_default=False, metadata={"description": "Also fit a forget probability."})
    min_responses = WholeNumber(
        load_default=50,
        validate=validate.Range(1, 1_000_000),
        metadata={"description": "Skills with fewer answers keep their parameters."},
    )
    num_fits = WholeNumber(
        load_default=5,
        validate=validate.Range(1, 50),
        metadata={"description": "EM restarts per skill (the best likelihood wins)."},
    )
    seed = WholeNumber(load_default=42, validate=validate.Range(0, 2**31 - 1))


# ASCII whitespace only, as the server's check (bytes.strip) and every regex dialect read it alike.
NOT_BLANK_NO_NUL = r"^[^\u0000]*[^\u0000\t\n\v\f\r ][^\u0000]*$"


class LogImportRequestSchema(Schema):
    format = fields.String(required=True, validate=validate.OneOf(LOG_FORMATS))
    content = fields.String(
        required=True,
        # One pattern (no NUL, at least one non-space character) puts "not blank" in the contract itself.
        validate=[
            validate.Length(min=1),
            validate.Regexp(NOT_BLANK_NO_NUL, error="the file is empty or holds a NUL character"),
        ],
        metadata={
            "description": "The log file's text (CSV or tab-separated, with its header row), at most "
            "JOBS_MAX_UPLOAD_BYTES bytes as UTF-8."
        },
    )
    file_name = fields.String(
        load_default="upload.csv",
        validate=[validate.Length(1, 200), validate.Regexp(NO_NUL)],
        metadata={"description": "The file's name, recorded with the import."},
    )
    app = fields.String(
        load_default="imported-logs",
        validate=[validate.Length(1, 100), validate.Regexp(NO_NUL)],
        metadata={
            "description": "The learning app of the school the imported students join (created if new)."
        },
    )
    skip_bad_rows = JsonBoolean(
        load_default=False,
        metadata={"description": "Import the good rows and skip malformed ones (default: refuse the file)."},
    )


class PurgeJobRequestSchema(Schema):
    dry_run = JsonBoolean(
        load_default=False, metadata={"description": "Count what would be deleted; delete nothing."}
    )
