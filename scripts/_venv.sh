# Sourced by scripts/serve and scripts/test: make .venv (Python >= 3.11) and install the project.
# Usage: . scripts/_venv.sh [extra]   e.g. ". scripts/_venv.sh test" installs .[test]
set -euo pipefail
PYTHON="${PYTHON:-python3}"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "Error: Python 3.11 or newer is needed ($PYTHON is $("$PYTHON" --version 2>&1))." >&2
    exit 1
fi
if [ ! -x .venv/bin/python ]; then
    echo "Creating .venv ..."
    "$PYTHON" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip setuptools wheel
fi
extra="${1:-}"
target="."
[ -n "$extra" ] && target=".[$extra]"
# Versions come from requirements.lock (scripts/lock writes it), so every clone installs what was tested.
# The install is skipped while pyproject.toml and the lock are those of the last successful install
# (the project itself is editable: code changes need no reinstall).
stamp=".venv/.installed-${extra:-base}"
wanted="$(cat pyproject.toml requirements.lock | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    echo "Installing the project ($target) into .venv, versions from requirements.lock ..."
    if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -c requirements.lock \
            -e "$target" > .venv/pip.log 2>&1; then
        cat .venv/pip.log >&2
        echo "Error: pip could not install the project (output above)." >&2
        exit 1
    fi
    grep -v -e '^WARNING: Location' -e 'is ignored: it is neither' .venv/pip.log || true
    echo "$wanted" > "$stamp"
fi
# pyBKT's wheel is pure Python; its source also builds a C++ E-step, hundreds of times faster, that fits use
# for standard BKT and forgets (docs/ARCHITECTURE.md). Built once, after numpy (no build isolation: it compiles
# against the installed numpy; no pip cache: a wheel built against another numpy would not import). setup.py
# falls back to pure Python silently, so only the import tells which build is there; it also catches a build
# that a later numpy upgrade broke. Repeat runs only check the import.
# A build that failed is not tried again on every run (delete .venv/.pybkt-build-failed to retry); `flask
# doctor` tells which build is active.
if ! .venv/bin/python -c 'import pyBKT.fit.E_step' 2>/dev/null && [ ! -e .venv/.pybkt-build-failed ]; then
    pybkt="pyBKT==$(.venv/bin/python -c 'import importlib.metadata as m; print(m.version("pyBKT"))')"
    if command -v g++ >/dev/null 2>&1 || command -v c++ >/dev/null 2>&1; then
        printf "Building %s with its compiled E-step ... " "$pybkt"
        .venv/bin/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation \
            --no-binary pyBKT --no-cache-dir --force-reinstall "$pybkt" >/dev/null 2>&1 || true
        if .venv/bin/python -c 'import pyBKT.fit.E_step' 2>/dev/null; then
            echo "done."
        else
            echo "failed: fits use pyBKT's pure-Python E-step (much slower)."
            touch .venv/.pybkt-build-failed
        fi
    else
        echo "No C++ compiler (g++/c++): fits use pyBKT's pure-Python E-step (much slower)."
    fi
fi
# shellcheck disable=SC1091
. .venv/bin/activate
