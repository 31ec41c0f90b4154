"""What ``flask doctor`` checks: the Python stack that fitting depends on, the database, the content.

Each check is a ``Check`` line; only a database that cannot be reached or a schema behind the latest
migration is a problem (``ok=False``). Untested library versions and a pure-Python pyBKT are warnings:
the service works, fits are only slower or untested.
"""

from __future__ import annotations

import importlib.metadata
import platform
import shutil
import sys
from dataclasses import dataclass

from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name
from sqlalchemy import Engine, func, select
from sqlalchemy.exc import SQLAlchemyError

from app.models import Exercise, Skill
from app.services.modelling import pybkt_engine

# The libraries pyBKT 1.4.3 depends on: pyproject.toml allows only the versions known to work with it
# (../shared/REFERENCES.md §2: numpy >= 2.4 breaks its pure-Python EM loop, scikit-learn >= 1.8 its import).
PYBKT_STACK = ("numpy", "pandas", "scikit-learn")
PROJECT = "tutor"
COMPILERS = ("g++", "c++")


@dataclass(frozen=True)
class Check:
    name: str
    detail: str
    ok: bool = True  # False: the service cannot work as it is (exit non-zero)
    warning: bool = False  # works, but slower or untested


def declared_ranges() -> dict[str, SpecifierSet]:
    """The versions of ``PYBKT_STACK`` the installed project declares (pyproject.toml, via its metadata)."""
    try:
        requirements = importlib.metadata.requires(PROJECT) or []
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return {}
    ranges: dict[str, SpecifierSet] = {}
    for line in requirements:
        requirement = Requirement(line)
        name = canonicalize_name(requirement.name)
        if requirement.marker is None and name in PYBKT_STACK:
            ranges[name] = requirement.specifier
    return ranges


def compiler_on_path() -> str | None:
    """The C++ compiler pyBKT's source build would use, if any."""
    for name in COMPILERS:
        found = shutil.which(name)
        if found:
            return found
    return None


def stack_checks() -> list[Check]:
    """Python, pyBKT (which build, which E-step fits use), and the libraries pyBKT depends on."""
    checks = [Check("python", f"{platform.python_version()} ({sys.executable})")]
    compiler = compiler_on_path()
    compiler_note = f"C++ compiler: {compiler}" if compiler else "no C++ compiler (g++/c++) on PATH"
    version = pybkt_engine.pybkt_version()
    if pybkt_engine.compiled_e_step_available():
        checks.append(
            Check(
                "pyBKT",
                f"{version}, compiled C++ E-step: standard BKT and forgets use it, "
                f"class variants the pure-Python E-step; {compiler_note}",
            )
        )
    else:
        hint = (
            "scripts/serve or scripts/test builds it"
            if compiler
            else "install g++ and re-run scripts/serve or scripts/test to build it"
        )
        checks.append(
            Check(
                "pyBKT",
                f"{version}, pure-Python E-step only: fits are about 60 times "
                f"slower ({compiler_note}; {hint})",
                warning=True,
            )
        )
    ranges = declared_ranges()
    for package in PYBKT_STACK:
        version = importlib.metadata.version(package)
        span = ranges.get(package)
        if span is None:
            checks.append(
                Check(package, f"{version} (range unknown: the project is not installed)", warning=True)
            )
            continue
        good = span.contains(version, prereleases=True)
        checks.append(
            Check(
                package,
                f"{version} ({'within' if good else 'OUTSIDE'} the range known good for pyBKT 1.4.3: {span})",
                warning=not good,
            )
        )
    return checks


def database_checks(engine: Engine, migrations: str) -> list[Check]:
    """Reachable (URL with the password masked), schema at the latest migration, content loaded."""
    url = engine.url.render_as_string(hide_password=True)
    heads = set(ScriptDirectory(migrations).get_heads())
    try:
        with engine.connect() as connection:
            current = set(MigrationContext.configure(connection).get_current_heads())
            counts = (
                connection.execute(
                    select(
                        select(func.count())
                        .where(Skill.is_active, Skill.source != "imported")
                        .scalar_subquery(),
                        select(func.count())
                        .where(Skill.is_active, Skill.source == "imported")
                        .scalar_subquery(),
                        select(func.count()).where(Exercise.is_active).scalar_subquery(),
                    )
                ).one()
                if current == heads
                else None
            )
    except SQLAlchemyError as error:
        first_line = str(getattr(error, "orig", None) or error).strip().splitlines()[0]
        return [Check("database", f"{url}: cannot connect ({first_line})", ok=False)]
    checks = [Check("database", f"{url}: reachable")]
    latest = ", ".join(sorted(heads))
    if counts is None:
        at = ", ".join(sorted(current)) or "no migration (empty database)"
        return [*checks, Check("schema", f"at {at}, latest is {latest}: run 'flask init-db'", ok=False)]
    checks.append(Check("schema", f"at the latest migration ({latest})"))
    skills, imported, exercises = counts
    if skills:
        extra = f" (and {imported} imported skills)" if imported else ""
        checks.append(Check("content", f"{skills} skills, {exercises} exercises loaded{extra}"))
    else:
        checks.append(Check("content", "no content loaded: run 'flask load-content'", warning=True))
    return checks
