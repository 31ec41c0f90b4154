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


# Characters Python's str.strip() removes that are not control characters: the rule in JSON Schema terms
# below is held to str.isspace() over all of Unicode by a unit test.
SPACES = r"\u0020\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# The rule for the id as sent (before stripping), in the regex dialect both Python and JSON Schema (ECMA 262)
# read alike: printable characters, at least one of them not a space (with maxLength 200 in the document).
RAW_EXTERNAL_ID = rf"^[^\x00-\x1f\x7f]*[^\x00-\x1f\x7f{SPACES}][^\x00-\x1f\x7f]*$"


def clean_external_id(raw: str) -> str | None:
    """``raw`` without surrounding whitespace, or None when what is left breaks the rule (empty, over 200
    characters, or holding a control character)."""
    value = raw.strip()
    return value if EXTERNAL_ID.fullmatch(value) else None
