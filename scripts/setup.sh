#!/usr/bin/env bash
# Create .venv (if missing) and install everything the course needs, at the versions pinned in
# requirements.lock (regenerate it with scripts/lock.sh). Run by build-site.sh and test.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  echo "== creating .venv with $($PYTHON --version)"
  "$PYTHON" -m venv .venv
fi
echo "== installing the locked requirements (PyTorch is large: the first install takes a few minutes)"
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt -c constraints.txt -c requirements.lock
