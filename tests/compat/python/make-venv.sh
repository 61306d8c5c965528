#!/usr/bin/env bash
# Creates the venv the Python conformance scripts run in, with exactly the pins of
# requirements.txt (`make compat-venv`). Idempotent: when the venv already holds exactly those
# pins it is left alone; otherwise it is recreated from scratch, so a changed pin never leaves a
# mix of old and new packages behind.
#
# usage: make-venv.sh PYTHON VENV_DIR
#   PYTHON    a CPython 3.11 interpreter (tikv-client 0.0.4 only has cp311 wheels)
#   VENV_DIR  where the venv goes (the Makefile uses tests/compat/.venv)
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 PYTHON VENV_DIR" >&2
    exit 2
fi
python=$1
venv=$2
requirements="$(cd "$(dirname "$0")" && pwd)/requirements.txt"

# "name==version" lines, names normalised as pip does (PEP 503), sorted.
normalise() {
    sed -e 's/[[:space:]]*#.*//' -e '/^[[:space:]]*$/d' |
        awk -F'==' '{ n = tolower($1); gsub(/[-_.]+/, "-", n); print n "==" $2 }' |
        sort
}

wanted=$(normalise <"$requirements")
if grep -qvE '^[a-z0-9-]+==[^=]+$' <<<"$wanted"; then
    echo "$requirements: every requirement must be an exact 'name==version' pin" >&2
    exit 1
fi

installed() {
    "$venv/bin/python" -m pip freeze --disable-pip-version-check 2>/dev/null | normalise
}

if [ -x "$venv/bin/python" ] && [ "$(installed)" = "$wanted" ]; then
    echo "compat venv up to date: $venv"
    exit 0
fi

if ! command -v "$python" >/dev/null 2>&1; then
    echo "no '$python' on PATH: the conformance venv needs CPython 3.11" \
        "(set COMPAT_PYTHON=/path/to/python3.11)" >&2
    exit 1
fi
version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])') || {
    echo "cannot run '$python' as a Python interpreter" >&2
    exit 1
}
if [ "$version" != "3.11" ]; then
    echo "$python is Python $version; tikv-client 0.0.4 only has wheels for CPython 3.11" \
        "(set COMPAT_PYTHON=/path/to/python3.11)" >&2
    exit 1
fi

echo "creating the compat venv in $venv ($python, Python $version)"
# --clear: a venv with other pins is rebuilt, never patched.
"$python" -m venv --clear "$venv"
# --no-deps: requirements.txt pins the whole closure; pip check below proves it complete.
# --only-binary: never build anything from source (tikv-client has no sdist anyway).
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
    --no-deps --only-binary=:all: -r "$requirements"
"$venv/bin/python" -m pip check --disable-pip-version-check
if [ "$(installed)" != "$wanted" ]; then
    echo "the venv does not hold exactly the pins of $requirements:" >&2
    diff <(echo "$wanted") <(installed) >&2 || true
    exit 1
fi
# The two clients import (the wheel's native module loads on this platform).
"$venv/bin/python" -c 'import tikv, tikv_client'
echo "compat venv ready: $venv"
