"""Writing OneRoster bundles for the tests: the domain only reads them (``app.domain.oneroster``); this writes
a ``Bundle`` back as its information system would (every file of its version in the manifest, each file that
is not absent with every column the reader knows), optionally with a BOM and LF line ends."""

from __future__ import annotations

import csv
import io
import zipfile
from typing import Any

from app.domain.oneroster import ATTRIBUTES, FILES, MANIFEST, Bundle, Column, Mode, files_of


def _cell(value: Any) -> str:
    return ",".join(value) if isinstance(value, tuple) else str(value)


def write_bundle(bundle: Bundle, *, bom: bool = False, crlf: bool = True) -> bytes:
    """``bundle`` as a zip."""
    out = io.BytesIO()
    terminator = "\r\n" if crlf else "\n"

    def encoded(rows: list[list[str]]) -> bytes:
        text = io.StringIO()
        csv.writer(text, lineterminator=terminator).writerows(rows)
        return (("\ufeff" if bom else "") + text.getvalue()).encode("utf-8")

    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        manifest = [
            ["propertyName", "value"],
            ["manifest.version", "1.0"],
            ["oneroster.version", bundle.version],
        ]
        manifest += [[f"file.{name}", bundle.mode(name).value] for name in files_of(bundle.version)]
        archive.writestr(MANIFEST, encoded(manifest))
        for name in files_of(bundle.version):
            if bundle.mode(name) is Mode.ABSENT:
                continue
            columns: list[Column] = FILES[name]["columns"][bundle.version]
            records = getattr(bundle, ATTRIBUTES[name])
            rows = [[c.name for c in columns]]
            rows += [[_cell(getattr(record, c.attr)) for c in columns] for record in records]
            archive.writestr(f"{name}.csv", encoded(rows))
    return out.getvalue()
