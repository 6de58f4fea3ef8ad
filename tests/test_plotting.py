import math

import matplotlib.pyplot as plt
import torch

import helpers


def history(with_acc=True):
    h = helpers.History()
    for i in range(3):
        h.train_loss.append(1.0 / (i + 1))
        h.val_loss.append(1.2 / (i + 1))
        h.train_acc.append(0.5 + 0.1 * i if with_acc else math.nan)
        h.val_acc.append(0.45 + 0.1 * i if with_acc else math.nan)
    return h


def test_plot_history_draws_loss_and_accuracy():
    axes = helpers.plot_history(history())
    assert len(axes) == 2
    assert [len(a.lines) for a in axes] == [2, 2]
    assert list(axes[1].lines[0].get_ydata()) == [0.5, 0.6, 0.7]
    plt.close("all")


def test_plot_history_without_accuracy_draws_one_panel():
    axes = helpers.plot_history(history(with_acc=False))
    assert len(axes) == 1 and axes[0].get_ylabel() == "loss"
    plt.close("all")


def test_plot_history_on_given_axes():
    _, ax = plt.subplots()
    axes = helpers.plot_history(history(), ax=ax)
    assert axes[0] is ax and len(ax.lines) == 2
    plt.close("all")


def test_show_images_grid_titles_and_mistakes():
    images = torch.rand(10, 1, 28, 28)
    axes = helpers.show_images(images, labels=list(range(10)), preds=[0] * 10, ncols=5)
    assert axes.shape == (2, 5)
    assert axes[0, 0].get_title() == "0 →0" and axes[0, 1].get_title() == "1 →0"
    assert axes[0, 1].title.get_color() == "crimson" and axes[0, 0].title.get_color() == "black"
    assert axes[0, 0].images[0].get_array().shape == (28, 28)
    plt.close("all")
