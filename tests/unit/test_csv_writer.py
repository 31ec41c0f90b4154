"""The one CSV writer: OWASP's CSV-injection rule on every cell, and no other CSV writer in app/."""

from __future__ import annotations

import ast
import csv
import io
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app import csv_writer

APP_DIR = Path(__file__).resolve().parents[2] / "app"
FORMULAS = ["=1+1", "+A1", "-A1+1", "@SUM(A1:A2)", "\t=1+1", "\r=1+1", '=HYPERLINK("http://x.example")']


@pytest.mark.parametrize("text", FORMULAS)
def test_a_cell_a_spreadsheet_would_run_is_text(text: str) -> None:
    assert csv_writer.cell(text) == "'" + text
    out = io.StringIO()
    csv_writer.writer(out).writerow(["ok", text])
    assert list(csv.reader(io.StringIO(out.getvalue(), newline=""))) == [["ok", "'" + text]]


@pytest.mark.parametrize("text", ["-3", "+1.5", "-2e-3", "0.25", "-.5", "plain", "a=b", " =1", ""])
def test_numbers_and_harmless_text_are_left_alone(text: str) -> None:
    assert csv_writer.cell(text) == text


def test_values_of_other_types() -> None:
    at = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
    assert csv_writer.cell(None) == "" and csv_writer.cell(at) == at.isoformat()
    assert csv_writer.cell(-0.5) == "-0.5" and csv_writer.cell(True) == "True"
    assert csv_writer.cell({"a": [1]}) == '{"a": [1]}'
    assert csv_writer.cell(["=1+1"]) == '["=1+1"]'  # JSON text starts with a bracket: never a formula
    assert csv_writer.table([{"a": "=1", "b": 2}, {"b": "@x", "c": None}]) == "a,b,c\r\n'=1,2,\r\n,'@x,\r\n"


def test_no_other_module_writes_csv() -> None:
    """Every CSV the app writes goes through app/csv_writer.py (reading CSV is anyone's business)."""
    writers = []
    for path in APP_DIR.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("writer", "DictWriter")
                and isinstance(node.value, ast.Name)
                and node.value.id == "csv"
            ):
                writers.append(path.relative_to(APP_DIR).as_posix())
            if (
                isinstance(node, ast.ImportFrom)
                and node.module == "csv"
                and any(alias.name in ("writer", "DictWriter") for alias in node.names)
            ):
                writers.append(path.relative_to(APP_DIR).as_posix())
    assert sorted(set(writers)) == ["csv_writer.py"]
