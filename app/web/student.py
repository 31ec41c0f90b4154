"""A student's pages: practice (the next exercise, hints, the result), progress (/me), their data."""

from __future__ import annotations

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from app.domain.access import Principal
from app.domain.grading import InvalidAnswer
from app.domain.wording import STUDENT_STATUS, by_unit, percent
from app.extensions import db
from app.services.integration import lti_grades
from app.services.reporting import reports
from app.services.reporting.export_download import student_export_response
from app.services.tutoring import practice as practice_service
from app.services.tutoring.next_exercise import next_exercise
from app.services.tutoring.students import get_student, set_personalization
from app.web.forms import AnswerForm, ConfirmForm, PersonalizationForm, ScoreSharingForm, answer_from
from app.web.lti import launched_focus
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
    focus = launched_focus()
    upcoming = next_exercise(db.session(), principal, principal.id, focus=focus.skill_ids if focus else None)
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
    focus = launched_focus()  # launched from a course's link: what it practises
    item = practice_service.current_item(db.session(), principal, focus=focus.skill_ids if focus else None)
    return render_template(
        "practice.html", item=item, form=AnswerForm(), hint_form=ConfirmForm(), focus=focus
    )


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
    lms = lti_grades.is_lms_learner(db.session(), principal, principal.id)
    shares = lti_grades.shares_scores(db.session(), principal.id) if lms else False
    return render_template(
        "my_data.html",
        student=student,
        personalization_form=form,
        lms=lms,
        shares_scores=shares,
        sharing_form=ScoreSharingForm(share="off" if shares else "on"),
    )


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


@bp.post("/me/lms-scores")
@student_page
def my_lms_scores(principal: Principal) -> ResponseReturnValue:
    """A student who practises from an LMS stops their mastery going to its gradebook, or lets it go again."""
    students_only(principal)
    form = ScoreSharingForm()
    if not form.validate_on_submit():
        abort(400, "Choose on or off.")
    share = form.share.data == "on"
    lti_grades.set_score_sharing(db.session(), principal, principal.id, share=share)
    flash(
        "Your course's gradebook gets your mastery again (what you have mastered now goes first)."
        if share
        else "Your mastery is no longer sent to your course's gradebook. What it shows already stays there: "
        "ask your teacher if it should go."
    )
    return redirect(url_for("student.my_data"))
