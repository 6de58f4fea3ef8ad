"""helpers.check_params: a bad chapter parameter stops with one message naming it; good values pass."""
import pytest
import torch

import helpers
from helpers import Choice, Device, Float, Int, ParameterError, check_params

RULES = dict(dataset=Choice("embedded", "full"), epochs=Int(1, 100), lr=Float(1e-5, 1.0),
             seed=Int(0), device=Device(), max_batches=Int(1, none=True))
GOOD = dict(dataset="embedded", epochs=12, lr=0.01, seed=0, device=None, max_batches=None)


def test_good_values_pass():
    check_params(GOOD, **RULES)
    check_params({**GOOD, "device": "cuda:1", "max_batches": 3, "lr": 1, "epochs": 100}, **RULES)
    check_params({**GOOD, "device": torch.device("cpu")}, **RULES)


@pytest.mark.parametrize("name, value, expected", [
    ("epochs", 0, "epochs = 0 is not allowed: expected an integer from 1 to 100"),
    ("epochs", 2.5, "epochs = 2.5 is not allowed"),
    ("epochs", True, "epochs = True is not allowed"),
    ("epochs", "12", "epochs = '12' is not allowed"),
    ("lr", 5.0, "lr = 5.0 is not allowed: expected a number from 1e-05 to 1"),
    ("lr", float("nan"), "lr = nan is not allowed"),
    ("dataset", "mnist", "dataset = 'mnist' is not allowed: expected one of 'embedded', 'full'"),
    ("seed", -1, "seed = -1 is not allowed: expected an integer >= 0"),
    ("device", "gpu", "device = 'gpu' is not allowed"),
    ("max_batches", 0, "max_batches = 0 is not allowed: expected an integer >= 1 or None"),
])
def test_a_bad_value_names_the_parameter_the_value_and_the_range(name, value, expected):
    with pytest.raises(ParameterError) as err:
        check_params({**GOOD, name: value}, **RULES)
    assert expected in str(err.value) and "papermill" in str(err.value)
    assert isinstance(err.value, ValueError)


def test_every_problem_is_reported_at_once_and_a_missing_parameter_is_named():
    with pytest.raises(ParameterError) as err:
        check_params({"epochs": 0}, epochs=Int(1), seed=Int(0))
    assert "epochs = 0" in str(err.value) and "seed is not defined" in str(err.value)


def test_jupyter_shows_one_line_not_a_traceback():
    err = ParameterError("epochs = 0 is not allowed: expected an integer >= 1")
    assert err._render_traceback_() == ["ParameterError: epochs = 0 is not allowed: expected an integer >= 1"]


def test_the_rules_are_exported_where_chapters_find_them():
    for name in ("check_params", "Int", "Float", "Choice", "Device", "ParameterError"):
        assert getattr(helpers, name) is getattr(helpers.params, name), f"helpers.{name} is not params.{name}"
        assert name in helpers.__all__
    # and through the package they behave: a rule names what it expects, check_params raises
    assert helpers.Int(1, 3).check(2) is None and helpers.Int(1, 3).check(4) == "an integer from 1 to 3"
    with pytest.raises(helpers.ParameterError, match="epochs = 0 is not allowed"):
        helpers.check_params({"epochs": 0}, epochs=helpers.Int(1))
