import random

import numpy as np
import pytest
import torch

import helpers


def test_get_device_prefers_cuda_then_mps_then_cpu():
    expected = "cuda" if torch.cuda.is_available() else (
        "mps" if torch.backends.mps.is_available() else "cpu")
    assert helpers.get_device().type == expected
    assert helpers.get_device("cpu") == torch.device("cpu")
    assert helpers.get_device("auto").type == expected


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
