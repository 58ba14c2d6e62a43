#!/usr/bin/env bash
# `make image-constraints`: hack/image-constraints.txt from a clean install of the project (its runtime
# dependencies only) with the Python of the image's Debian suite, plus setuptools, the build backend.
# Run it to take newer dependency versions; commit the file; the next `make images` installs exactly these.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
"$python" -m venv "$venv"
"$venv/bin/pip" install -q --upgrade pip
"$venv/bin/pip" install -q . 'setuptools>=77'
{
  echo "# Python packages of the image, pinned (hack/images.sh builds with PIP_CONSTRAINT pointing here)."
  echo "# Refresh: make image-constraints (a clean venv, pip install ., pip freeze); commit the result."
  "$venv/bin/pip" freeze --all --exclude inference-operator --exclude pip
} > hack/image-constraints.txt
echo "hack/image-constraints.txt: $(grep -c '==' hack/image-constraints.txt) packages"
