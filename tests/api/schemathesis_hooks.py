"""What the API document says in words but JSON Schema cannot, taught to schemathesis (SCHEMATHESIS_HOOKS).

Loaded by the ``st run`` of tests/api/test_schemathesis_cli.py. Each hook encodes one rule that the document
states in a description, so that a request the document calls valid is one the service must accept. Nothing
here hides a failure: a rule JSON Schema can express belongs in the document, not here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import schemathesis
from schemathesis.generation.modes import GenerationMode

# "since ...: must not be after until" (GET /classes/{class_id}/report, query; POST /bias-checks, body):
# an order between two fields, which JSON Schema cannot state.
WINDOWS = (("since", "until"),)


def _moment(value: Any) -> datetime | None:
    """The time a date-time string names (UTC when it has no offset, as the service reads it)."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _in_order(container: Any) -> bool:
    """False when ``since`` and ``until`` are both valid times and ``since`` is after ``until``."""
    if not isinstance(container, dict):
        return True
    for first, last in WINDOWS:
        start, end = _moment(container.get(first)), _moment(container.get(last))
        if start is not None and end is not None and start > end:
            return False
    return True


# A filter, not a map that swaps the two: in schemathesis 4.32 any map_case hook, even one that returns the
# case unchanged, makes the fuzzing phase fail its "too many examples filtered out" health check.
@schemathesis.hook
def filter_case(ctx: Any, case: Any) -> bool:
    """A schema-valid request keeps the documented "since must not be after until" (query or body)."""
    meta = getattr(case, "meta", None)
    if meta is None or meta.generation.mode is not GenerationMode.POSITIVE:
        return True
    return _in_order(case.query) and _in_order(case.body)
