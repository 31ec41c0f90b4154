"""Server-rendered pages, one blueprint per area.

``auth`` signing in and out, the password; ``teacher`` classes, the class report and its CSV,
a student's page and export; ``student`` practice, progress (/me), the student's data;
``admin`` API keys and bias checks; ``school_admin`` the school's teachers, classes, rosters and codes;
``content`` the staff's view of the exercises (browse, try one);
``jobs`` the school's background jobs. Views are thin: a form or the URL in, one service call, a template
out. Who may see what is decided by the same services the API uses. Error pages are
``app.errors.render_error``.
"""

from __future__ import annotations

from typing import Any

from flask import Flask, g
from flask_wtf.csrf import CSRFError

from app.domain.access import Role
from app.errors import RENDERING_ERROR
from app.sessions import loaded_principal, signed_in
from app.web import admin, auth, content, jobs, lms, lti, oneroster, school_admin, student, teacher
from app.web.forms import ConfirmForm


def _template_globals() -> dict[str, Any]:
    # An error page must not read the database (it may be the error): it shows only a principal the
    # request had already loaded.
    principal = loaded_principal() if g.get(RENDERING_ERROR) else signed_in()
    return {"signed_in": principal, "logout_form": ConfirmForm, "Role": Role}


def init_app(app: Flask) -> None:
    for blueprint in (
        auth.bp,
        teacher.bp,
        student.bp,
        admin.bp,
        jobs.bp,
        oneroster.bp,
        lti.bp,
        lms.bp,
        school_admin.bp,
        content.bp,
    ):
        app.register_blueprint(blueprint)
    app.context_processor(_template_globals)
    app.register_error_handler(CSRFError, auth.csrf_failed)
