#!/usr/bin/env bash
# Set up what the tests need, then run all of them: ruff, unit tests, nbval over every notebook,
# papermill runs, the book build (English and Chinese) and the headless-browser tests.
# Usage: bash scripts/test.sh [extra pytest arguments]
#        bash scripts/test.sh -m "not slow"     # the contributors' fast loop (no notebooks, builds, browsers)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
if [ ! -x /usr/bin/chromium ] || ! fc-list :lang=zh 2>/dev/null | grep -q .; then
  echo "== installing Debian's chromium and a Chinese font (fonts-noto-cjk) for the browser tests"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium fonts-noto-cjk >/dev/null
fi
if [ ! -f node_modules/axe-core/axe.min.js ]; then
  echo "== installing axe-core (package-lock.json) for the accessibility tests"
  if ! command -v npm >/dev/null; then
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq npm >/dev/null
  fi
  npm ci --silent --no-audit --no-fund
fi
if ! command -v unshare >/dev/null || ! command -v setpriv >/dev/null; then
  echo "== installing util-linux (unshare, setpriv) for the graded assignments' sandbox"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq util-linux >/dev/null
fi
echo "== running pytest (unit tests, nbval over every notebook, papermill, book build, browser)"
exec .venv/bin/python -m pytest --durations=40 "$@"
