"""The school's background jobs (admins): the list with live progress bars, one job, cancelling.

Starting a bias check on its page queues a job and lands here (``?follow=1``): the page follows the job's
progress (app/static/jobs.js polls the API) and, once it has succeeded, goes on to the result.
"""

from __future__ import annotations

from flask import Blueprint, abort, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from app.domain.access import Principal
from app.domain.jobs import ACTIVE, JobState
from app.extensions import db
from app.models import Job
from app.services.operations import jobs
from app.web.forms import ConfirmForm
from app.web.pages import signed_in_page

bp = Blueprint("job_pages", __name__)
PER_PAGE = 50
STATE_WORDS = {
    JobState.QUEUED: "Waiting for a worker",
    JobState.RUNNING: "Running",
    JobState.SUCCEEDED: "Done",
    JobState.FAILED: "Failed",
    JobState.CANCELLED: "Cancelled",
}


def title_of(job: Job) -> str:
    kind = jobs.all_kinds().get(job.kind)
    return kind.title if kind else job.kind


def result_page(job: Job) -> str | None:
    """The page of what the job stored (a bias check), when there is one."""
    kind = jobs.all_kinds().get(job.kind)
    if kind is None or job.state != JobState.SUCCEEDED:
        return None
    return kind.url_of(kind.page_url, job.result)


def _context() -> dict[str, object]:
    return {
        "title_of": title_of,
        "result_page": result_page,
        "state_words": STATE_WORDS,
        "active": ACTIVE,
        "cancel_form": ConfirmForm(),
    }


@bp.get("/admin/jobs")
@signed_in_page()
def job_list(principal: Principal) -> ResponseReturnValue:
    page = request.args.get("page", "1")
    if not page.isdigit() or not 1 <= int(page) <= 10_000:
        abort(400, "page must be a whole number from 1.")
    listed = jobs.list_jobs(db.session(), principal, page=int(page), per_page=PER_PAGE)
    return render_template("jobs.html", listed=listed, **_context())


@bp.get("/admin/jobs/<id:job_id>")
@signed_in_page()
def job_page(principal: Principal, job_id: int) -> ResponseReturnValue:
    job = jobs.get_job(db.session(), principal, job_id)
    target = result_page(job)
    if request.args.get("follow") and target:
        return redirect(target)
    return render_template("job.html", job=job, follow=bool(request.args.get("follow")), **_context())


@bp.post("/admin/jobs/<id:job_id>/cancel")
@signed_in_page()
def cancel_job(principal: Principal, job_id: int) -> ResponseReturnValue:
    if not ConfirmForm().validate_on_submit():
        abort(400, "The form expired: reload the page and try again.")
    jobs.cancel(db.session(), principal, job_id)
    return redirect(url_for("job_pages.job_page", job_id=job_id), code=303)
