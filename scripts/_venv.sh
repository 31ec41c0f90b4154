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
echo "Installing the project ($target) into .venv ..."
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$target" 2>&1 \
    | grep -v -e '^WARNING: Location' -e 'is ignored: it is neither' || true
# shellcheck disable=SC1091
. .venv/bin/activate
