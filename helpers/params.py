"""Checking a chapter's parameters: one clear message for a bad value, before any work is done.

Every chapter calls ``check_params`` in the cell right after its ``parameters`` cell, so a value
set with papermill (``-p epochs 0``) stops the run there, naming the parameter, the value and what
is accepted, instead of failing deep inside a torch call.
"""
from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch


class ParameterError(ValueError):
    """A chapter parameter has a value the chapter cannot use."""

    def _render_traceback_(self) -> list[str]:
        # IPython (Jupyter, papermill, Colab) shows this instead of a traceback: the message is the point,
        # and the frames of this module would only hide it.
        return [f"ParameterError: {self}"]


@dataclass(frozen=True)
class Int:
    """An integer in [lo, hi] (hi=None: no upper bound); ``none=True`` also accepts None."""
    lo: int
    hi: int | None = None
    none: bool = False

    def check(self, value) -> str | None:
        if value is None and self.none:
            return None
        ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if ok and value >= self.lo and (self.hi is None or value <= self.hi):
            return None
        span = f"from {self.lo} to {self.hi}" if self.hi is not None else f">= {self.lo}"
        return f"an integer {span}" + (" or None" if self.none else "")


@dataclass(frozen=True)
class Float:
    """A real number in [lo, hi]; ``none=True`` also accepts None. Integers are accepted (lr=1)."""
    lo: float
    hi: float
    none: bool = False

    def check(self, value) -> str | None:
        if value is None and self.none:
            return None
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
        if ok and self.lo <= value <= self.hi:
            return None
        return f"a number from {self.lo:g} to {self.hi:g}" + (" or None" if self.none else "")


class Choice:
    """One of the given values."""

    def __init__(self, *values):
        self.values = values

    def check(self, value) -> str | None:
        if any(value == v and type(value) is type(v) for v in self.values):
            return None
        return "one of " + ", ".join(repr(v) for v in self.values)


class Device:
    """None (the best available) or a device name torch understands: "cpu", "cuda", "cuda:1", "mps"."""

    def check(self, value) -> str | None:
        if value is None or isinstance(value, torch.device):
            return None
        if isinstance(value, str):
            try:
                torch.device(value)
                return None
            except RuntimeError:
                pass
        return 'None or a device name such as "cpu", "cuda", "cuda:1" or "mps"'


def check_params(values: dict, **rules) -> None:
    """Raise one ParameterError naming every parameter whose value breaks its rule.

    ``values`` is the notebook's ``globals()`` (or any dict); each keyword names a parameter and gives
    its rule: ``Int(1, 100)``, ``Float(1e-5, 1.0)``, ``Choice("embedded", "full")``, ``Device()``.
    """
    problems = []
    for name, rule in rules.items():
        if name not in values:
            problems.append(f"{name} is not defined (is it missing from the parameters cell?)")
            continue
        expected = rule.check(values[name])
        if expected is not None:
            problems.append(f"{name} = {values[name]!r} is not allowed: expected {expected}")
    if problems:
        raise ParameterError("; ".join(problems) + ". Set it in the parameters cell, or pass another value "
                             "with papermill (-p NAME VALUE).")
