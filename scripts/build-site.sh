#!/usr/bin/env bash
# The main job: set everything up, then build the site from the notebooks' stored outputs.
# Usage: bash scripts/build-site.sh   (the site lands in _build/html/index.html, the Chinese one in _build/html/zh/)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== building the site (warnings are errors)"
.venv/bin/jupyter-book build . -W -n --keep-going
echo "== building the Chinese site from locale/zh_CN (warnings are errors)"
.venv/bin/python scripts/i18n.py build _build/html
echo "== done: open _build/html/index.html (English) or _build/html/zh/index.html (中文)"
