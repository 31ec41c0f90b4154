"""docs/DATA.md lists every table and column the models hold, and no column collects network identifiers."""

from __future__ import annotations

import re
from pathlib import Path

import app.models  # noqa: F401 - registers every table on the metadata
from app.extensions import db

DATA_MAP = Path(__file__).resolve().parents[2] / "docs" / "DATA.md"


def documented() -> dict[str, set[str]]:
    tables: dict[str, set[str]] = {}
    current = None
    for line in DATA_MAP.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^### (\w+)\s*$", line)
        if heading:
            current = tables.setdefault(heading.group(1), set())
            continue
        row = re.match(r"^\| `(\w+)` \|", line)
        if row and current is not None:
            current.add(row.group(1))
    return tables


def test_every_column_is_in_the_data_map() -> None:
    described = documented()
    actual = {t.name: {c.name for c in t.columns} for t in db.metadata.sorted_tables}
    missing = {f"{t}.{c}" for t, cols in actual.items() for c in cols - described.get(t, set())}
    stale = {f"{t}.{c}" for t, cols in described.items() for c in cols - actual.get(t, set())}
    assert missing == set(), "add these to docs/DATA.md (what, why, who reads, retention, export, deletion)"
    assert stale == set(), "docs/DATA.md describes columns that no longer exist"


def test_no_network_identifiers_are_stored() -> None:
    suspicious = re.compile(r"(^|_)(ip|ip_address|remote_addr|user_agent|useragent|ua)($|_)")
    columns = [
        f"{t.name}.{c.name}"
        for t in db.metadata.sorted_tables
        for c in t.columns
        if suspicious.search(c.name)
    ]
    assert columns == []
