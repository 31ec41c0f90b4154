"""What the page blueprints share: the signed-in guard, where each role starts, small request parsers."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar, cast

from flask import abort, redirect, request, url_for
from flask.typing import ResponseReturnValue

from app.domain.access import Principal, Role
from app.sessions import signed_in
from app.web.redirects import safe_next_path

View = TypeVar("View", bound=Callable[..., ResponseReturnValue])


def signed_in_page(sign_in: str = "auth.login") -> Callable[[View], View]:
    """Signed-out visitors go to the sign-in page (and come back after); the view gets the principal.

    What the principal may do there is decided by the services it calls (403/404).
    """

    def decorate(view: View) -> View:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> ResponseReturnValue:
            principal = signed_in()
            if principal is None:
                target = request.full_path.rstrip("?") if request.method == "GET" else request.referrer
                return redirect(
                    url_for(sign_in, next=safe_next_path(target)),
                    code=302 if request.method == "GET" else 303,
                )
            return view(principal, *args, **kwargs)

        return cast(View, guarded)

    return decorate


def home_of(principal: Principal) -> str:
    return url_for("student.practice") if principal.role is Role.STUDENT else url_for("teacher.classes")


def students_only(principal: Principal) -> None:
    if principal.role is not Role.STUDENT:
        abort(403, "This page is for students.")


def export_format() -> str:
    fmt = request.args.get("format", "json")
    if fmt not in ("json", "csv"):
        abort(400, "format must be json or csv.")
    return fmt
