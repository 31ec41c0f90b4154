"""A student's pages: practice (the next exercise, hints, the result), progress (/me), their data."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from app.domain.access import Principal
from app.domain.grading import InvalidAnswer
from app.domain.wording import STUDENT_STATUS, by_unit, percent
from app.extensions import db
from app.services.reporting import reports
from app.services.reporting.export_download import student_export_response
from app.services.tutoring import practice as practice_service
from app.services.tutoring.next_exercise import next_exercise
from app.services.tutoring.students import get_student, set_personalization
from app.web.forms import AnswerForm, ConfirmForm, PersonalizationForm, answer_from
from app.web.pages import export_format, signed_in_page, students_only

bp = Blueprint("student", __name__)
student_page = signed_in_page(sign_in="auth.student_login")
# Every page shows a mastery estimate as the same whole percent (the CSV too): one rounding rule.
bp.add_app_template_filter(percent, "percent")


@bp.get("/me")
@student_page
def me(principal: Principal) -> ResponseReturnValue:
    students_only(principal)
    student, report = reports.student_report(db.session(), principal, principal.id)
    upcoming = next_exercise(db.session(), principal, principal.id)
    names = {s.skill_id: s.name for s in report.skills}
    return render_template(
        "me.html",
        principal=principal,
        report=report,
        student=student,
        upcoming=upcoming,
        names=names,
        units=by_unit(report.skills),
        status_words=STUDENT_STATUS,
    )


@bp.get("/practice")
@student_page
def practice(principal: Principal) -> ResponseReturnValue:
    """The next exercise, why it was chosen, hints on request."""
    students_only(principal)
    item = practice_service.current_item(db.session(), principal)
    return render_template("practice.html", item=item, form=AnswerForm(), hint_form=ConfirmForm())


@bp.post("/practice/<id:recommendation_id>/hint")
@student_page
def practice_hint(principal: Principal, recommendation_id: int) -> ResponseReturnValue:
    students_only(principal)
    if not ConfirmForm().validate_on_submit():
        abort(400, "This page was open too long: reload it and try again.")
    practice_service.reveal_hint(db.session(), principal, recommendation_id)
    return redirect(url_for("student.practice"), code=303)


@bp.post("/practice/<id:recommendation_id>/answer")
@student_page
def practice_answer(principal: Principal, recommendation_id: int) -> ResponseReturnValue:
    """Record the answer (once, however often it is sent) and show its result on its own page."""
    students_only(principal)
    form = AnswerForm()
    if not form.validate_on_submit():
        flash("Type or choose an answer first.")
        return redirect(url_for("student.practice"), code=303)
    try:
        given = answer_from(request.form)
    except ValueError as error:
        flash(str(error))
        return redirect(url_for("student.practice"), code=303)
    if given is None:
        flash("Type or choose an answer first.")
        return redirect(url_for("student.practice"), code=303)
    try:
        recorded, _ = practice_service.answer(db.session(), principal, recommendation_id, given)
    except InvalidAnswer as error:
        flash(str(error))
        return redirect(url_for("student.practice"), code=303)
    return redirect(url_for("student.practice_result", response_id=recorded.id), code=303)


@bp.get("/practice/answers/<id:response_id>")
@student_page
def practice_result(principal: Principal, response_id: int) -> ResponseReturnValue:
    students_only(principal)
    shown = practice_service.answer_result(db.session(), principal, response_id)
    return render_template("practice_result.html", shown=shown)


@bp.get("/me/data")
@student_page
def my_data(principal: Principal) -> ResponseReturnValue:
    """Download everything stored; switch personalization off or on."""
    students_only(principal)
    student = get_student(db.session(), principal, principal.id)
    form = PersonalizationForm(personalized="off" if student.personalized else "on")
    return render_template("my_data.html", student=student, personalization_form=form)


@bp.get("/me/export")
@student_page
def my_export(principal: Principal) -> ResponseReturnValue:
    """A student downloads everything stored about them (JSON, or ?format=csv for a ZIP of CSV files)."""
    students_only(principal)
    return student_export_response(principal, principal.id, export_format())


@bp.post("/me/personalization")
@student_page
def my_personalization(principal: Principal) -> ResponseReturnValue:
    """A student switches personalization off (fixed order) or on again."""
    students_only(principal)
    form = PersonalizationForm()
    if not form.validate_on_submit():
        abort(400, "Choose on or off.")
    enabled = form.personalized.data == "on"
    set_personalization(db.session(), principal, principal.id, enabled=enabled)
    flash(
        "Personalization is on: exercises are chosen for you."
        if enabled
        else "Personalization is off: exercises come in the fixed order, and nothing about you is used to "
        "choose them."
    )
    return redirect(url_for("student.my_data"))
