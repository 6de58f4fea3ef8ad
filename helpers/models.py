"""Models the chapters share, each written out by hand in its chapter first.

``small_cnn`` is the CNN chapter's small modern CNN (section 5.6): the training-fast chapter speeds
it up, the deploying chapter exports it and the benchmarks time it, so all of them use this one
definition. Its layer names (``features``, ``head``) are part of its state_dict: keep them.
"""
from __future__ import annotations

from collections import OrderedDict

from torch import nn


def conv_bn_relu(c_in: int, c_out: int, kernel_size: int) -> nn.Sequential:
    """Convolution (no bias: BatchNorm's beta is the bias), BatchNorm, ReLU."""
    return nn.Sequential(nn.Conv2d(c_in, c_out, kernel_size, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


def small_cnn(num_classes: int = 10, width: int = 16, p_drop: float = 0.2) -> nn.Sequential:
    """The CNN chapter's small CNN for (N, 1, 28, 28) images -> (N, num_classes) logits."""
    if not (isinstance(width, int) and width >= 1):
        raise ValueError(f"width must be a positive int (channels of the first block), got {width!r}")
    if not (isinstance(num_classes, int) and num_classes >= 1):
        raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
    if not 0.0 <= p_drop < 1.0:
        raise ValueError(f"p_drop must be a dropout probability in [0, 1), got {p_drop!r}")
    features = nn.Sequential(
        conv_bn_relu(1, width, 5), nn.MaxPool2d(2),              # (N, w, 24, 24) -> (N, w, 12, 12)
        conv_bn_relu(width, 2 * width, 5), nn.MaxPool2d(2),      # (N, 2w, 8, 8)  -> (N, 2w, 4, 4)
        nn.Flatten())                                            # (N, 2w * 16)
    head = nn.Sequential(nn.Dropout(p_drop), nn.Linear(2 * width * 4 * 4, num_classes))
    return nn.Sequential(OrderedDict(features=features, head=head))


def lenet(num_classes: int = 10) -> nn.Sequential:
    """LeNet-5 as in the CNN chapter (section 5.4): (N, 1, 28, 28) -> (N, num_classes) logits."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),  # (N, 6, 28, 28) -> (N, 6, 14, 14)
        nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),            # (N, 16, 10, 10) -> (N, 16, 5, 5)
        nn.Flatten(),                                               # (N, 400)
        nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, num_classes))
