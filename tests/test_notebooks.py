"""Structure every chapter must have (nbval itself re-executes them: see pyproject's addopts)."""
from __future__ import annotations

import ast
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
ALL_NOTEBOOKS = CHAPTERS + sorted((ROOT / "book").glob("*.ipynb"))
MNIST_USERS = ("mnist_loaders", "mnist_datasets", "load_mnist_arrays")


def cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def tags(cell: dict) -> list[str]:
    return cell.get("metadata", {}).get("tags", [])


def test_there_are_chapters():
    assert len(CHAPTERS) >= 2


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
    assert 'find_spec("helpers") is None' in reference, "install only when helpers is missing"
    assert '"torch' not in reference, "never (re)install torch: Colab's own build must stay"


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
    assert markdown.count("{exercise}") >= 2 and markdown.count("{solution}") == markdown.count("{exercise}")
    assert ":class: dropdown" in markdown


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


def test_chapters_are_all_in_the_table_of_contents():
    toc = (ROOT / "_toc.yml").read_text()
    for path in ALL_NOTEBOOKS:
        assert f"{path.parent.name}/{path.stem}" in toc
