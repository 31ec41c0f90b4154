"""The external id rule as the OpenAPI document states it (a pattern on the id as sent) is the rule the server
applies (strip, then 1-200 printable characters): the same ids pass both."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from app.domain.external_ids import EXTERNAL_ID, RAW_EXTERNAL_ID, SPACES, clean_external_id

DOCUMENTED = re.compile(RAW_EXTERNAL_ID)


def server_accepts(raw: str) -> bool:
    return EXTERNAL_ID.fullmatch(raw) is not None and clean_external_id(raw) is not None


def document_accepts(raw: str) -> bool:
    return len(raw) <= 200 and DOCUMENTED.fullmatch(raw) is not None


def test_spaces_are_exactly_the_printable_characters_python_strips() -> None:
    spaces = re.compile(f"[{SPACES}]")
    for code in range(0x110000):
        char = chr(code)
        if code < 0x20 or code == 0x7F:
            continue
        assert bool(spaces.fullmatch(char)) == char.isspace(), hex(code)


# Spaces of every kind, control characters and ordinary text, in any mix and length around the limit.
PIECES = st.sampled_from([" ", "\u0085", "\u00a0", "\u3000", "\t", "\n", "\x00", "\x7f", "a", "é", "7", "-"])


@given(st.lists(PIECES, max_size=205).map("".join) | st.text(max_size=210))
def test_the_documented_pattern_accepts_what_the_server_accepts(raw: str) -> None:
    assert document_accepts(raw) == server_accepts(raw)


def test_examples() -> None:
    assert [document_accepts(raw) for raw in (" s-1 ", " ", "\u0085", "a\tb", "x" * 200, "x" * 201)] == [
        True,
        False,
        False,
        False,
        True,
        False,
    ]
