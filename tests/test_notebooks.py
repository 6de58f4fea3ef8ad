"""Structure every chapter must have (nbval itself re-executes them: see pyproject's addopts)."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import course
import pytest
import yaml
from conftest import ROOT

CHAPTERS = course.chapters()
ALL_NOTEBOOKS = course.notebooks()
MNIST_USERS = ("mnist_loaders", "mnist_datasets", "load_mnist_arrays")


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def test_the_toc_lists_every_notebook_and_the_ten_chapters_in_order():
    on_disk = sorted((ROOT / "notebooks").glob("*.ipynb")) + sorted((ROOT / "book").glob("*.ipynb"))
    assert sorted(ALL_NOTEBOOKS) == sorted(on_disk), "every notebook must be in _toc.yml (and only those)"
    assert [p.stem[:2] for p in CHAPTERS] == [f"{n:02d}" for n in range(1, 11)], [p.stem for p in CHAPTERS]


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_is_executed_in_order_without_unexpected_errors(path):
    code = [c for c in cells(path) if c["cell_type"] == "code" and source(c).strip()]
    counts = [c["execution_count"] for c in code]
    assert None not in counts, "commit notebooks executed, with outputs"
    assert counts == sorted(counts) and counts[0] == 1, "execute top to bottom in a fresh kernel"
    for c in code:
        # No cell may raise, not even on purpose: papermill fails on any error output and Colab's
        # "Run all" stops there. Show an intentional error with try/except and print it.
        assert not [o for o in c["outputs"] if o["output_type"] == "error"], f"error output in:\n{source(c)[:200]}"
        assert "raises-exception" not in tags(c)


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_is_the_shared_one_and_points_at_the_repository(path):
    reference = source([c for c in cells(CHAPTERS[0]) if c["cell_type"] == "code"][0])
    first_code = [c for c in cells(path) if c["cell_type"] == "code"][0]
    assert source(first_code) == reference, "copy the setup cell from 01_tensors.ipynb unchanged"
    repo_url = yaml.safe_load((ROOT / "_config.yml").read_text())["repository"]["url"]
    assert f'"{repo_url}"' in reference, "the setup cell's REPO_URL must be _config.yml's repository.url"
    assert '"pytorch-course-helpers" not in dists' in reference, \
        "install only when the course's distribution is missing (not when any 'helpers' module is)"
    assert '"torch' not in reference, "never (re)install torch: Colab's own build must stay"
    lowest = course.lowest_releases()["torch"].removesuffix(".0")
    assert f"torch >= {lowest} is kept" in reference, f"the setup cell must name pyproject's bound torch >= {lowest}"


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_parameters_cell_defines_seed_and_device(path):
    params = [c for c in cells(path) if "parameters" in tags(c)]
    assert len(params) == 1, "exactly one cell tagged 'parameters' (papermill)"
    names = {t.id for node in ast.parse(source(params[0])).body if isinstance(node, ast.Assign) for t in node.targets}
    assert {"seed", "device"} <= names


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_chapter_has_title_objectives_prerequisites_time_and_exercises(path):
    nb = cells(path)
    intro = source(nb[0])
    assert re.match(r"# \d+\. ", intro), "first cell: '# N. Title'"
    for word in ("You will learn", "Prerequisites", "Time"):
        assert word in intro
    markdown = "\n".join(source(c) for c in nb if c["cell_type"] == "markdown")
    solutions = markdown.count("{solution}") + markdown.count("{solution-start}")
    assert markdown.count("{exercise}") >= 2 and solutions == markdown.count("{exercise}")
    assert markdown.count(":class: dropdown") >= solutions, "every solution is a collapsed dropdown"


def mnist_calls(path: Path) -> list[tuple[str, str]]:
    code = "\n".join(source(c) for c in cells(path) if c["cell_type"] == "code" and "parameters" not in tags(c))
    return re.findall(r"helpers\.(%s)\(([^)]*)\)" % "|".join(MNIST_USERS), code)


@pytest.mark.parametrize("path", [p for p in CHAPTERS if mnist_calls(p)], ids=lambda p: p.name)
def test_dataset_parameter_is_wired_to_the_data_helpers(path):
    nb = cells(path)
    calls = mnist_calls(path)
    params = source([c for c in nb if "parameters" in tags(c)][0])
    assert re.search(r'^dataset = "embedded"', params, re.M), "default dataset must be the embedded one"
    for name, args in calls:
        assert "dataset" in args, f"helpers.{name}({args}) ignores the dataset parameter"


# ---- the conventions of CONTRIBUTING.md that every notebook follows ---------------------------------

def editions():
    import importlib.util
    spec = importlib.util.spec_from_file_location("notebook_editions", ROOT / "scripts" / "notebook_editions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parameter_names(nb: list[dict]) -> list[str]:
    cell = next(c for c in nb if "parameters" in tags(c))
    return [t.id for node in ast.parse(source(cell)).body if isinstance(node, ast.Assign) for t in node.targets
            if isinstance(t, ast.Name)]


def validation_call(nb: list[dict]) -> ast.Call:
    i = next(i for i, c in enumerate(nb) if "parameters" in tags(c))
    cell = next(c for c in nb[i + 1:] if c["cell_type"] == "code")
    calls = [n for n in ast.walk(ast.parse(source(cell))) if isinstance(n, ast.Call)
             and ast.unparse(n.func) == "helpers.check_params"]
    assert calls, "the cell after the parameters cell must call helpers.check_params(globals(), ...)"
    return calls[0]


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_every_parameter_is_validated_right_after_the_parameters_cell(path):
    nb = cells(path)
    call = validation_call(nb)
    assert call.args and ast.unparse(call.args[0]) == "globals()"
    ruled = [k.arg for k in call.keywords]
    params = parameter_names(nb)
    assert sorted(ruled) == sorted(params), f"rules for {sorted(ruled)} but parameters {sorted(params)}"


def visible_code_cells(nb: list[dict]):
    for c in nb:
        if c["cell_type"] == "code" and not {"remove-cell", "remove-input"} & set(tags(c)):
            yield c


def long_lines(text: str, limit: int = 88) -> list[str]:
    return [line for line in text.splitlines() if len(line) > limit]


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_visible_code_and_printed_lines_fit_the_page(path):
    """About 90 characters fit in a code cell on the site at desktop width: keep to 88 (CONTRIBUTING.md)."""
    nb = cells(path)
    too_long = []
    for c in visible_code_cells(nb):
        too_long += [f"code: {line}" for line in long_lines(source(c))]
        if "remove-output" in tags(c):
            continue
        for o in c.get("outputs", []):
            text = "".join(o.get("text", "")) + "".join(o.get("data", {}).get("text/plain", ""))
            too_long += [f"output: {line}" for line in long_lines(text)]
    for c in nb:
        if c["cell_type"] == "markdown":
            for block in re.findall(r"^```[\w]*\n(.*?)^```", source(c), flags=re.S | re.M):
                too_long += [f"markdown code: {line}" for line in long_lines(block)]
    assert not too_long, f"{len(too_long)} lines over 88 characters, e.g.:\n" + "\n".join(too_long[:8])


MARKDOWN_PAGES = sorted(Path("book").glob("*.md"))


@pytest.mark.parametrize("path", MARKDOWN_PAGES, ids=lambda p: str(p))
def test_code_blocks_of_prose_pages_fit_the_page(path):
    """The same 88 characters for the code blocks of the site's prose pages (the browser test
    measures the rendered page; this finds the line before a build). Directives are not code."""
    blocks = re.findall(r"^```(?!\{)[^\n]*\n(.*?)^```", path.read_text(), flags=re.S | re.M)
    too_long = [line for b in blocks for line in long_lines(b)]
    assert not too_long, f"{len(too_long)} lines over 88 characters in {path}, e.g.:\n" + "\n".join(too_long[:8])


PATH_LIKE = re.compile(r"(^|/)_images/|\.(png|jpe?g|svg)$|^[0-9a-f]{16,}$", re.I)


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_has_text_that_says_what_it_shows(path):
    missing = []
    for i, c in enumerate(cells(path)):
        if c["cell_type"] != "code" or "remove-output" in tags(c) or "remove-cell" in tags(c):
            continue
        if any("image/png" in o.get("data", {}) for o in c.get("outputs", [])):
            alt = c.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt", "")
            if len(alt.split()) < 4 or PATH_LIKE.search(alt.strip()):
                missing.append(f"cell {i}: {source(c)[:60]!r}")
    assert not missing, "figures without alt text (metadata mystnb.image.alt):\n" + "\n".join(missing)


ALLOWED_DIRECTIVES = {"exercise", "solution", "solution-start", "solution-end"}


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_only_directives_that_the_colab_edition_can_render(path):
    """A {literalinclude} (or any other directive) shows as raw text in Jupyter and Colab."""
    for c in cells(path):
        if c["cell_type"] == "markdown":
            used = set(re.findall(r"^\s*(?:`{3,}|:{3,})\{([\w-]+)\}", source(c), flags=re.M))
            assert used <= ALLOWED_DIRECTIVES, f"directive(s) {used - ALLOWED_DIRECTIVES} in: {source(c)[:120]!r}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.name)
def test_solutions_with_code_are_executed_and_start_collapsed(path):
    nb = cells(path)
    inside = editions().solution_cells(nb)  # also checks every solution-start has its solution-end
    labels = re.findall(r":label:\s*([\w-]+)", "\n".join(source(c) for c in nb if c["cell_type"] == "markdown"
                                                         and "{exercise}" in source(c)))
    solved = re.findall(r"\{solution(?:-start)?\}\s*([\w-]+)", "\n".join(
        source(c) for c in nb if c["cell_type"] == "markdown"))
    assert len(labels) >= 2 and sorted(labels) == sorted(solved), (labels, solved)
    for i in inside:
        c = nb[i]
        if c["cell_type"] == "markdown":
            quoted = re.findall(r"^```(?:python|py)\s*$", source(c), flags=re.M)
            assert not quoted, f"a solution quotes code instead of executing it (make it gated): {source(c)[:120]!r}"
        elif c["cell_type"] == "code" and "remove-cell" not in tags(c):
            hidden = c.get("metadata", {}).get("jupyter", {})
            assert hidden.get("source_hidden") and hidden.get("outputs_hidden"), \
                f"executed solution cell must start collapsed in JupyterLab: {source(c)[:80]!r}"


EXTRA_MODULES = {"statsmodels": "timeseries", "captum": "interpret", "onnx": "deploy", "onnxruntime": "deploy",
                 "onnxscript": "deploy", "fastapi": "deploy", "uvicorn": "deploy", "httpx": "deploy"}


@pytest.mark.parametrize("path", ALL_NOTEBOOKS, ids=lambda p: p.name)
def test_packages_beyond_helpers_are_installed_by_the_chapter_itself(path):
    """On Colab only helpers is installed: a chapter that imports ONNX Runtime, Captum... installs its extra."""
    code = [source(c) for c in cells(path) if c["cell_type"] == "code"]
    text = "\n".join(code)
    for module, extra in EXTRA_MODULES.items():
        first = next((i for i, s in enumerate(code) if re.search(rf"^\s*(import|from)\s+{module}\b", s, re.M)), None)
        if first is None:
            continue
        installs = [i for i, s in enumerate(code) if f'helpers.install_extras("{extra}")' in s]
        assert installs and installs[0] <= first, \
            f"{module} is imported without helpers.install_extras(\"{extra}\") first"
        if installs[0] == first:
            cell = code[first]
            imported_at = re.search(rf"^\s*(import|from)\s+{module}\b", cell, re.M).start()
            assert cell.index(f'install_extras("{extra}")') < imported_at
    assert "pip install" not in text.replace(code[0], ""), "install packages with helpers.install_extras, not pip"
