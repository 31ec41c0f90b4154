"""What the OpenAPI document promises beyond what flask-smorest writes by itself.

Code generators read the document literally, so it states everything a client can rely on: a stable
``operationId`` per operation (required: registering a view without one fails at start), every error
status an operation can answer with the one error schema, "exactly one of" rules, and which strings can be
stored (no NUL). docs/API_CHANGELOG.md records each version of the contract (``API_VERSION``).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from apispec import BasePlugin
from marshmallow import fields

from app.api.schemas import LIST_ANSWER, NO_NUL, STRING_ANSWER, AnswerText
from app.settings import Settings

ERROR_REF = {"$ref": "#/components/schemas/ApiError"}
RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "schema": {"type": "integer", "minimum": 1},
}

# What each error status means in this API (README "Errors").
ERRORS = {
    400: "Malformed JSON, JSON no column can hold (NaN, Infinity, a key given twice, a NUL character or an "
    "unpaired surrogate), a NUL character in the URL, or a missing CSRF token (sessions).",
    401: "Missing, malformed, invalid or revoked credentials.",
    403: "The caller's role may never do this (e.g. a teacher posting answers).",
    404: "An unknown id, in the path or in the body (errors then names the field), or one that is not the "
    "caller's to see (indistinguishable on purpose).",
    409: "The request contradicts what is stored (the message says what): a client_response_id reused for a "
    "different answer, an Idempotency-Key reused with other parameters, or a change made at the same time "
    "(send it again).",
    413: "The request body is larger than MAX_REQUEST_BYTES.",
    415: "The request body is not JSON (send Content-Type: application/json).",
    422: "A valid JSON document with values that are not valid: see errors.",
    429: "Too many requests for this key (RATELIMIT_API): wait Retry-After seconds.",
    503: "The database is busy or unreachable; nothing was written: retry after Retry-After seconds.",
}
WITH_RETRY_AFTER = {429, 503}
BODY_METHODS = {"post", "put", "patch"}


def error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": f"{HTTPStatus(status).phrase}: {ERRORS[status]}",
        "content": {"application/json": {"schema": ERROR_REF}},
    }
    if status in WITH_RETRY_AFTER:
        response["headers"] = {"Retry-After": RETRY_AFTER}
    return response


def _is_reference(response: Any) -> bool:
    """Not yet described here: absent, or only a name or $ref of a generic response component."""
    return response is None or isinstance(response, str) or set(response) == {"$ref"}


def statuses_of(path: str, method: str, operation: dict[str, Any]) -> list[int]:
    """The error statuses every operation like this one can answer with; a view declares the rest (409, or a
    404 for an id its body names) with ``alt_response(status, response="CONFLICT")`` and the like."""
    statuses = [400, 401, 403, 429, 503]
    if "{" in path:  # a body naming an id (an exercise, students) is the view's to declare
        statuses.append(404)
    if method in BODY_METHODS or "requestBody" in operation:
        statuses += [413, 415, 422]
    if any(p.get("in") == "query" for p in operation.get("parameters", []) if isinstance(p, dict)):
        statuses.append(422)
    return sorted(set(statuses))


class ContractPlugin(BasePlugin):
    """Adds the error responses and checks operationIds (operation_helper); states a schema's
    ``EXACTLY_ONE_OF`` fields, and what its ``document_extras(settings)`` adds to its properties: rules
    that depend on this deployment's settings, such as the group attributes a school may record
    (schema_helper)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def operation_helper(
        self, path: str | None = None, operations: dict[str, Any] | None = None, **kwargs: Any
    ) -> None:
        for method, operation in (operations or {}).items():
            if not operation.get("operationId"):
                raise RuntimeError(f"{method.upper()} {path} has no operationId (@blp.doc(operationId=...))")
            # smorest keys some by int, some by str: one kind, so a status cannot appear twice
            responses = {str(key): value for key, value in operation.get("responses", {}).items()}
            operation["responses"] = responses
            responses.pop("default", None)  # every status is listed: nothing is left for "default"
            declared = [int(key) for key in responses if key.isdigit() and int(key) in ERRORS]
            for status in sorted({*statuses_of(path or "", method, operation), *declared}):
                # smorest's own 422, or a view's alt_response(409, response="CONFLICT"): our wording
                if _is_reference(responses.get(str(status))):
                    responses[str(status)] = error_response(status)

    def schema_helper(self, name: str, definition: Any, **kwargs: Any) -> dict[str, Any] | None:
        schema = kwargs.get("schema")
        extras = getattr(schema, "document_extras", None)
        if extras is not None:
            for field, rules in extras(self.settings).items():
                definition["properties"][field].update(rules)
        names = getattr(schema, "EXACTLY_ONE_OF", None)
        if not names:
            return None
        # "Not (both, or neither)": code generators ignore ``not`` and keep the object's own type, where a
        # top-level oneOf/anyOf makes them give up on it (openapi-python-client types the body ``Any``);
        # validators and fuzzers apply it.
        each = [{"required": [field]} for field in names]
        return {"not": {"anyOf": [{"required": list(names)}, {"not": {"anyOf": each}}]}}


def string_rules(self: Any, field: fields.Field[Any], ret: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    """An attribute function for apispec's field converter (bound to it, hence ``self``).

    Plain strings (no enum, no format, no pattern of their own) say that they hold no NUL character;
    an ``AnswerText`` is a string, a number or a list of strings."""
    if isinstance(field, AnswerText):
        for key in ("type", "minLength", "maxLength"):
            ret.pop(key, None)
        return {"oneOf": [STRING_ANSWER, {"type": "number"}, LIST_ANSWER]}
    types = ret.get("type")
    is_string = types == "string" or (isinstance(types, list) and "string" in types)
    if is_string and not {"enum", "format", "pattern"} & set(ret):
        return {"pattern": NO_NUL}
    return {}


def register(spec_converter: Any) -> None:
    spec_converter.add_attribute_function(string_rules)


# RFC 9745: the fields marked deprecated in the document have been so since version 1.1.0 (2026-12-02);
# answers that still carry them say so. The Link points at the document, which names each one and what
# replaces it (docs/API_CHANGELOG.md has the list).
DEPRECATED_SINCE = "@1796169600"
DEPRECATION_HEADERS = {
    "Deprecation": DEPRECATED_SINCE,
    "Link": '</api/v1/openapi.json>; rel="deprecation"; type="application/json"',
}
DEPRECATION_DOC = {
    "Deprecation": {
        "description": "This answer carries fields marked deprecated (removed in 2.0.0): see the changelog.",
        "schema": {"type": "string"},
    },
    "Link": {
        "description": "rel=deprecation: the OpenAPI document, which marks each deprecated field.",
        "schema": {"type": "string"},
    },
}
