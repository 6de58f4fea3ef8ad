#!/usr/bin/env bash
# The student edition: the same site with every exercise solution removed, text and executed
# ("gated") solutions alike, no page sources to download and no launch buttons (both would lead to
# the notebooks, which carry the solutions); a chapter with a graded assignment offers its student
# notebook instead. The notebooks are copied without their solutions by
# scripts/notebook_editions.py (sphinx-exercise's hide_solutions crashes on gated solutions).
# Output: _build/student/_build/html/index.html
# Usage: bash scripts/build-student-site.sh [output folder]
set -euo pipefail
cd "$(dirname "$0")/.."
OUT="${1:-_build/student}"
JB="${JUPYTER_BOOK:-.venv/bin/jupyter-book}"
PY="${PYTHON_BIN:-.venv/bin/python}"
SRC="$OUT/source"
rm -rf "$SRC"
mkdir -p "$SRC"
cp -r _toc.yml book "$SRC/"
# the graded assignments' student notebooks, offered in each chapter's download menu
if [ -d assignments ]; then cp -r assignments "$SRC/"; fi
"$PY" scripts/notebook_editions.py student "$SRC"
"$PY" - "$SRC/_config.yml" <<'PY'
import os, sys, yaml
config = yaml.safe_load(open("_config.yml"))
# local extension folders are resolved from the config file's folder: make them absolute
config["sphinx"]["local_extensions"] = {k: os.path.abspath(v) for k, v in config["sphinx"]["local_extensions"].items()}
config["title"] += " (student edition)"
config["launch_buttons"] = {}
config["html"]["use_repository_button"] = False
config["html"]["use_issues_button"] = False
sphinx_config = config["sphinx"]["config"]
sphinx_config["html_copy_source"] = False
sphinx_config["language_switch"] = False  # English only: no Chinese edition next to it
sphinx_config["html_theme_options"] = {"use_download_button": False}
yaml.safe_dump(config, open(sys.argv[1], "w"), sort_keys=False)
PY
"$JB" build "$SRC" --path-output "$OUT" -W -n --keep-going
echo "== student edition: $OUT/_build/html/index.html"
