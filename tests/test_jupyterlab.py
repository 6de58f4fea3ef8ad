"""A chapter as a learner works with it locally: opened in a real JupyterLab (with jupyterlab-myst,
from requirements.txt) on 127.0.0.1, in Debian's headless Chromium, every cell run.

Checks: no error output; exercises rendered as exercises (no raw `:label:`); solutions collapsed,
text ones as closed dropdowns and executed ones with their code and output hidden; math rendered.
"""
from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from test_browser import CHROMIUM, FLAGS, SCREENSHOTS

from helpers.serve import free_port

pytestmark = [pytest.mark.slow, pytest.mark.browser, pytest.mark.timeout(600)]

CHAPTER = ROOT / "notebooks" / "01_tensors.ipynb"  # the quickest chapter to run in full
TOKEN = "course-test"


@pytest.fixture(scope="module")
def jupyterlab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    shutil.copy(CHAPTER, root / CHAPTER.name)
    port = free_port()
    log = open(root / "server.log", "w")
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("jupyter")), "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         f"--IdentityProvider.token={TOKEN}", f"--ServerApp.root_dir={root}", "--allow-root",
         "--LabApp.expose_app_in_browser=True", "--LabApp.news_url=None", "--LabApp.check_for_updates_class="
         "jupyterlab.NeverCheckForUpdate"], stdout=log, stderr=subprocess.STDOUT, cwd=root)
    try:
        for _ in range(120):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert server.poll() is None, (root / "server.log").read_text()[-3000:]
                time.sleep(0.5)
        yield f"http://127.0.0.1:{port}", root
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


def test_a_chapter_runs_in_jupyterlab_with_exercises_rendered_and_solutions_collapsed(jupyterlab, tmp_path):
    from playwright.sync_api import sync_playwright

    base, root = jupyterlab
    source = json.loads(CHAPTER.read_text())["cells"]
    exercises = sum("".join(c["source"]).count("{exercise}") for c in source if c["cell_type"] == "markdown")
    gated_code = sum(1 for c in source if c["cell_type"] == "code"
                     and c.get("metadata", {}).get("jupyter", {}).get("source_hidden"))
    with sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(tmp_path / "profile"), headless=True,
                                                       executable_path=CHROMIUM, args=FLAGS,
                                                       viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.goto(f"{base}/lab/tree/{CHAPTER.name}?token={TOKEN}", wait_until="load")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=120_000)
        page.wait_for_function("() => window.jupyterapp && window.jupyterapp.shell.currentWidget"
                               " && window.jupyterapp.shell.currentWidget.sessionContext.session", timeout=120_000)
        # Run all cells; the command's promise resolves when the last cell has finished.
        page.evaluate("() => window.jupyterapp.commands.execute('notebook:run-all-cells')")
        page.wait_for_function(
            "() => { const nb = window.jupyterapp.shell.currentWidget.content;"
            " return nb.widgets.filter(w => w.model.type === 'code' && w.model.sharedModel.source.trim())"
            ".every(w => w.model.executionCount !== null) }", timeout=600_000, polling=1000)
        errors = page.evaluate(
            "() => window.jupyterapp.shell.currentWidget.content.widgets.filter(w => w.model.type === 'code')"
            ".flatMap(w => w.model.outputs.toJSON()).filter(o => o.output_type === 'error')"
            ".map(o => o.ename + ': ' + o.evalue)")
        assert not errors, f"error outputs in JupyterLab: {errors}"
        notebook = page.locator(".jp-Notebook")
        rendered = " ".join(page.locator(".jp-MarkdownOutput").all_inner_texts())
        assert ":label:" not in rendered and "{exercise}" not in rendered and ":class:" not in rendered, \
            "MyST directives shown raw: is jupyterlab-myst installed and enabled?"
        assert notebook.locator("aside.myst-exercise").count() >= exercises, "exercises are not rendered"
        dropdowns = notebook.locator("details.myst-exercise")
        assert dropdowns.count() >= exercises, "every solution is a dropdown"
        assert not page.evaluate("() => [...document.querySelectorAll('details.myst-exercise')].some(d => d.open)"), \
            "solutions must start collapsed"
        assert notebook.locator(".jp-InputPlaceholder").count() >= gated_code, "executed solutions start collapsed"
        assert notebook.locator(".katex, mjx-container").count() >= 1, "math is not rendered"
        assert "$\\" not in rendered and "\\frac" not in rendered, "raw TeX in the rendered markdown"
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        notebook.locator("aside.myst-exercise").last.scroll_into_view_if_needed()
        page.screenshot(path=str(SCREENSHOTS / "jupyterlab_01_tensors.png"))
        context.close()
