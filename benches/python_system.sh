#!/usr/bin/env bash
# Runs benches/python_system.py (the Python `eventsourcing` 9.5.6 baseline
# for the systems benchmark) in a virtualenv with that version installed,
# passing on every argument, e.g.
#
#   benches/python_system.sh --all                 # four combinations, median of 3 each
#   benches/python_system.sh --runner threads --persistence sqlite --orders 500
#
# ES_PYTHON_VENV: where the virtualenv is (default /tmp/es-python-venv);
# PYTHON: the interpreter that makes it (default python3).
set -euo pipefail

VERSION=9.5.6
VENV="${ES_PYTHON_VENV:-/tmp/es-python-venv}"
PYTHON="${PYTHON:-python3}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

if [ ! -x "$VENV/bin/python" ]; then
    echo "# making a virtualenv in $VENV" >&2
    "$PYTHON" -m venv "$VENV"
fi

if ! "$VENV/bin/python" - "$VERSION" >/dev/null 2>&1 <<'PY'
import sys
from importlib.metadata import version
sys.exit(0 if version("eventsourcing") == sys.argv[1] else 1)
PY
then
    echo "# installing eventsourcing==$VERSION into $VENV" >&2
    "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "eventsourcing==$VERSION"
fi

exec "$VENV/bin/python" "$HERE/python_system.py" "$@"
