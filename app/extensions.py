"""Extensions: created here, bound to the app in ``create_app``."""

from typing import Any

from flask import current_app
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_smorest import Api
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase
from werkzeug.exceptions import MethodNotAllowed, RequestEntityTooLarge
from werkzeug.routing import IntegerConverter, Map

from app.api.schemas import ApiErrorSchema
from app.errors import is_api_request, render_error
from app.observability import current_request_id


class Base(DeclarativeBase):
    # Named constraints, so migrations can alter them on every backend.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


# Results are used after commit (to build responses); no reload needed for that.
db = SQLAlchemy(model_class=Base, session_options={"expire_on_commit": False})
# Execution option for a transaction that only reads and needs one consistent view of the database
# (check-consistency): on SQLite it begins without the write lock (see app._tune_sqlite).
READ_SNAPSHOT = "tutor_read_snapshot"
migrate = Migrate(render_as_batch=True)


class TutorApi(Api):
    """flask-smorest's Api, with a ``message`` in every error body (not only some).

    Its handler answers every HTTP error of the app; pages outside /api/ get an
    HTML error page instead of JSON. A 405 names the methods the URL allows (``Allow``, RFC 9110), on
    pages and in the API.
    """

    ERROR_SCHEMA = ApiErrorSchema

    def handle_http_exception(self, error: Any) -> Any:
        if isinstance(error, RequestEntityTooLarge):  # Werkzeug's own wording names no limit
            limit = current_app.config["MAX_CONTENT_LENGTH"]
            error.description = f"The request body is larger than {limit} bytes."
        allow = {}
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            allow = {"Allow": ", ".join(sorted(error.valid_methods))}
        if not is_api_request():
            data = dict(getattr(error, "data", None) or {})
            return render_error(
                error.code,
                data.get("message") or error.description,
                title=error.name,
                headers={**data.get("headers", {}), **allow},
            )
        payload, code, headers = super().handle_http_exception(error)
        headers = {**(headers or {}), **allow}
        if "message" not in payload:
            if "errors" in payload:
                payload["message"] = "The request is not valid: see 'errors'."
            else:
                payload["message"] = error.description or error.name
        payload["request_id"] = current_request_id()
        return payload, code, headers


# Row ids are PostgreSQL INTEGERs: a larger number in a URL is a 404 at routing, not a database overflow.
MAX_ROW_ID = 2**31 - 1


class RowIdConverter(IntegerConverter):
    """``<id:name>``: a positive row id (documented in the OpenAPI spec with its bounds)."""

    def __init__(self, map: Map) -> None:
        super().__init__(map, min=1, max=MAX_ROW_ID)


api = TutorApi()
login_manager = LoginManager()
csrf = CSRFProtect()
# Limits are set per route from the config (RATELIMIT_LOGIN, RATELIMIT_API); counters live in
# RATELIMIT_STORAGE_URI (memory:// per process by default, redis://... to share them).
limiter = Limiter(key_func=get_remote_address, headers_enabled=True)
