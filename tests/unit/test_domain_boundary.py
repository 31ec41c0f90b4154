"""app/domain stays pure: no Flask, no SQLAlchemy, no pyBKT, no I/O frameworks."""

import ast
from pathlib import Path

FORBIDDEN = {
    "flask", "flask_sqlalchemy", "flask_smorest", "sqlalchemy", "pyBKT", "pandas", "marshmallow", "sklearn",
}
DOMAIN = Path(__file__).resolve().parents[2] / "app" / "domain"


def test_domain_imports_no_framework() -> None:
    offenders = []
    for path in DOMAIN.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] in FORBIDDEN]
    assert offenders == []
    assert len(list(DOMAIN.glob("*.py"))) >= 5
