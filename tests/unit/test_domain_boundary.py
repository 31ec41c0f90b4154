"""app/domain stays pure: it imports only what is on an allow-list.

An allow-list, not a list of forbidden frameworks: a new dependency (flask_login, werkzeug, joblib, an
HTTP client) or a reach into the app's other layers (app.models, app.services) fails until someone decides
that the domain may use it.
"""

import ast
import sys
from pathlib import Path

import pytest

DOMAIN = Path(__file__).resolve().parents[2] / "app" / "domain"
# The standard library, numerics, and small pure libraries a model needs (fsrs: the memory model;
# sympy and mpmath: expression answers, app/domain/expressions.py; statsmodels: experiment statistics,
# app/domain/experiments/analysis.py).
ALLOWED_PACKAGES = frozenset(sys.stdlib_module_names) | {
    "numpy",
    "scipy",
    "fsrs",
    "sympy",
    "mpmath",
    "statsmodels",
}
ALLOWED_APP_MODULES = ("app.domain",)


def _allowed(module: str) -> bool:
    if module == "app" or module.startswith("app."):
        return any(module == m or module.startswith(m + ".") for m in ALLOWED_APP_MODULES)
    return module.split(".")[0] in ALLOWED_PACKAGES


def imports_outside_the_allow_list(source: str) -> list[str]:
    """The modules ``source`` imports that the domain may not."""
    imported = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            imported += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # `from app import models` imports app.models; `from numpy import typing` is numpy.
            if node.module == "app":
                imported += [f"app.{alias.name}" for alias in node.names]
            else:
                imported.append(node.module)
        # Relative imports (level > 0) stay inside app/domain.
    return [name for name in imported if not _allowed(name)]


def test_domain_imports_only_the_allow_list() -> None:
    files = sorted(DOMAIN.rglob("*.py"))
    assert len(files) >= 5
    offenders = [
        f"{path.relative_to(DOMAIN)}: {name}"
        for path in files
        for name in imports_outside_the_allow_list(path.read_text())
    ]
    assert offenders == []


@pytest.mark.parametrize(
    ("line", "refused"),
    [
        ("import flask_login", "flask_login"),
        ("from werkzeug.security import check_password_hash", "werkzeug.security"),
        ("import joblib", "joblib"),
        ("from app.models import Student", "app.models"),
        ("from app.services import tutoring", "app.services"),
        ("from app import models", "app.models"),
        ("import app.extensions", "app.extensions"),
        ("from sqlalchemy.orm import Session", "sqlalchemy.orm"),
        ("import pandas as pd", "pandas"),
        ("from pyBKT.models import Model", "pyBKT.models"),
    ],
)
def test_the_check_refuses_what_is_not_allowed(line: str, refused: str) -> None:
    assert imports_outside_the_allow_list(line) == [refused]


@pytest.mark.parametrize(
    "line",
    [
        "import math",
        "from collections.abc import Mapping",
        "import numpy as np",
        "from numpy.typing import NDArray",
        "from scipy import stats",
        "from fsrs import Scheduler",
        "from app.domain.bkt import BktParams",
        "from app.domain import memory",
        "from . import memory",
        "from __future__ import annotations",
    ],
)
def test_the_check_allows_the_allow_list(line: str) -> None:
    assert imports_outside_the_allow_list(line) == []
