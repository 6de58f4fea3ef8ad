"""The course's list of notebooks and its lowest supported releases, each stated in one place.

Every script and test reads them from here: the chapters come from `_toc.yml` (reading order), the
lowest torch/torchvision from the `dependencies` of `pyproject.toml`.

    import course                       # scripts/ is on sys.path for tests, benchmarks and scripts
    course.chapters()                   # [.../notebooks/01_tensors.ipynb, ...]
    course.notebooks()                  # the chapters and the book's notebook pages (pitfalls)
    course.lowest_releases()            # {"torch": "2.7.0", "torchvision": "0.22.0"}
    python3 scripts/course.py lock-sha  # what requirements.lock was generated from (scripts/lock.sh)
"""
from __future__ import annotations

import hashlib
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHAPTER_NAME = re.compile(r"^\d\d_")
# seconds a notebook may take to execute at its default parameters on a 2-core CPU, solutions included
BUDGET_SECONDS = {"08_attention": 120, "09_training_fast": 90}
DEFAULT_BUDGET_SECONDS = 60
# parameters that run each notebook in seconds (papermill tests, assignments graded in CI)
SMOKE = {
    "01_tensors": dict(),
    "02_autograd": dict(steps=20),
    "03_data": dict(epochs=1, max_batches=3),
    "04_mlp": dict(epochs=1, max_batches=3),
    "05_cnn": dict(epochs=1, short_epochs=1, pretrain_epochs=1, finetune_epochs=1, ig_steps=2, ablation_epochs=1,
                   max_batches=3),
    "06_rnn": dict(epochs=1, max_batches=3, forecast_epochs=2, window=10, horizon=5),
    "07_autoencoder": dict(epochs=1, vae_epochs=1, max_batches=3, vae_latent_dim=3, noise_std=0.3),
    "08_attention": dict(epochs=1, cnn_epochs=1, sweep_epochs=1, max_batches=3, gpt_steps=5, seq_steps=5),
    "09_training_fast": dict(epochs=1, max_batches=3, n_seeds=1, ddp_epochs=1, ddp_train_examples=256),
    "10_deploy": dict(epochs=1, max_batches=3, repeats=20),
    "pitfalls": dict(epochs=1, batch_size=31),
}


def budget_seconds(path: Path) -> int:
    """The execution-time budget of a notebook (CONTRIBUTING.md, Budgets)."""
    return BUDGET_SECONDS.get(path.stem, DEFAULT_BUDGET_SECONDS)


def toc_files() -> list[str]:
    """Every page of `_toc.yml` in reading order, as written there (`notebooks/01_tensors`)."""
    import yaml  # in the course's venv; the lock script runs this module with a bare python3

    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]
    for part in toc.get("parts", []):
        files += [entry["file"] for entry in part.get("chapters", [])]
    return files


def notebooks() -> list[Path]:
    """Every notebook the book renders, in reading order: the chapters and notebook pages such as pitfalls."""
    return [ROOT / f"{f}.ipynb" for f in toc_files() if (ROOT / f"{f}.ipynb").exists()]


def chapters() -> list[Path]:
    """The numbered chapter notebooks (`notebooks/NN_name.ipynb`), in reading order."""
    return [p for p in notebooks() if p.parent.name == "notebooks" and CHAPTER_NAME.match(p.name)]


def lowest_releases() -> dict[str, str]:
    """torch and torchvision at the lowest release pyproject.toml's dependencies admit ("2.7" -> "2.7.0")."""
    text = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    found = {}
    for name in ("torch", "torchvision"):
        m = re.search(rf'^\s*"{name}>=([\d.]+)",', text, flags=re.M)
        if not m:
            raise ValueError(f"pyproject.toml's dependencies must give {name} as a lower bound (\"{name}>=X.Y\",)")
        version = m.group(1)
        found[name] = version if version.count(".") == 2 else version + ".0"
    return found


def lock_inputs_sha256() -> str:
    """sha256 of what requirements.lock is resolved from: requirements.txt, constraints.txt and the
    [project] table of pyproject.toml (its dependencies and extras; the tool settings do not count)."""
    pyproject = (ROOT / "pyproject.toml").read_text(encoding="utf-8")
    project = re.search(r"^\[project\]$.*?(?=^\[tool\.)", pyproject, flags=re.M | re.S)
    if not project:
        raise ValueError("pyproject.toml: expected a [project] table followed by [tool.*] tables")
    text = "\n".join([(ROOT / "requirements.txt").read_text(encoding="utf-8"),
                      (ROOT / "constraints.txt").read_text(encoding="utf-8"), project.group(0)])
    return hashlib.sha256(text.encode()).hexdigest()


if __name__ == "__main__":
    import sys

    if sys.argv[1:] != ["lock-sha"]:
        raise SystemExit("usage: python3 scripts/course.py lock-sha")
    print(lock_inputs_sha256())
