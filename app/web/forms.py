"""Web forms (Flask-WTF: every form carries a CSRF token)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import HiddenField, PasswordField, SelectField, StringField
from wtforms.validators import AnyOf, DataRequired, EqualTo, Length

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


class AnswerForm(FlaskForm):
    answer = StringField("Your answer", validators=[DataRequired(), Length(max=1000)])


class BiasCheckForm(FlaskForm):
    attribute = SelectField("Group students by")
