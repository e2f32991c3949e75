#!/usr/bin/env bash
# `make lock`: resolve every dependency to its newest allowed release in a scratch venv, run the
# whole suite on it, and only if it passes write those exact versions to requirements.lock.
# The working .venv is not touched; `make test` picks the new lock up on its next run.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "lock: resolving the newest releases into a scratch venv ($scratch)"
"$PYTHON" -m venv "$scratch/venv"
"$scratch/venv/bin/pip" install --quiet --upgrade pip setuptools
"$scratch/venv/bin/pip" install --quiet --no-build-isolation -e '.[test]'

echo "lock: running lint and the suite on them"
"$scratch/venv/bin/ruff" check .
"$scratch/venv/bin/python" -m pytest ${PYTEST_ARGS:-}

{
    echo "# The exact versions the whole suite last passed with (Python $("$scratch/venv/bin/python" -c 'import platform; print(platform.python_version())')); the Makefile installs"
    echo "# through it as a constraints file. Refresh with \`make lock\` (scripts/refresh_lock.sh), which"
    echo "# only writes it after lint and the suite pass on the newest releases."
    "$scratch/venv/bin/pip" freeze --all --exclude-editable | LC_ALL=C sort -f -t= -k1,1
} > requirements.lock
echo "lock: wrote requirements.lock ($(grep -vc '^#' requirements.lock) packages)"

