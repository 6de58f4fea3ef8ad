"""The learner's side of the graded assignments (scripts/assignment.py is the instructor's side).

A graded exercise ends with an *answer cell*: `record(question, name=value, ...)` keeps the answer,
then public checks (`expect_shape`, `expect_close`, ...) say what is wrong with its form without
giving the answer away. When the grader runs a submission it sets COURSE_ANSWERS_DIR, and `record`
also writes the answer there **as data** (JSON, plus a tensors file read back with
`torch.load(weights_only=True)`): the hidden tests run later, in another process, on that data
only, so nothing a submission does in its own kernel can change how it is graded.

In a chapter (not an assignment), a hidden test cell is `@hidden_test(question, points=...)` over a
function `(answer, reference) -> None` that raises AssertionError when the answer is wrong: there it
runs at once on what the chapter's own solution recorded, so `pytest --nbval` proves the reference
solution passes every hidden test. The grader collects the same functions instead.
"""
from __future__ import annotations

import json
import math
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

ANSWERS_ENV = "COURSE_ANSWERS_DIR"
MAX_ANSWER_BYTES = 20_000_000  # one question's answer, tensors included
QUESTION = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")

RECORDED: dict[str, dict[str, Any]] = {}  # what record() kept in this kernel
COLLECTING: list[tuple[str, float, Callable]] | None = None  # set by the grader to collect tests


class AnswerError(AssertionError):
    """An answer whose form is wrong: the message says what was expected and what came."""


def _is_placeholder(value: Any) -> bool:
    return value is Ellipsis


def _to_data(value: Any, path: str, tensors: dict[str, torch.Tensor]) -> Any:
    """The answer as JSON-able data; tensors (and NumPy arrays) go to `tensors`, by a key."""
    if _is_placeholder(value):
        raise AnswerError(f"{path} is still `...`: replace it with your answer")
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else {"__float__": repr(value)}
    if type(value).__module__ == "numpy":
        value = torch.as_tensor(value)
    if isinstance(value, torch.Tensor):
        key = f"t{len(tensors)}"
        tensors[key] = value.detach().to("cpu", copy=True).contiguous()
        return {"__tensor__": key}
    if isinstance(value, (list, tuple)):
        return [_to_data(v, f"{path}[{i}]", tensors) for i, v in enumerate(value)]
    if isinstance(value, dict):
        if not all(isinstance(k, str) for k in value):
            raise AnswerError(f"{path}: a dict's keys must be strings, got {list(value)[:5]}")
        return {"__dict__": {k: _to_data(v, f"{path}[{k!r}]", tensors) for k, v in value.items()}}
    if callable(value):
        raise AnswerError(f"{path} is a function: record what it returns on the inputs the check "
                          "cell gives, not the function")
    raise AnswerError(f"{path} is a {type(value).__name__}: an answer is made of numbers, strings, "
                      "lists, dicts and tensors (for a model, record its state_dict())")


def _from_data(data: Any, tensors: dict[str, torch.Tensor]) -> Any:
    if isinstance(data, list):
        return [_from_data(v, tensors) for v in data]
    if isinstance(data, dict):
        if "__tensor__" in data:
            return tensors[data["__tensor__"]]
        if "__float__" in data:
            return float(data["__float__"])
        return {k: _from_data(v, tensors) for k, v in data["__dict__"].items()}
    return data


def record(question: str, /, **values: Any) -> dict[str, Any]:
    """Keeps this question's answer (and, when graded, saves it as data); returns the answer."""
    if not QUESTION.match(question):
        raise ValueError(f"question {question!r}: use lower-case letters, digits and '-'")
    tensors: dict[str, torch.Tensor] = {}
    data = {"__dict__": {name: _to_data(value, name, tensors) for name, value in values.items()}}
    answer = _from_data(data, {k: t.clone() for k, t in tensors.items()})
    RECORDED[question] = answer
    folder = os.environ.get(ANSWERS_ENV)
    if folder:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        torch.save(tensors, folder / f"{question}.pt")
        (folder / f"{question}.json").write_text(json.dumps(data), encoding="utf-8")
        size = sum((folder / f"{question}{ext}").stat().st_size for ext in (".pt", ".json"))
        if size > MAX_ANSWER_BYTES:
            for ext in (".pt", ".json"):
                (folder / f"{question}{ext}").unlink()
            raise AnswerError(f"{question}: the answer takes {size:,} bytes, more than the "
                              f"{MAX_ANSWER_BYTES:,} allowed: record results, not data sets")
    return answer


def load_answer(folder: Path, question: str) -> dict[str, Any] | None:
    """An answer saved by record(), read back as data only (no pickle); None when absent."""
    folder = Path(folder)
    js, pt = folder / f"{question}.json", folder / f"{question}.pt"
    # a submission owns this folder: a symbolic link could point the grader at the reference answers
    for path in (folder, js, pt):
        if path.is_symlink():
            raise AnswerError(f"{path.name} is a symbolic link: answers are plain files")
    if not js.is_file() or not pt.is_file():
        return None
    if js.stat().st_size + pt.stat().st_size > MAX_ANSWER_BYTES:
        raise AnswerError(f"{question}: the saved answer is larger than {MAX_ANSWER_BYTES:,} bytes")
    tensors = torch.load(pt, map_location="cpu", weights_only=True)
    if not (isinstance(tensors, dict) and all(isinstance(t, torch.Tensor) for t in tensors.values())):
        raise AnswerError(f"{question}: the tensors file holds something other than tensors")
    return _from_data(json.loads(js.read_text(encoding="utf-8")), tensors)


def hidden_test(question: str, *, points: float) -> Callable[[Callable], Callable]:
    """Marks `test(answer, reference)` as the hidden test of `question`, worth `points`.

    In a chapter it runs at once on the answer the chapter's solution recorded (as its own
    reference); under the grader it is collected and run on a submission's saved answer."""
    def decorate(test: Callable) -> Callable:
        if COLLECTING is not None:
            COLLECTING.append((question, float(points), test))
            return test
        if question not in RECORDED:
            raise AssertionError(f"hidden test {question!r}: the solution above recorded no answer")
        test(RECORDED[question], RECORDED[question])
        return test
    return decorate


# Public checks: they say what is wrong with an answer's form, never what the answer is.

def expect_tensor(value: Any, name: str) -> torch.Tensor:
    if _is_placeholder(value):
        raise AnswerError(f"{name} is still `...`: replace it with your answer")
    if not isinstance(value, torch.Tensor):
        raise AnswerError(f"expected {name} to be a tensor, got {type(value).__name__}")
    return value


def expect_shape(value: Any, shape: tuple[int | None, ...], name: str) -> torch.Tensor:
    """`shape` may hold None for 'any size' (a batch dimension): (None, 10) is (N, 10)."""
    value = expect_tensor(value, name)
    want = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
    got = "(" + ", ".join(str(s) for s in value.shape) + ")"
    if value.dim() != len(shape) or any(s is not None and s != v for s, v in zip(shape, value.shape)):
        raise AnswerError(f"expected {name} to have shape {want}, got {got}")
    return value


def expect_dtype(value: Any, dtype: torch.dtype, name: str) -> torch.Tensor:
    value = expect_tensor(value, name)
    if value.dtype != dtype:
        raise AnswerError(f"expected {name} to be {dtype}, got {value.dtype}")
    return value


def expect_list(value: Any, length: int, name: str) -> list:
    """A list (or tuple) of `length` items."""
    if _is_placeholder(value):
        raise AnswerError(f"{name} is still `...`: replace it with your answer")
    if not isinstance(value, (list, tuple)):
        raise AnswerError(f"expected {name} to be a list, got {type(value).__name__}")
    if len(value) != length:
        raise AnswerError(f"expected {name} to have {length} items, got {len(value)}")
    return list(value)


def expect_number(value: Any, name: str, *, low: float = -math.inf, high: float = math.inf) -> float:
    """A finite number (a Python number or a one-element tensor) in [low, high]."""
    if _is_placeholder(value):
        raise AnswerError(f"{name} is still `...`: replace it with your answer")
    if isinstance(value, torch.Tensor):
        if value.numel() != 1:
            raise AnswerError(f"expected {name} to be one number, got a tensor of shape "
                              f"{tuple(value.shape)} (use .item() on a one-element tensor)")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AnswerError(f"expected {name} to be a number, got {type(value).__name__}")
    if not math.isfinite(value) or not low <= value <= high:
        raise AnswerError(f"expected {name} to be a finite number in [{low}, {high}], got {value}")
    return float(value)
