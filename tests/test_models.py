"""The shared models: the CNN chapter's small CNN and LeNet, defined once for every chapter and benchmark."""
import pytest
import torch
import torch.nn.functional as F

import helpers


def test_small_cnn_shapes_and_size():
    model = helpers.small_cnn()
    assert sum(p.numel() for p in model.parameters()) == 18_426  # the figure the CNN chapter states
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert list(dict(model.named_children())) == ["features", "head"]


def test_small_cnn_state_dict_names_are_the_checkpoint_format():
    """Saved checkpoints (chapters 9 and 10) are keyed by these names: renaming a layer breaks them."""
    block = ["0.weight", "1.weight", "1.bias", "1.running_mean", "1.running_var", "1.num_batches_tracked"]
    expected = [f"features.{i}.{name}" for i in (0, 2) for name in block] + ["head.1.weight", "head.1.bias"]
    assert list(helpers.small_cnn().state_dict()) == expected


def small_cnn_by_hand(params: dict, x: torch.Tensor) -> torch.Tensor:
    """The oracle: the small CNN's eval-mode forward written with torch.nn.functional from its state_dict."""
    for i in (0, 2):
        p = {k.removeprefix(f"features.{i}."): v for k, v in params.items() if k.startswith(f"features.{i}.")}
        x = F.conv2d(x, p["0.weight"])                                    # 5x5, no padding, no bias
        x = F.batch_norm(x, p["1.running_mean"], p["1.running_var"], p["1.weight"], p["1.bias"], eps=1e-5)
        x = F.max_pool2d(F.relu(x), 2)               # (N, 16, 12, 12), then (N, 32, 4, 4)
    return F.linear(x.flatten(1), params["head.1.weight"], params["head.1.bias"])  # dropout is off in eval


def test_small_cnn_computes_what_the_chapter_writes_by_hand():
    torch.manual_seed(0)
    model = helpers.small_cnn()
    with torch.no_grad():  # non-trivial BatchNorm statistics, so running stats and affine both matter
        for name, buffer in model.named_buffers():
            if name.endswith(("running_mean", "running_var")):
                buffer.copy_(torch.rand_like(buffer) + (0.5 if name.endswith("var") else -0.5))
        for name, param in model.named_parameters():
            if "features" in name and name.endswith(("1.weight", "1.bias")):
                param.copy_(torch.randn_like(param))
    x = torch.randn(4, 1, 28, 28)
    with torch.no_grad():
        expected = small_cnn_by_hand(model.state_dict(), x)
        assert torch.allclose(model.eval()(x), expected, atol=1e-5)


def test_a_checkpoint_of_another_width_does_not_load(tmp_path):
    path = helpers.save_checkpoint(tmp_path / "cnn.pt", helpers.small_cnn(width=16), epoch=1)
    with pytest.raises(ValueError, match="(?s)does not fit this model.*size mismatch for features.0.0.weight"):
        helpers.load_checkpoint(path, helpers.small_cnn(width=8))


def test_small_cnn_width_and_classes():
    model = helpers.small_cnn(num_classes=5, width=8)
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 5)


@pytest.mark.parametrize("kwargs, message", [(dict(width=0), "width"), (dict(num_classes=0), "num_classes"),
                                             (dict(p_drop=1.0), "p_drop")])
def test_small_cnn_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        helpers.small_cnn(**kwargs)


def test_lenet_shapes_and_size():
    model = helpers.lenet()
    assert sum(p.numel() for p in model.parameters()) == 61_706  # the figure the CNN chapter states
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
