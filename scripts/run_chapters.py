"""Run chosen chapters with given parameters and collect the executed notebooks (papermill under the hood).

    .venv/bin/python scripts/run_chapters.py 03 04 --param epochs=1 --out runs/quick
    .venv/bin/python scripts/run_chapters.py all --param dataset=full --out runs/full

A parameter is passed only to the chapters whose `parameters` cell defines it, so `epochs=1` can go
to every chapter at once. Values are Python literals (`lr=0.01`, `dataset=full` works as a string too).
Prints one line per chapter (and papermill's progress bar with --progress); exits non-zero if any fails.
"""
from __future__ import annotations

import argparse
import ast
import json
import sys
import time
from pathlib import Path

import course  # scripts/course.py: the chapter list, stated once

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"


def chapters(selection: list[str]) -> list[Path]:
    available = course.chapters()
    if selection == ["all"]:
        return available
    chosen = []
    for item in selection:
        matches = [p for p in available if p.stem == item or p.stem.startswith(f"{item}_") or p.name == item]
        if len(matches) != 1:
            names = ", ".join(p.stem for p in available)
            raise SystemExit(f"no chapter matches {item!r}: use a number like 03, a name, or 'all' ({names})")
        chosen.append(matches[0])
    return chosen


def parse_params(pairs: list[str]) -> dict:
    params = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.isidentifier():
            raise SystemExit(f"--param wants name=value, got {pair!r}")
        try:
            params[name] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            params[name] = value  # a bare word: a string
    return params


def defined_parameters(path: Path) -> set[str]:
    cells = json.loads(path.read_text())["cells"]
    cell = next(c for c in cells if "parameters" in c.get("metadata", {}).get("tags", []))
    tree = ast.parse("".join(cell["source"]))
    return {t.id for node in tree.body if isinstance(node, ast.Assign) for t in node.targets if isinstance(t, ast.Name)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("chapters", nargs="+", help="chapter numbers or names (03, 05_cnn), or 'all'")
    parser.add_argument("--param", "-p", action="append", default=[], metavar="NAME=VALUE")
    parser.add_argument("--out", type=Path, default=ROOT / "runs", help="folder for the executed notebooks")
    parser.add_argument("--progress", action="store_true", help="show papermill's per-cell progress bar")
    parser.add_argument("--dry-run", action="store_true", help="print what would run, run nothing")
    args = parser.parse_args(argv)

    import papermill as pm

    params = parse_params(args.param)
    selected = chapters(args.chapters)
    if not args.dry_run:
        args.out.mkdir(parents=True, exist_ok=True)
    failures = 0
    for i, path in enumerate(selected, 1):
        mine = {k: v for k, v in params.items() if k in defined_parameters(path)}
        shown = " ".join(f"{k}={v!r}" for k, v in mine.items()) or "defaults"
        print(f"[{i}/{len(selected)}] {path.stem} ({shown}) ...", flush=True)
        if args.dry_run:
            continue
        start = time.perf_counter()
        try:
            pm.execute_notebook(str(path), str(args.out / path.name), parameters=mine, cwd=str(NOTEBOOKS),
                                kernel_name="python3", progress_bar=args.progress)
            print(f"    ok in {time.perf_counter() - start:.1f} s -> {args.out / path.name}", flush=True)
        except Exception as err:  # report and go on with the other chapters
            failures += 1
            print(f"    FAILED after {time.perf_counter() - start:.1f} s: {type(err).__name__}: "
                  f"{str(err).strip().splitlines()[-1] if str(err).strip() else ''}", flush=True)
    if not args.dry_run:
        print(f"{len(selected) - failures} of {len(selected)} chapters ran; executed notebooks in {args.out}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
