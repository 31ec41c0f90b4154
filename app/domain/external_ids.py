"""A student's external id: the school's or app's own pseudonymous id for them. One rule for every way in
(the API, roster CSVs for ``flask enroll``, imported response logs), so the same id reaches the same
student whichever way it came, and no way stores what another refuses.
"""

from __future__ import annotations

import re

# 1 to 200 characters (the column's size), none of them a control character: no tab, newline, carriage
# return or NUL (PostgreSQL refuses NUL in text; the others break CSV files and terminal output).
EXTERNAL_ID = re.compile(r"[^\x00-\x1f\x7f]{1,200}")
EXTERNAL_ID_RULE = "must be 1-200 printable characters"


def clean_external_id(raw: str) -> str | None:
    """``raw`` without surrounding whitespace, or None when what is left breaks the rule (empty, over 200
    characters, or holding a control character)."""
    value = raw.strip()
    return value if EXTERNAL_ID.fullmatch(value) else None
