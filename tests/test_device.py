import random

import numpy as np
import pytest
import torch

import helpers


@pytest.mark.parametrize("cuda, mps, expected", [
    (True, True, "cuda"), (True, False, "cuda"), (False, True, "mps"), (False, False, "cpu"),
])
def test_get_device_prefers_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, expected):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    assert helpers.get_device() == torch.device(expected)
    assert helpers.get_device("auto") == torch.device(expected)
    assert helpers.get_device("cpu") == torch.device("cpu")  # pinned: whatever else is there


def test_a_pinned_device_that_is_there_is_returned_as_asked(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: True)
    assert helpers.get_device("cuda") == torch.device("cuda")
    assert helpers.get_device("cuda:1") == torch.device("cuda", 1)
    assert helpers.get_device(torch.device("cuda:0")) == torch.device("cuda", 0)
    assert helpers.get_device("mps") == torch.device("mps")


@pytest.mark.parametrize("preferred", ["cuda", "cuda:0", "mps"])
def test_a_pinned_device_that_is_not_there_is_an_error_not_a_fallback(monkeypatch, preferred):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match=f"'{preferred}' was asked for, but .* is not available here"):
        helpers.get_device(preferred)


def test_set_seed_makes_python_numpy_and_torch_repeat():
    def draw():
        return random.random(), float(np.random.rand()), torch.rand(3).tolist()

    helpers.set_seed(7)
    first = draw()
    helpers.set_seed(7)
    assert draw() == first
    helpers.set_seed(8)
    assert draw() != first


def test_set_seed_returns_a_generator_tied_to_the_seed():
    a = torch.rand(4, generator=helpers.set_seed(3))
    b = torch.rand(4, generator=helpers.set_seed(3))
    assert torch.equal(a, b)


def test_set_seed_deterministic_switches_torch_mode():
    try:
        helpers.set_seed(0, deterministic=True)
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        helpers.set_seed(0)
    assert not torch.are_deterministic_algorithms_enabled()
