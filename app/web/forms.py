"""Web forms (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from werkzeug.datastructures import MultiDict
from wtforms import HiddenField, PasswordField, SelectField, StringField
from wtforms.validators import AnyOf, DataRequired, EqualTo, Length, Optional

from app.services.people.accounts import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH


class StaffLoginForm(FlaskForm):
    email = StringField("Email", validators=[DataRequired(), Length(max=254)])
    password = PasswordField("Password", validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)])


class StudentLoginForm(FlaskForm):
    join_code = StringField("Class code", validators=[DataRequired(), Length(max=32)])
    personal_code = PasswordField("Your personal code", validators=[DataRequired(), Length(max=32)])


class PasswordChangeForm(FlaskForm):
    current = PasswordField("Current password", validators=[DataRequired(), Length(max=MAX_PASSWORD_LENGTH)])
    new = PasswordField(
        "New password", validators=[DataRequired(), Length(min=MIN_PASSWORD_LENGTH, max=MAX_PASSWORD_LENGTH)]
    )
    confirm = PasswordField(
        "New password, again",
        validators=[DataRequired(), EqualTo("new", message="The two new passwords differ.")],
    )


class ApiKeyForm(FlaskForm):
    app_name = StringField("App name", validators=[DataRequired(), Length(max=100)])


class ConfirmForm(FlaskForm):
    """A button-only form (sign out, revoke): the CSRF token is its only field."""


class PersonalizationForm(FlaskForm):
    personalized = HiddenField(validators=[AnyOf(["on", "off"])])


class ScoreSharingForm(FlaskForm):
    share = HiddenField(validators=[AnyOf(["on", "off"])])


class AnswerForm(FlaskForm):
    """One answer box or choice; checkboxes send several ``answer`` values, an order sends ``item`` and
    ``place`` pairs (read by ``answer_from``: WTForms fields hold one value)."""

    answer = StringField("Your answer", validators=[Optional(), Length(max=1000)])


MAX_FORM_ITEMS = 50


def answer_from(form: MultiDict[str, str]) -> str | list[str] | None:
    """The answer a practice form sent: a text, the checked choices, or the items sorted by the place the
    student gave each; None when nothing was given. Raises ``ValueError`` with a sentence for the student."""
    items, places = form.getlist("item"), form.getlist("place")
    if items:
        if len(items) != len(places) or len(items) > MAX_FORM_ITEMS:
            raise ValueError("Give each item a place.")
        try:
            numbers = [int(p) for p in places]
        except ValueError:
            raise ValueError("Give each item a place: a whole number.") from None
        if sorted(numbers) != list(range(1, len(items) + 1)):
            raise ValueError(f"Give each item a different place, from 1 to {len(items)}.")
        return [item for _, item in sorted(zip(numbers, items, strict=True))]
    values = [v.strip() for v in form.getlist("answer") if v.strip()]
    if form.get("several") == "1":
        return values[:MAX_FORM_ITEMS] or None
    return values[0] if values else None


class BiasCheckForm(FlaskForm):
    attribute = SelectField("Group students by")
