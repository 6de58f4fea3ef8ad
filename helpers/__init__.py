"""helpers (pytorch-course-helpers): the small package the course's notebooks share.

Each chapter first writes an idea by hand; from then on it calls the helper here,
so every line a helper hides has already been seen in the open.
"""
from . import grading
from .checkpoint import load_checkpoint, save_checkpoint
from .data import (
    DATASETS,
    MNIST_MEAN,
    MNIST_STD,
    DatasetUnavailableError,
    TensorLoader,
    data_dir,
    load_mnist_arrays,
    mnist_datasets,
    mnist_loaders,
    to_tensor,
)
from .device import get_device, set_seed
from .doctor import doctor
from .extras import install_extras
from .models import conv_bn_relu, lenet, small_cnn
from .params import Choice, Device, Float, Int, ParameterError, check_params
from .plotting import plot_history, show_images
from .stats import accuracy_se, compare, format_acc, mcnemar, mean_sd
from .training import History, evaluate, fit, format_epoch, train_epoch

__version__ = "0.1.0"
__all__ = [
    "Choice", "Device", "Float", "Int", "ParameterError", "check_params", "conv_bn_relu", "install_extras",
    "lenet", "small_cnn",
    "DATASETS", "MNIST_MEAN", "MNIST_STD", "DatasetUnavailableError", "History", "TensorLoader", "data_dir",
    "doctor", "evaluate", "fit",
    "format_epoch", "get_device", "load_checkpoint", "load_mnist_arrays", "mnist_datasets", "mnist_loaders",
    "plot_history", "save_checkpoint", "set_seed", "show_images", "to_tensor", "train_epoch",
    "accuracy_se", "compare", "format_acc", "mcnemar", "mean_sd", "grading",
]
