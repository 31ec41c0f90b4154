"""The habits that keep installs reproducible and tests independent of the machine's speed."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import hypothesis
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

ROOT = Path(__file__).resolve().parents[2]


def _pins() -> dict[str, Version]:
    pins = {}
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[canonicalize_name(name)] = Version(version)
    return pins


def test_the_lock_pins_every_declared_dependency_inside_its_declared_range() -> None:
    """scripts/_venv.sh installs with `-c requirements.lock`: a dependency the lock misses would be
    installed at whatever version is newest that day, and a pin outside pyproject's range (the
    pyBKT / numpy / scikit-learn / pandas window) would make the install fail."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    pins = _pins()
    problems = []
    for text in project["dependencies"] + project["optional-dependencies"]["test"]:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement.name} is not in requirements.lock (run scripts/lock)")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement.name}=={pinned} is outside {requirement.specifier}")
    assert problems == []
    assert "tutor" not in pins  # the project itself is installed from the tree, never pinned


def test_hypothesis_runs_without_deadlines_or_speed_health_checks() -> None:
    current = hypothesis.settings()
    assert current.deadline is None
    assert hypothesis.HealthCheck.too_slow in current.suppress_health_check


def test_no_test_sets_a_hypothesis_deadline_of_its_own() -> None:
    """An explicit @settings(deadline=...) would override the profile and depend on the machine again."""
    offenders = []
    for path in sorted((ROOT / "tests").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", "")) in (
                "settings",
                "register_profile",
            ):
                offenders += [
                    f"{path.relative_to(ROOT)}:{node.lineno}"
                    for keyword in node.keywords
                    if keyword.arg == "deadline"
                    and not (isinstance(keyword.value, ast.Constant) and keyword.value.value is None)
                ]
    assert offenders == []
