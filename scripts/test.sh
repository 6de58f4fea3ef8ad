#!/usr/bin/env bash
# Set up what the tests need, then run all of them: unit tests, nbval over every notebook,
# papermill runs, the book build and the headless-browser tests.
# Usage: bash scripts/test.sh [extra pytest arguments]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -x /usr/bin/chromium ]; then
  echo "== installing Debian's chromium and chromium-driver for the browser tests"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver >/dev/null
fi
echo "== running pytest (unit tests, nbval over every notebook, papermill, book build, browser)"
exec .venv/bin/python -m pytest "$@"
