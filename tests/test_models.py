"""The shared models: the CNN chapter's small CNN and LeNet, defined once for every chapter and benchmark."""
import pytest
import torch

import helpers


def test_small_cnn_shapes_and_size():
    model = helpers.small_cnn()
    assert sum(p.numel() for p in model.parameters()) == 18_426  # the figure the CNN chapter states
    assert model(torch.zeros(3, 1, 28, 28)).shape == (3, 10)
    assert list(dict(model.named_children())) == ["features", "head"]


def test_small_cnn_state_dict_is_stable_across_instances():
    """A checkpoint of one instance loads into another: the layer names are part of the format."""
    torch.manual_seed(0)
    a = helpers.small_cnn().eval()
    b = helpers.small_cnn(width=16).eval()
    b.load_state_dict(a.state_dict())
    x = torch.randn(2, 1, 28, 28)
    assert torch.equal(a(x), b(x))


def test_small_cnn_width_and_classes():
    model = helpers.small_cnn(num_classes=5, width=8)
    assert model(torch.zeros(1, 1, 28, 28)).shape == (1, 5)


@pytest.mark.parametrize("kwargs, message", [(dict(width=0), "width"), (dict(num_classes=0), "num_classes"),
                                             (dict(p_drop=1.0), "p_drop")])
def test_small_cnn_refuses_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        helpers.small_cnn(**kwargs)


def test_lenet_shapes():
    assert helpers.lenet()(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
