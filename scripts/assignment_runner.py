"""Runs one notebook's code cells in order, in this process, for the grader (scripts/assignment.py).

    python assignment_runner.py NOTEBOOK PARAMS_JSON LOG_JSON

Each cell runs through IPython (so `%` magics work) and an error stops that cell only, as in
Jupyter with "run all, continue on errors". The cell after the one tagged `parameters` gets the
assignment's parameters, whatever the notebook's own cell says. The log (one entry per cell that
raised) is rewritten after every cell, so a run killed for time or memory keeps what it had.
Printed output is capped: a submission that prints without end costs itself, not the grader.
It runs inside the grader's sandbox, as an unprivileged user, with its scratch folder as the cwd.
"""
from __future__ import annotations

import json
import os
import sys
import traceback

OUTPUT_CAP = 200_000  # characters of printed output kept in total; the rest is dropped


class CappedStream:
    def __init__(self, stream):
        self.stream, self.left = stream, OUTPUT_CAP

    def write(self, text):
        if self.left > 0:
            self.stream.write(text[: self.left])
            self.left -= len(text)
        return len(text)

    def flush(self):
        self.stream.flush()

    def isatty(self):
        return False

    def fileno(self):
        return self.stream.fileno()


def main(notebook_path: str, params_path: str, log_path: str) -> None:
    with open(notebook_path, encoding="utf-8") as f:
        cells = json.load(f)["cells"]
    with open(params_path, encoding="utf-8") as f:
        params = json.load(f)
    sys.stdout, sys.stderr = CappedStream(sys.stdout), CappedStream(sys.stderr)
    os.environ.setdefault("MPLBACKEND", "Agg")
    from IPython.core.interactiveshell import InteractiveShell
    shell = InteractiveShell.instance()
    log: list[dict] = []

    def write_log():
        with open(log_path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(log, f)
        os.replace(log_path + ".tmp", log_path)

    write_log()
    injected = False
    for index, cell in enumerate(cells):
        if cell.get("cell_type") != "code":
            continue
        source = cell.get("source", "")
        source = "".join(source) if isinstance(source, list) else str(source)
        result = shell.run_cell(source, store_history=False, silent=False)
        error = result.error_in_exec or result.error_before_exec
        if error is not None:
            meta = cell.get("metadata", {}).get("grade", {})
            message = "".join(traceback.format_exception_only(type(error), error)).strip()
            log.append({"cell": index, "question": meta.get("question") if isinstance(meta, dict) else None,
                        "error": message[-2000:]})
            write_log()
        if not injected and "parameters" in cell.get("metadata", {}).get("tags", []):
            shell.user_ns.update(params)
            injected = True
    if not injected:
        log.append({"cell": None, "question": None,
                    "error": "no cell tagged 'parameters': the assignment's parameters were not set"})
    write_log()


if __name__ == "__main__":
    main(*sys.argv[1:4])
