"""How sure is a number? One way for every chapter to state the uncertainty of an accuracy.

An accuracy measured on ``n`` test examples is a binomial proportion: its standard error is
``sqrt(acc * (1 - acc) / n)``. Two models scored on the *same* examples are compared with
McNemar's exact test, which looks only at the examples exactly one of them gets right.
"""
from __future__ import annotations

import math
import numbers

import numpy as np
import torch


def accuracy_se(acc: float, n: int) -> float:
    """Return the binomial standard error ``sqrt(acc * (1 - acc) / n)`` of an accuracy on ``n`` examples."""
    if not (isinstance(acc, numbers.Real) and not isinstance(acc, bool) and 0.0 <= acc <= 1.0):
        raise ValueError(f"acc must be a fraction in [0, 1], got {acc!r}")
    if not (isinstance(n, numbers.Integral) and not isinstance(n, bool) and n >= 1):
        raise ValueError(f"n must be the number of examples, an int >= 1, got {n!r}")
    return math.sqrt(acc * (1.0 - acc) / n)


def format_acc(acc: float, n: int) -> str:
    """Return ``"0.984 ± 0.004 (± 1 s.e., n = 1,000)"``: the accuracy with its standard error."""
    return f"{acc:.3f} ± {accuracy_se(acc, n):.3f} (± 1 s.e., n = {n:,})"


def mean_sd(values) -> tuple[float, float]:
    """Return the mean and the sample standard deviation (ddof=1) of ``values`` (say, one accuracy per seed).

    Fewer than two values is an error: one run says nothing about how much runs vary.
    """
    array = np.asarray(values.detach().cpu() if isinstance(values, torch.Tensor) else values, dtype=float)
    if array.ndim != 1 or len(array) < 2:
        raise ValueError(f"mean_sd needs at least 2 values in a flat list (one per run), got {array.size} "
                         f"in shape {array.shape}; the spread of a single run is unknown")
    return float(array.mean()), float(array.std(ddof=1))


def _as_bool_array(correct, name: str) -> np.ndarray:
    """``correct`` (a tensor, array or list of per-example right/wrong) as a 1-D numpy bool array."""
    array = np.asarray(correct.detach().cpu() if isinstance(correct, torch.Tensor) else correct)
    if array.ndim != 1 or len(array) == 0:
        raise ValueError(f"{name} must be a non-empty 1-D list of per-example results, got shape {array.shape}")
    if array.dtype != np.bool_:
        raise ValueError(f"{name} must be booleans, one per example (True = right), got dtype {array.dtype}; "
                         "build it as (logits.argmax(1) == y)")
    return array


def _check_pair(correct_a, correct_b) -> tuple[np.ndarray, np.ndarray]:
    a, b = _as_bool_array(correct_a, "correct_a"), _as_bool_array(correct_b, "correct_b")
    if len(a) != len(b):
        raise ValueError(f"correct_a has {len(a)} examples but correct_b has {len(b)}; McNemar's test "
                         "compares two models on the same examples, in the same order")
    return a, b


def mcnemar(correct_a, correct_b) -> dict:
    """Return ``{"b", "c", "p"}``: A right and B wrong (b), A wrong and B right (c), exact two-sided p-value.

    Under "both models are equally good" each of the b + c disagreements goes either way with
    probability 1/2, so p = 2 * P(X <= min(b, c)) for X ~ Binomial(b + c, 1/2), at most 1
    (and 1.0 when the models never disagree).
    """
    a, b_ = _check_pair(correct_a, correct_b)
    b, c = int((a & ~b_).sum()), int((~a & b_).sum())
    n, k = b + c, min(b, c)
    # P(X <= k) with exact integers: sum of C(n, i) for i <= k, over 2**n
    term, tail = 1, 1  # C(n, 0)
    for i in range(k):
        term = term * (n - i) // (i + 1)  # C(n, i + 1)
        tail += term
    return {"b": b, "c": c, "p": min(1.0, 2 * tail / 2**n)}


def _format_p(p: float) -> str:
    """``"p = 0.42"``, ``"p = 0.012"``, ``"p < 0.001"``; never rounds a p below 0.05 up to 0.05."""
    if p < 0.001:
        return "p < 0.001"
    text = f"{p:.2g}"
    return "p < 0.05" if p < 0.05 and float(text) >= 0.05 else f"p = {text}"


def compare(correct_a, correct_b, names: tuple[str, str] = ("A", "B")) -> str:
    """Return one sentence comparing two models on the same examples, with each accuracy and its standard error.

    It says "A beats B" only when McNemar's p < 0.05; otherwise the two are "about the same".
    """
    if not (isinstance(names, (tuple, list)) and len(names) == 2 and all(isinstance(s, str) for s in names)):
        raise ValueError(f"names must be two strings, like ('MLP', 'CNN'), got {names!r}")
    a, b = _check_pair(correct_a, correct_b)
    result, n = mcnemar(a, b), len(a)
    name_a, name_b = names
    if result["p"] < 0.05:
        winner, loser = (name_a, name_b) if result["b"] > result["c"] else (name_b, name_a)
        verdict = f"{winner} beats {loser} (McNemar {_format_p(result['p'])})"
    else:
        verdict = f"{name_a} and {name_b} are about the same (McNemar {_format_p(result['p'])})"
    acc_a, acc_b = float(a.mean()), float(b.mean())
    return (f"{verdict}:\n  {name_a} {acc_a:.3f} ± {accuracy_se(acc_a, n):.3f}, "
            f"{name_b} {acc_b:.3f} ± {accuracy_se(acc_b, n):.3f} (± 1 s.e., n = {n:,})")
