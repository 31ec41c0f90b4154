"""``content_pages``: the content as staff see it (admins and teachers): browse the live exercises, and try
one as a student would: the same answer fields, graded the same way, with the accepted answer, the feedback,
the hints and the worked solution. Nothing is recorded (``services/tutoring/catalog.py``)."""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue

from app.domain.access import Principal
from app.domain.grading import InvalidAnswer
from app.extensions import db
from app.services.tutoring import catalog
from app.web.forms import AnswerForm, answer_from
from app.web.pages import signed_in_page

bp = Blueprint("content_pages", __name__)


@bp.get("/admin/content")
@signed_in_page()
def browse(principal: Principal) -> ResponseReturnValue:
    page = request.args.get("page", "1")
    shown = catalog.browse_exercises(
        db.session(), principal, request.args.get("q", "")[:200], int(page) if page.isdigit() else 1
    )
    return render_template("content_list.html", shown=shown)


@bp.route("/admin/content/<exercise_id>", methods=["GET", "POST"])
@signed_in_page()
def try_exercise(principal: Principal, exercise_id: str) -> ResponseReturnValue:
    preview = catalog.preview_exercise(db.session(), principal, exercise_id)
    form, tried, problem = AnswerForm(), None, None
    if request.method == "POST":
        given = None
        if form.validate_on_submit():
            try:
                given = answer_from(request.form)
                if given is not None:
                    tried = catalog.try_answer(db.session(), principal, exercise_id, given)
            except (ValueError, InvalidAnswer) as error:
                problem = str(error)
        else:
            problem = "The form expired: reload the page and try again."
        if tried is None and problem is None:
            problem = "Type or choose an answer first."
    status = 400 if problem else 200
    return render_template(
        "content_try.html", preview=preview, form=form, tried=tried, problem=problem
    ), status
