"""The one CSV writer of the app: every CSV the service produces (the export ZIP, the class report, the
codes ``flask enroll`` prints) goes through it, so no cell can run as a spreadsheet formula.

OWASP's rule for CSV injection: a cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return
may be read as a formula by Excel, LibreOffice or Google Sheets (``=HYPERLINK(...)``, ``@SUM(...)``,
``"\\t=1+1"``), so it is prefixed with a single quote, which spreadsheets show as text. Plain numbers
(``-3``, ``+1.5``, ``-2e-3``) are left as they are: they cannot be formulas, and a negative P(L) delta or a
typed answer "-12" should stay a number. Quotes and separators inside cells are the ``csv`` module's job.

A test walks app/ and fails if anything else creates a ``csv.writer`` or ``csv.DictWriter``.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any, TextIO

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")


def cell(value: Any) -> str:
    """One value as a CSV cell: None as empty, dates in ISO 8601, lists and dicts as JSON, and text that a
    spreadsheet would run as a formula prefixed with ``'``."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        text = json.dumps(value, default=str)
    else:
        text = str(value)
    if text.startswith(FORMULA_STARTS) and not _NUMBER.fullmatch(text):
        return "'" + text
    return text


class Writer:
    """``csv.writer`` with every cell passed through :func:`cell`. Lines end in CRLF (RFC 4180): the csv
    module quotes a cell holding any character of the line terminator, so with a bare "\n" a carriage
    return inside a cell would go out unquoted and split the row in a spreadsheet."""

    def __init__(self, stream: TextIO) -> None:
        self._writer = csv.writer(stream, lineterminator="\r\n")

    def writerow(self, row: Iterable[Any]) -> None:
        self._writer.writerow([cell(value) for value in row])

    def writerows(self, rows: Iterable[Iterable[Any]]) -> None:
        for row in rows:
            self.writerow(row)


def writer(stream: TextIO) -> Writer:
    return Writer(stream)


def table(rows: Iterable[Mapping[str, Any]], columns: Iterable[str] = ()) -> str:
    """Rows of dicts as a CSV document: a header of ``columns`` and then every key met in the rows, in
    order of first appearance; a missing value is an empty cell."""
    rows = list(rows)
    header = list(dict.fromkeys([*columns, *(key for row in rows for key in row)]))
    out = io.StringIO()
    csv_out = writer(out)
    csv_out.writerow(header)
    for row in rows:
        csv_out.writerow(row.get(key) for key in header)
    return out.getvalue()
