"""Request input the service can store: finite numbers, valid Unicode, no NUL characters.

JSON allows things a database column does not: ``NaN``, ``1e999`` (infinity), unpaired
UTF-16 surrogates (``"\\ud800"``) and NUL characters (PostgreSQL refuses both in text),
duplicate keys (which one counts?), and nesting deep enough to exhaust the parser's
recursion. Each is refused here with a 400 that names it, before any view runs, instead
of surfacing as a database error (a 500) halfway through a request.
"""

from __future__ import annotations

import json
import math
from typing import Any

from flask import Flask, request
from flask_smorest import Blueprint, abort
from webargs import core
from webargs.flaskparser import FlaskParser, is_json_request
from werkzeug.exceptions import RequestEntityTooLarge


class UnusableJSON(json.JSONDecodeError):
    """Well-formed or not, JSON the service will not take (the message says why)."""

    def __init__(self, message: str) -> None:
        # webargs reads a decode error with an empty document as "no body": never empty here.
        super().__init__(message, "<request body>", 0)

    def __str__(self) -> str:
        return self.msg


def _no_constants(name: str) -> Any:
    raise UnusableJSON(f"{name} is not a number JSON allows")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UnusableJSON(f"the number {text[:20]} is out of range")
    return value


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > 30:  # far beyond any count, id or time the API takes
        raise UnusableJSON(f"the integer {text[:20]}... has more than 30 digits")
    return int(text)


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise UnusableJSON(f"the key {key[:40]!r} appears twice in one object")
        result[key] = value
    return result


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "strings must not contain NUL characters (\\u0000)"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "strings must not contain unpaired UTF-16 surrogates (e.g. \\ud800)"
    return None


def load_json(raw: bytes) -> Any:
    """Parse a request body strictly; raise ``json.JSONDecodeError`` (a subclass) saying what is wrong."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UnusableJSON(f"the body is not UTF-8 text (byte {error.start})") from None
    try:
        value = json.loads(
            text,
            parse_constant=_no_constants,
            parse_float=_finite,
            parse_int=_bounded_int,
            object_pairs_hook=_no_duplicate_keys,
        )
    except RecursionError:
        raise UnusableJSON("arrays or objects are nested too deeply") from None
    except ValueError as error:  # e.g. an integer of more than 4,300 digits
        if isinstance(error, json.JSONDecodeError):
            raise
        raise UnusableJSON(str(error)) from None
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            problem = _string_problem(item)
            if problem:
                raise UnusableJSON(problem)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return value


class StrictParser(FlaskParser):
    """webargs' Flask parser with ``load_json`` and an error message that names the problem."""

    def _raw_load_json(self, req: Any) -> Any:
        if not is_json_request(req):
            return core.missing
        return load_json(req.get_data(cache=True))

    def _handle_invalid_json_error(self, error: Any, req: Any, *args: Any, **kwargs: Any) -> Any:
        message = f"Invalid JSON body: {error}."
        abort(400, exc=error, message=message, messages={"json": [message]})


class StrictBlueprint(Blueprint):
    ARGUMENTS_PARSER = StrictParser()


def _check_body_size() -> None:
    """A body of declared length over MAX_CONTENT_LENGTH is Werkzeug's to refuse, with a 413, when first
    read. A body without one (``Transfer-Encoding: chunked``; gunicorn and Werkzeug's server mark such
    streams terminated) is only cut at the limit, silently: the JSON parser then saw a truncated document
    and answered 400 "Unterminated string", and a form would lose its last fields. So such a body is read
    here, and one byte past the limit is the same 413."""
    limit = request.max_content_length
    if limit is None or request.content_length is not None or "wsgi.input_terminated" not in request.environ:
        return
    body = request.get_data(cache=True)  # parsers (JSON, forms) read this copy
    if len(body) >= limit and request.environ["wsgi.input"].read(1):
        raise RequestEntityTooLarge()


def _check_request() -> None:
    """A NUL character in the path, the query or a form field: never meant, and PostgreSQL refuses it in
    text."""
    _check_body_size()
    if "\x00" in request.path:
        abort(400, message="The URL path contains a NUL character (%00).")
    sources = [("query", request.args)]
    if request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        sources.append(("form", request.form))
    for where, values in sources:
        for key, value in values.items(multi=True):
            if "\x00" in key or "\x00" in value:
                abort(
                    400,
                    message=f"The {where} parameter {key.replace(chr(0), '')[:40]!r} "
                    "contains a NUL character (%00).",
                )


def init_app(app: Flask) -> None:
    app.before_request(_check_request)
