# %% [markdown]
# # 3. Multilayer perceptrons: from logistic regression to a deep MLP
#
# Chapter 1 classified digits by comparing them with average templates; chapter 2 fitted a line by
# gradient descent. This chapter joins the two: a model with learned weights that reads a digit
# as 784 numbers and outputs 10 scores. It starts with the simplest such model, softmax
# (multinomial logistic) regression, adds hidden layers to get a **multilayer perceptron** (MLP),
# and then spends most of its time on what decides whether training works: the loss, the
# activation, the optimiser, overfitting and its cures. The training loop is written by hand once,
# here; from then on the course calls `helpers.fit`, which is the same loop.
#
# **You will learn to**
# - flatten images and write softmax regression, with the math of softmax and cross-entropy;
# - write the training loop by hand: a `train_epoch`/`evaluate` pair with per-example averages;
# - build networks with `nn.Module` and `nn.Sequential`, and count their parameters;
# - feed `CrossEntropyLoss` **logits**, and measure what softmax or log-softmax outputs do to it;
# - use `MSELoss` for regression (and know that `nn.MeanSquaredLoss` does not exist);
# - choose an activation (ReLU, tanh, sigmoid) and an optimiser (SGD, momentum, Adam) by measurement;
# - recognise overfitting on a validation split and cure it with L2 weight decay, an L1 penalty,
#   dropout and early stopping — and see how much each one buys;
# - switch between `train()` and `eval()` modes, and save and load a `state_dict` safely.
#
# **Prerequisites:** [chapter 1](01_tensors.ipynb) (tensors, broadcasting) and
# [chapter 2](02_autograd.ipynb) (autograd, gradient descent). **Time:** about 75 minutes; the
# notebook itself runs in well under a minute on a laptop CPU.

# %%
# SETUP

# %%
import copy
import math
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn

import helpers

# %% [markdown]
# The **parameters**: `epochs`, `batch_size` and `lr` are those of the chapter's final model
# (section 3.12, Adam's learning rate); `batch_size` is used by every experiment. The other
# experiments keep their own short, fixed settings, written where they run. `max_batches` cuts
# the training data to that many batches per epoch, for a quick smoke run.

# %% tags=["parameters"]
dataset = "embedded"  # "embedded": 5,000 real MNIST digits, offline; "full": 60k/10k MNIST (downloads)
epochs = 12           # epochs of the final model (section 3.12)
batch_size = 64
lr = 1e-3             # Adam's learning rate for the final model
seed = 0
device = None         # None: best available; or "cpu", "cuda", "mps"
max_batches = None    # e.g. 2 for a smoke run: keeps max_batches * batch_size training images

# %% tags=["nbval-ignore-output"]
helpers.set_seed(seed)
device = helpers.get_device(device)
print(f"computing on: {device}")

# %% tags=["remove-cell"]
# The claims in the text are measured at these settings; other parameters may change the numbers.
DEFAULTS = dataset == "embedded" and (epochs, batch_size, lr, seed, max_batches) == (12, 64, 1e-3, 0, None)

# %% [markdown]
# ## 3.1 The data: train, validation, test
#
# `helpers.mnist_datasets` returns the 4,000 training and 1,000 test digits as tensors of shape
# `(N, 1, 28, 28)`, normalised to mean 0 and standard deviation 1. Before anything is trained, a
# **validation split** is carved out of the training images: every choice this chapter makes
# (activation, optimiser, regulariser, number of epochs) is judged on it, so that the test set is
# looked at only once, at the very end, and its accuracy is an honest estimate for new digits.
# A choice made by looking at test accuracy would make that number optimistic.

# %%
train_ds, test_ds = helpers.mnist_datasets(dataset)
x_all, y_all = train_ds.tensors                        # (4000, 1, 28, 28), (4000,)
x_test, y_test = (t.to(device) for t in test_ds.tensors)
order = torch.randperm(len(x_all), generator=torch.Generator().manual_seed(seed))
n_val = len(x_all) // 5                                # 20 % for validation
x_val, y_val = x_all[order[:n_val]].to(device), y_all[order[:n_val]].to(device)
x_train, y_train = x_all[order[n_val:]].to(device), y_all[order[n_val:]].to(device)
if max_batches is not None:                            # smoke run: just enough for max_batches batches
    x_train, y_train = x_train[:max_batches * batch_size], y_train[:max_batches * batch_size]
print(f"train {tuple(x_train.shape)}, validation {tuple(x_val.shape)}, test {tuple(x_test.shape)}")
print("training images per digit:", torch.bincount(y_train, minlength=10).tolist())

# %% tags=["remove-cell"]
assert x_train.shape[1:] == (1, 28, 28) and len(x_train) + len(x_val) <= len(x_all)
if dataset == "embedded" and max_batches is None:
    assert (len(x_train), len(x_val), len(x_test)) == (3200, 800, 1000)

# %% [markdown]
# The tensors already sit on `device`, so batches can be indexed straight out of them with
# `helpers.TensorLoader`: the same `(x, y)` batches as a `torch.utils.data.DataLoader` over a
# `TensorDataset`, without the per-example overhead. The training loader reshuffles every epoch from
# its own generator, seeded with `seed`, so every run below sees the batches in the same order.

# %%
def make_loader(x, y, *, shuffle=True):
    """(x, y) batches of `batch_size` from tensors; the shuffle order depends only on `seed`."""
    generator = torch.Generator().manual_seed(seed) if shuffle else None
    return helpers.TensorLoader(x, y, batch_size=batch_size, shuffle=shuffle, generator=generator)


val_loader = helpers.TensorLoader(x_val, y_val, batch_size=1000)
test_loader = helpers.TensorLoader(x_test, y_test, batch_size=1000)
x, y = next(iter(make_loader(x_train, y_train)))
assert x.shape == (min(batch_size, len(x_train)), 1, 28, 28) and y.shape == (len(x),)
print(x.shape, y[:10].tolist())

# %% [markdown]
# ## 3.2 Softmax regression
#
# A linear model cannot take a `(1, 28, 28)` image as such; it wants a vector. **Flattening** lines
# the 784 pixels up in one row per image: `x.flatten(1)` keeps dimension 0 (the batch) and merges
# the rest, and the layer `nn.Flatten()` does the same inside a model. (`x.view(-1, 784)`, seen in
# many tutorials, works too, but its `-1` sits on the batch dimension: given 64 colour images of
# shape `(3, 28, 28)` it silently returns 192 "images" of 784 pixels. `flatten(1)` returns 64 rows
# of 2,352, and the first layer then raises a clear shape error.)

# %%
flat = nn.Flatten()(x)
print(x.shape, "->", flat.shape)
assert flat.shape == (len(x), 784) and torch.equal(flat, x.flatten(1))

# %% [markdown]
# **Softmax regression** maps the flattened image $\mathbf{x} \in \mathbb{R}^{784}$ to ten scores,
# the **logits** $\mathbf{z} = W\mathbf{x} + \mathbf{b}$ with $W \in \mathbb{R}^{10\times 784}$, and
# turns them into probabilities with the **softmax**:
#
# $$ p_k = \mathrm{softmax}(\mathbf{z})_k = \frac{e^{z_k}}{\sum_{j=1}^{10} e^{z_j}}, \qquad p_k > 0,\ \ \sum_k p_k = 1 .$$
#
# It is trained by minimising the **cross-entropy**: minus the log-probability given to the true
# class $y$, averaged over the $N$ examples of a batch,
#
# $$ L = \frac{1}{N}\sum_{n=1}^{N} -\log p_{y_n}^{(n)}, \qquad -\log p_y = -z_y + \log\sum_j e^{z_j} .$$
#
# A confident right answer ($p_y \to 1$) costs almost nothing, a confident wrong one a lot. Its
# gradient with respect to the logits is remarkably simple, $\partial(-\log p_y)/\partial z_k = p_k - [k = y]$:
# predicted probabilities minus the one-hot truth. With two classes this is logistic regression;
# with ten, **multinomial** logistic regression. In PyTorch the model is one `nn.Linear` and the
# loss is `nn.CrossEntropyLoss`, which takes the logits and does the softmax itself. Here is the
# formula by hand, checked against PyTorch, on an untrained model:

# %%
torch.manual_seed(seed)
softmax_regression = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).to(device)
logits = softmax_regression(x)                                   # (B, 10)
by_hand = (-logits.gather(1, y[:, None]) + logits.logsumexp(1, keepdim=True)).mean()
loss_fn = nn.CrossEntropyLoss()
print(f"by hand {by_hand.item():.4f}   nn.CrossEntropyLoss {loss_fn(logits, y).item():.4f}   "
      f"chance level log(10) = {math.log(10):.4f}")
z = logits.detach().requires_grad_()
loss_fn(z, y).backward()
grad_by_hand = (z.softmax(1) - F.one_hot(y, 10)) / len(y)        # (p - onehot) / N
print("gradient p - onehot matches autograd:", torch.allclose(z.grad, grad_by_hand, atol=1e-7))

# %% tags=["remove-cell"]
assert torch.allclose(by_hand, loss_fn(logits, y), atol=1e-5)
assert torch.allclose(z.grad, grad_by_hand, atol=1e-7)

# %% [markdown]
# An untrained model is no better than a guess: its loss is near $\log 10$, the cross-entropy of
# giving every digit probability $1/10$.
#
# ## 3.3 The training loop, by hand
#
# Training is chapter 2's gradient descent in batches: for each batch, zero the gradients, compute
# the loss, `backward()`, `optimizer.step()`. One pass over the training data is an **epoch**. Two
# functions do all of it, and the rest of the course uses them (or `helpers`' copy of them):
#
# - `train_epoch` trains for one epoch and returns the average loss and accuracy;
# - `evaluate` measures loss and accuracy without training: `torch.no_grad()` (no graph is
#   recorded) and `model.eval()` (section 3.11 shows what that switches).
#
# Both average **per example**: the loss of a batch is a mean, so it is multiplied back by the
# batch size before summing, and the sum is divided by the number of examples. Averaging batch
# means instead would give a short last batch as much weight as a full one.

# %%
def train_epoch(model, loader, loss_fn, optimizer, device):
    """Train for one pass over `loader`; return {"loss", "acc"} averaged per example."""
    model.train()
    loss_sum, correct, n = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        logits = model(x)                       # (B, 10)
        loss = loss_fn(logits, y)               # mean over the batch
        loss.backward()
        optimizer.step()
        loss_sum += loss.item() * len(y)        # .item(): a Python float, no graph kept alive
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    return {"loss": loss_sum / n, "acc": correct / n}

# %%
@torch.no_grad()
def evaluate(model, loader, loss_fn, device):
    """Return {"loss", "acc"} over `loader`, averaged per example, in eval mode without gradients."""
    model.eval()
    loss_sum, correct, n = 0.0, 0, 0
    for x, y in loader:
        x, y = x.to(device), y.to(device)
        logits = model(x)
        loss_sum += loss_fn(logits, y).item() * len(y)
        correct += (logits.argmax(1) == y).sum().item()
        n += len(y)
    return {"loss": loss_sum / n, "acc": correct / n}

# %% [markdown]
# Why the care about averages? Evaluate the untrained model on the 800 validation images in batches
# of 300 (300 + 300 + 200): the mean of the three batch means is not the mean over the 800 images.

# %%
loader_300 = helpers.TensorLoader(x_val, y_val, batch_size=300)
with torch.no_grad():
    batch_means = [loss_fn(softmax_regression(xb), yb).item() for xb, yb in loader_300]
print(f"mean of batch means {sum(batch_means) / len(batch_means):.4f}   "
      f"per-example mean {evaluate(softmax_regression, loader_300, loss_fn, device)['loss']:.4f}")

# %% [markdown]
# Now train softmax regression for a few epochs with plain SGD, printing one line per epoch. Watch
# the two accuracies: training accuracy is measured on the images the model learns from, validation
# accuracy on images it never sees.

# %%
def log_line(epoch, n_epochs, train, val):
    return (f"epoch {epoch}/{n_epochs}  train_loss {train['loss']:.4f}  train_acc {train['acc']:.4f}  "
            f"val_loss {val['loss']:.4f}  val_acc {val['acc']:.4f}")


hand_epochs = 5
optimizer = torch.optim.SGD(softmax_regression.parameters(), lr=0.1)
train_loader = make_loader(x_train, y_train)
for epoch in range(1, hand_epochs + 1):
    train = train_epoch(softmax_regression, train_loader, loss_fn, optimizer, device)
    val = evaluate(softmax_regression, val_loader, loss_fn, device)
    print(log_line(epoch, hand_epochs, train, val))
softreg_val_acc = val["acc"]

# %% [markdown]
# About 9 in 10 validation digits right, against 4 in 5 for chapter 1's templates. The model is
# still a template matcher — logit $k$ is the dot product of the image with row $k$ of $W$ — but
# its templates are *learned* to separate the classes rather than averaged. Each row, shown as an
# image, has positive weights (red) where ink speaks for the digit and negative ones (blue) where
# ink speaks against it — look for the hole in the middle of the 0:

# %%
W = softmax_regression[1].weight.detach().cpu().view(10, 28, 28)     # one 28x28 template per digit
fig, axes = plt.subplots(1, 10, figsize=(10, 1.4))
for digit, ax in enumerate(axes):
    limit = W[digit].abs().max()
    ax.imshow(W[digit], cmap="RdBu_r", vmin=-limit, vmax=limit)    # white = 0, red > 0, blue < 0
    ax.set_title(str(digit))
    ax.axis("off")
plt.show()

# %% tags=["remove-cell"]
if DEFAULTS:
    assert 0.85 < softreg_val_acc < 0.93, softreg_val_acc

# %% [markdown]
# ## 3.4 An MLP, with `nn.Module` and `nn.Sequential`
#
# A linear model draws straight boundaries between the classes. A **multilayer perceptron** puts a
# **hidden layer** in between: $\mathbf{h} = \phi(W_1\mathbf{x} + \mathbf{b}_1)$, then
# $\mathbf{z} = W_2\mathbf{h} + \mathbf{b}_2$, where $\phi$ is a nonlinear **activation** applied
# element by element — here ReLU, $\phi(u) = \max(0, u)$. The nonlinearity is essential: without
# it the two layers collapse into one, $W_2(W_1\mathbf{x} + \mathbf{b}_1) + \mathbf{b}_2 = (W_2W_1)\mathbf{x} + (W_2\mathbf{b}_1 + \mathbf{b}_2)$,
# still a linear model, however many layers you stack:

# %%
torch.manual_seed(seed)
lin1, lin2 = nn.Linear(784, 256), nn.Linear(256, 10)
W, b = lin2.weight @ lin1.weight, lin2.weight @ lin1.bias + lin2.bias    # (10, 784), (10,)
x_cpu = x.flatten(1).cpu()
print("two linear layers == one linear layer:", torch.allclose(lin2(lin1(x_cpu)), x_cpu @ W.T + b, atol=1e-5))

# %% [markdown]
# The general way to write a model is a subclass of `nn.Module`: create the layers in `__init__`
# (assigning them to attributes registers their parameters), and say how data flows in `forward`.
# You call the model, `model(x)`, never `model.forward(x)`: the call runs `forward` plus PyTorch's
# hooks.

# %%
class MLP(nn.Module):
    """784 -> n_hidden -> 10 with ReLU; returns logits."""

    def __init__(self, n_hidden=256):
        super().__init__()
        self.flatten = nn.Flatten()
        self.hidden = nn.Linear(784, n_hidden)
        self.out = nn.Linear(n_hidden, 10)

    def forward(self, x):                       # (B, 1, 28, 28)
        h = torch.relu(self.hidden(self.flatten(x)))      # (B, n_hidden)
        return self.out(h)                      # (B, 10): logits, no softmax


torch.manual_seed(seed)
model = MLP().to(device)
print(model)

# %% [markdown]
# When data simply flows through layers one after another, `nn.Sequential` says the same in one
# line. Created after the same seed, the layers draw the same initial weights in the same order,
# so the two models compute exactly the same function. Parameters are counted with
# `numel()`: $784 \times 256 + 256$ for the hidden layer, $256 \times 10 + 10$ for the output.

# %%
torch.manual_seed(seed)
sequential = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10)).to(device)
print("same outputs:", torch.equal(model(x), sequential(x)))
for name, p in model.named_parameters():
    print(f"{name:14s} {str(tuple(p.shape)):11s} {p.numel():>7,}")
n_params = sum(p.numel() for p in model.parameters())
print(f"total {n_params:,} parameters (softmax regression: {784 * 10 + 10:,})")

# %% tags=["remove-cell"]
assert torch.equal(model(x), sequential(x))
assert n_params == 784 * 256 + 256 + 256 * 10 + 10
assert model(x).shape == (len(x), 10)

# %% [markdown]
# Train it with exactly the loop, optimiser and epochs that trained softmax regression. (From here
# on, the last digit of a training log can differ between machines and thread counts: the order
# in which a multi-threaded matrix product adds its terms changes the rounding, and training
# amplifies the differences. The tests check such cells with hidden assertions instead.)

# %% tags=["nbval-ignore-output"]
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
train_loader = make_loader(x_train, y_train)
hand_log = []
for epoch in range(1, hand_epochs + 1):
    train = train_epoch(model, train_loader, loss_fn, optimizer, device)
    val = evaluate(model, val_loader, loss_fn, device)
    hand_log.append((train, val))
    print(log_line(epoch, hand_epochs, train, val))

# %% tags=["remove-cell"]
if DEFAULTS:
    assert hand_log[-1][1]["acc"] > softreg_val_acc + 0.01, (hand_log[-1][1]["acc"], softreg_val_acc)

# %% [markdown]
# One hidden layer of 256 ReLUs is about two points of validation accuracy better than the linear
# model after the same five epochs, and its training accuracy is pulling away from its validation
# accuracy: it fits the training images more closely than it generalises.
#
# ## 3.5 `helpers.fit` takes over
#
# From here on, the course calls `helpers.fit(model, train_loader, val_loader, loss_fn, optimizer, epochs=...)`.
# Its core is `helpers.train_epoch`, the function you just wrote plus a few guard rails (clear
# errors for mismatched shapes or devices, a stop when the loss becomes NaN, optional gradient
# clipping, mixed precision, and a progress bar):
#
# ```{literalinclude} ../helpers/training.py
# :pyobject: train_epoch
# ```
#
# `helpers.evaluate` is the `evaluate` above, and it restores the model's previous mode when it is
# done. `fit` runs one `train_epoch` and one `evaluate` per epoch, prints the same line as
# `log_line`, and returns a `History` of per-epoch lists (`train_loss`, `train_acc`, `val_loss`,
# `val_acc`, `lr`, `seconds`); it can also step a learning-rate scheduler and save a checkpoint
# after each epoch to resume from (chapter 7). In Jupyter, `helpers.fit??` shows its source; on the
# site, open the box below.
#
# :::{admonition} The source of `helpers.fit`
# :class: dropdown
# ```{literalinclude} ../helpers/training.py
# :pyobject: fit
# ```
# :::
#
# Same seed, same data order, same loop: `fit` must reproduce the hand-written run number for
# number.

# %% tags=["nbval-ignore-output"]
torch.manual_seed(seed)
model = MLP().to(device)
optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
history = helpers.fit(model, make_loader(x_train, y_train), val_loader, loss_fn, optimizer,
                      epochs=hand_epochs, device=device, progress=False)

# %% tags=["remove-cell"]
assert len(history) == hand_epochs
for (train, val), i in zip(hand_log, range(hand_epochs)):
    assert math.isclose(history.train_loss[i], train["loss"], rel_tol=1e-6, abs_tol=1e-7)
    assert math.isclose(history.val_loss[i], val["loss"], rel_tol=1e-6, abs_tol=1e-7)
    assert history.train_acc[i] == train["acc"] and history.val_acc[i] == val["acc"]

# %% [markdown]
# `helpers.plot_history` draws a `History`: loss and accuracy per epoch, training and validation.
# The gap that opens between the two curves is the subject of section 3.10.

# %%
helpers.plot_history(history)
plt.tight_layout()
plt.show()

# %% [markdown]
# Two small functions keep the experiments below short: `mlp(...)` builds a freshly seeded
# `nn.Sequential` MLP with any hidden sizes, activation and dropout, and `quick_fit` trains it
# silently with `helpers.fit` and returns the `History`.

# %%
def mlp(*hidden, act=nn.ReLU, p=0.0):
    """A seeded MLP 784 -> hidden[0] -> ... -> 10 with `act` (and dropout p) after each hidden layer."""
    torch.manual_seed(seed)
    layers, n_in = [nn.Flatten()], 784
    for n_out in hidden:
        layers += [nn.Linear(n_in, n_out), act()] + ([nn.Dropout(p)] if p > 0 else [])
        n_in = n_out
    return nn.Sequential(*layers, nn.Linear(n_in, 10)).to(device)


def quick_fit(model, optimizer, n_epochs, *, x=x_train, y=y_train, loss=loss_fn):
    """Train with helpers.fit on (x, y), validate on the validation split; return the History."""
    return helpers.fit(model, make_loader(x, y), val_loader, loss, optimizer, epochs=n_epochs,
                       device=device, progress=False, verbose=False)

# %% [markdown]
# ## 3.6 `CrossEntropyLoss` takes logits
#
# `nn.CrossEntropyLoss` applies log-softmax to its input itself, so the model must return raw
# logits. Two of the articles this course was built from end their network with
# `output = nn.log_softmax(x, dim=1)` and then use `CrossEntropyLoss`. The first problem is that
# `nn.log_softmax` does not exist (the error is caught and printed):

# %%
try:
    nn.log_softmax(logits, dim=1)
except AttributeError as err:
    print("AttributeError:", err)

# %% [markdown]
# The function is `F.log_softmax` (`torch.nn.functional`); the layer is `nn.LogSoftmax(dim=1)`. With
# that fixed, the loss sees log-probabilities $\log p_k$ instead of logits — and applies
# log-softmax again. That second application changes nothing: the $\log p_k$ already exponentiate
# to a sum of 1, so $\log\sum_j e^{\log p_j} = 0$ and log-softmax is **idempotent**. The loss and
# its gradients are the ones of the logits, up to rounding. Feeding the loss **probabilities**
# (`softmax`) is different: they lie in $[0, 1]$, so the softmax inside the loss sees ten numbers
# that barely differ. Even a perfect prediction then cannot score below
# $\log(1 + 9/e) \approx 1.4612$, and the gradients shrink.

# %%
torch.manual_seed(seed)
net = MLP().to(device)
log_probs = F.log_softmax(net(x), dim=1)
print("log_softmax twice == once:", torch.allclose(F.log_softmax(log_probs, dim=1), log_probs, atol=1e-6))
perfect = F.softmax(torch.tensor([[100.0] + [0.0] * 9]), dim=1)           # p = (1, 0, ..., 0)
print(f"best loss reachable through softmax: {loss_fn(perfect, torch.tensor([0])).item():.4f}")
for name, head in [("logits", nn.Identity()), ("log_softmax", nn.LogSoftmax(1)), ("softmax", nn.Softmax(1))]:
    net.zero_grad()
    loss = loss_fn(head(net(x)), y)
    loss.backward()
    print(f"{name:12s} loss {loss.item():.4f}   gradient norm of the output layer {net.out.weight.grad.norm().item():.4f}")

# %% tags=["remove-cell"]
assert not hasattr(nn, "log_softmax")
assert abs(loss_fn(perfect, torch.tensor([0])).item() - math.log(1 + 9 / math.e)) < 1e-4

# %% [markdown]
# What does it do to training? The same MLP, trained for 5 epochs with each ending, first with the
# articles' optimiser, SGD with `lr=0.01, momentum=0.9` (solid lines in the plot below), then with
# Adam (section 3.9; dashed).

# %%
head_runs = {}
for opt_name in ("SGD+momentum", "Adam"):
    for name, head in [("logits", None), ("log_softmax", nn.LogSoftmax(1)), ("softmax", nn.Softmax(1))]:
        net = mlp(256) if head is None else nn.Sequential(mlp(256), head)
        optimizer = (torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9) if opt_name == "SGD+momentum"
                     else torch.optim.Adam(net.parameters(), lr=1e-3))
        h = head_runs[f"{name}, {opt_name}"] = quick_fit(net, optimizer, 5)
        print(f"{name + ', ' + opt_name:26s} train loss {h.train_loss[-1]:.3f}   "
              f"val acc after 1 epoch {h.val_acc[0]:.3f}, after 5 {h.val_acc[-1]:.3f}")

# %% [markdown]
# One function draws any set of runs, one line per run and one panel per metric:

# %%
def plot_runs(runs, keys=("train_loss", "val_acc"), *, logy=False, styles=None):
    """One panel per History attribute in `keys`, one line per run (plot kwargs from `styles`); return the axes."""
    _, axes = plt.subplots(1, len(keys), figsize=(4.6 * len(keys), 3.2), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, h in runs.items():
            style = {"marker": "o", "ms": 3, **(styles or {}).get(name, {})}
            ax.plot(range(1, len(h) + 1), getattr(h, key), label=name, **style)
        ax.set(xlabel="epoch", ylabel=key.replace("_", " "), yscale="log" if logy and "loss" in key else "linear")
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=8)
    plt.tight_layout()
    return axes


colors = {"logits": "C0", "log_softmax": "C1", "softmax": "C3"}
styles = {name: {"color": colors[name.split(",")[0]], "ls": "-" if "SGD" in name else "--"} for name in head_runs}
axes = plot_runs(head_runs, styles=styles)
axes[0, 0].axhline(math.log(1 + 9 / math.e), color="gray", ls=":", lw=1)
axes[0, 0].annotate("floor through softmax: 1.4612", (1, 1.3), fontsize=8, color="gray")
plt.show()

# %% tags=["remove-cell"]
for opt_name in ("SGD+momentum", "Adam"):
    a, b = head_runs[f"logits, {opt_name}"], head_runs[f"log_softmax, {opt_name}"]
    assert max(abs(u - v) for u, v in zip(a.train_loss, b.train_loss)) < 1e-3
    assert min(head_runs[f"softmax, {opt_name}"].train_loss) > 1.46
if DEFAULTS:
    sgd_l, sgd_s = head_runs["logits, SGD+momentum"], head_runs["softmax, SGD+momentum"]
    adam_l, adam_s = head_runs["logits, Adam"], head_runs["softmax, Adam"]
    assert sgd_l.val_acc[0] - sgd_s.val_acc[0] > 0.2, (sgd_l.val_acc[0], sgd_s.val_acc[0])
    assert sgd_l.val_acc[-1] - sgd_s.val_acc[-1] > 0.02
    assert abs(adam_l.val_acc[-1] - adam_s.val_acc[-1]) < 0.015

# %% [markdown]
# What the measurements say, honestly:
#
# - **log_softmax** before `CrossEntropyLoss` is harmless: its curves lie on top of the logits'
#   curves. It is redundant work, not a bug — but it invites the real bug below.
# - **softmax** before `CrossEntropyLoss` is a bug whose damage depends on the optimiser. At
#   initialisation the output layer's gradient is ten times smaller than it should be. With
#   SGD+momentum the first epoch crawls (about 58 % validation accuracy instead of 89 %), and after
#   5 epochs the network is still four points behind. Adam divides every gradient by a running
#   estimate of its own size (section 3.9), which undoes most of the shrinking: it loses about one
#   point.
# - In every case the printed **loss is wrong**: it can never fall below 1.4612, so it is not the
#   cross-entropy of the predictions and cannot be compared with anything, nor used for early
#   stopping or to judge how confident the model is.
#
# The fix: `forward` returns logits; apply `softmax` only when you want probabilities to look at,
# and `argmax` of the logits is the prediction either way. (A model that must output
# log-probabilities pairs with `nn.NLLLoss`, which is `CrossEntropyLoss` without its log-softmax.)
#
# ## 3.7 `MSELoss`, and when it is the right loss
#
# For a **regression** target — a number, not a class — the usual loss is the mean squared error,
# $L = \frac{1}{N}\sum_n (\hat y_n - y_n)^2$, chapter 2's loss. Its PyTorch name is `nn.MSELoss`.
# One of the articles calls it `MeanSquaredLoss`, which does not exist:

# %%
try:
    loss_fn_regression = nn.MeanSquaredLoss()
except AttributeError as err:
    print("AttributeError:", err)
loss_fn_regression = nn.MSELoss()
print(loss_fn_regression)

# %% [markdown]
# MSE is the right loss when the target is continuous and its noise is roughly Gaussian: minimising
# it is then maximum likelihood, and the best prediction is the *mean* of $y$ given $x$. (With
# heavy-tailed noise or outliers, `nn.L1Loss` or `nn.HuberLoss` are more robust; for classes,
# cross-entropy — exercise 2 measures why.) An MLP is a regression model as easily as a classifier:
# change the output layer to one number. Below, 200 noisy samples of $y = \sin 2x$ with noise of
# standard deviation $0.2$, fitted by a straight line and by a small MLP.

# %%
g = torch.Generator().manual_seed(seed)
x_reg = torch.rand(200, 1, generator=g) * 6 - 3                        # (200, 1)
y_reg = torch.sin(2 * x_reg) + 0.2 * torch.randn(200, 1, generator=g)  # (200, 1): same shape as the output
x_reg, y_reg = x_reg.to(device), y_reg.to(device)
torch.manual_seed(seed)
regressors = {"linear": nn.Linear(1, 1).to(device),
              "MLP 1-64-64-1": nn.Sequential(nn.Linear(1, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                                             nn.Linear(64, 1)).to(device)}
for name, reg in regressors.items():
    optimizer = torch.optim.Adam(reg.parameters(), lr=0.01)
    for step in range(1000):                            # full batch: all 200 points every step
        optimizer.zero_grad()
        loss = loss_fn_regression(reg(x_reg), y_reg)
        loss.backward()
        optimizer.step()
print(", ".join(f"{name}: {sum(p.numel() for p in reg.parameters()):,} parameters" for name, reg in regressors.items()))

# %% [markdown]
# How good are the fits? The error on the training points, and on 1,000 fresh points from the same
# source:

# %%
x_new = torch.rand(1000, 1, generator=g) * 6 - 3                      # fresh data from the same source
y_new = torch.sin(2 * x_new) + 0.2 * torch.randn(1000, 1, generator=g)
x_new, y_new = x_new.to(device), y_new.to(device)
reg_mse = {}
with torch.no_grad():
    for name, reg in regressors.items():
        reg_mse[name] = (loss_fn_regression(reg(x_reg), y_reg).item(), loss_fn_regression(reg(x_new), y_new).item())
        print(f"{name:14s} MSE on its 200 training points {reg_mse[name][0]:.4f}, on 1,000 new points {reg_mse[name][1]:.4f}")

# %%
grid = torch.linspace(-3, 3, 200, device=device).unsqueeze(1)
plt.figure(figsize=(6, 3))
plt.scatter(x_reg.cpu(), y_reg.cpu(), s=8, alpha=0.5, label="data")
with torch.no_grad():
    for name, reg in regressors.items():
        plt.plot(grid.cpu(), reg(grid).cpu(), lw=2, label=name)
plt.plot(grid.cpu(), torch.sin(2 * grid).cpu(), "k:", label="sin 2x")
plt.legend(fontsize=8)
plt.show()

# %% tags=["remove-cell"]
mlp_train, mlp_new = reg_mse["MLP 1-64-64-1"]
assert mlp_train < 0.04 < mlp_new < 0.07 and reg_mse["linear"][1] > 0.3, reg_mse

# %% [markdown]
# The line cannot bend. The MLP follows the curve, and on new points its error is close to the
# noise variance $0.2^2 = 0.04$, the floor no model can beat, because the noise is unpredictable.
# On its own 200 points its error is even *below* that floor: it has begun to fit the noise, the
# small wiggles in its curve. That is overfitting, the subject of section 3.10.
#
# One trap remains, chapter 1's broadcasting bug: `MSELoss` compares element by element, so a
# prediction of shape `(N, 1)` against a target of shape `(N,)` broadcasts to `(N, N)` and
# compares every prediction with every target. PyTorch only warns; here a *perfect* prediction
# scores 4.0. (`helpers.fit` refuses such shapes with an error.)

# %%
target = torch.arange(5.0)                        # (5,)
prediction = target.unsqueeze(1)                  # (5, 1): the right values, the wrong shape
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    broadcast_loss = loss_fn_regression(prediction, target)
print(f"(5, 1) vs (5,): {broadcast_loss.item():.4f}   (5,) vs (5,): {loss_fn_regression(prediction.squeeze(1), target).item():.4f}")
print("UserWarning:", caught[0].message)

# %% tags=["remove-cell"]
assert broadcast_loss.item() == 4.0 and len(caught) == 1

# %% [markdown]
# ## 3.8 Activation functions
#
# The activation decides how gradients flow back through the layers. By the chain rule, the
# gradient reaching layer 1 is multiplied by the activation's derivative once per layer above it:
#
# - **sigmoid** $\sigma(u) = 1/(1 + e^{-u})$: derivative at most $1/4$, and near 0 once $|u|$ is
#   large — so the gradient shrinks by 4× or more per layer (the *vanishing gradient*);
# - **tanh**: derivative at most 1 (at 0), zero-centred output; better, but also saturates;
# - **ReLU** $\max(0, u)$: derivative exactly 1 for every active unit, no saturation, and the
#   cheapest to compute — the default for hidden layers. (Its weakness is different: a unit whose
#   input is always negative gets no gradient at all and stays "dead".)
#
# A net with three hidden layers of 128 units, with each activation: first the size of the
# gradient reaching each layer's weights at initialisation, then 5 epochs of SGD+momentum.

# %%
act_runs, grad_norms = {}, {}
for act in (nn.ReLU, nn.Tanh, nn.Sigmoid):
    net = mlp(128, 128, 128, act=act)
    loss_fn(net(x_train[:512]), y_train[:512]).backward()
    grad_norms[act.__name__] = [p.grad.norm().item() for p in net.parameters() if p.ndim == 2]
    net.zero_grad()
    act_runs[act.__name__] = quick_fit(net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9), 5)
for name, h in act_runs.items():
    print(f"{name:8s} gradient norm, layer 1 -> 4: {' '.join(f'{g:.4f}' for g in grad_norms[name])}   "
          f"val acc after 5 epochs {h.val_acc[-1]:.3f}")

# %%
fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9.2, 3.2))
for name, norms in grad_norms.items():
    ax1.plot(range(1, len(norms) + 1), norms, "o-", label=name)
    ax2.plot(range(1, len(act_runs[name]) + 1), act_runs[name].train_loss, "o-", label=name)
ax1.set(xlabel="layer", ylabel="gradient norm at init", yscale="log", xticks=[1, 2, 3, 4])
ax2.set(xlabel="epoch", ylabel="train loss")
ax1.legend(fontsize=8)
plt.tight_layout()
plt.show()

# %% tags=["remove-cell"]
if DEFAULTS:
    assert grad_norms["Sigmoid"][0] < grad_norms["Sigmoid"][-1] / 20
    assert act_runs["Sigmoid"].val_acc[-1] < 0.2
    assert act_runs["ReLU"].val_acc[-1] > 0.85 and act_runs["Tanh"].val_acc[-1] > 0.85
    assert abs(act_runs["ReLU"].val_acc[-1] - act_runs["Tanh"].val_acc[-1]) < 0.02

# %% [markdown]
# With sigmoid, the first layer receives a gradient about fifty times smaller than the last one,
# and in 5 epochs the network learns nothing: it stays at chance. tanh and ReLU both train, and on
# this small problem finish level — tanh even starts faster. ReLU's advantages (no saturation, no
# shrinking with depth, cheapness) matter more in deeper and larger networks, which is why it is
# the default; sigmoid survives as an output for probabilities (binary classification), not as a
# hidden activation.
#
# ## 3.9 Optimisers: SGD, momentum, Adam
#
# All three follow the gradient $\mathbf{g} = \nabla_\theta L$ of the current batch; they differ in
# the step they take with it:
#
# - **SGD**: $\theta \leftarrow \theta - \eta\,\mathbf{g}$.
# - **SGD with momentum** keeps a running sum of past gradients, $\mathbf{v} \leftarrow \beta\mathbf{v} + \mathbf{g}$,
#   $\theta \leftarrow \theta - \eta\,\mathbf{v}$. Noise in $\mathbf{g}$ averages out, and in a
#   consistent direction the step grows towards $\eta/(1-\beta)$: $10\eta$ for $\beta = 0.9$.
# - **Adam** keeps running averages of the gradient and of its square, $\mathbf{m}$ and $\mathbf{s}$
#   (with corrections for their start at 0), and steps $\theta \leftarrow \theta - \eta\,\mathbf{m}/(\sqrt{\mathbf{s}} + \epsilon)$:
#   every parameter gets a step of about $\eta$, whatever the scale of its gradient.
#
# The same MLP with each, for 6 epochs. Plain SGD runs twice: at `lr=0.01`, the same as the
# momentum run, and at `lr=0.1`, the same *effective* step as momentum's $0.01/(1-0.9)$.

# %% tags=["nbval-ignore-output"]
optimizers = {
    "SGD lr=0.01": lambda params: torch.optim.SGD(params, lr=0.01),
    "SGD lr=0.1": lambda params: torch.optim.SGD(params, lr=0.1),
    "SGD+momentum lr=0.01": lambda params: torch.optim.SGD(params, lr=0.01, momentum=0.9),
    "Adam lr=0.001": lambda params: torch.optim.Adam(params, lr=1e-3),
}
opt_runs = {}
for name, make_optimizer in optimizers.items():
    net = mlp(256)
    opt_runs[name] = h = quick_fit(net, make_optimizer(net.parameters()), 6)
    print(f"{name:21s} train loss {h.train_loss[-1]:.3f}   val loss {h.val_loss[-1]:.3f}   val acc {h.val_acc[-1]:.3f}")

# %%
plot_runs(opt_runs, ("train_loss", "val_loss"), logy=True, styles={"SGD lr=0.1": {"ls": ":"}})
plt.show()

# %% tags=["remove-cell"]
if DEFAULTS:
    tl = {k: h.train_loss[-1] for k, h in opt_runs.items()}
    assert tl["Adam lr=0.001"] < tl["SGD+momentum lr=0.01"] < tl["SGD lr=0.01"], tl
    assert tl["SGD lr=0.1"] < tl["SGD lr=0.01"] / 2, tl
    assert opt_runs["SGD lr=0.01"].val_acc[-1] < opt_runs["SGD+momentum lr=0.01"].val_acc[-1] - 0.02

# %% [markdown]
# At the same learning rate, momentum is far ahead of plain SGD, but SGD with a ten times larger
# learning rate keeps up with it: on this easy problem much of momentum's gain is simply the
# bigger effective step. Adam drives the training loss down fastest, with its default `lr=0.001`
# and no tuning, which is why it is the usual first choice and this course's default. Its
# validation loss, though, stops improving after a few epochs while its training loss keeps
# falling: by epoch 5 it has flattened out. The network is starting to memorise.
#
# ## 3.10 Overfitting, and its cures
#
# A model **overfits** when it learns the training examples rather than the pattern: training
# loss keeps falling, validation loss stops falling and climbs. The more parameters per example,
# the sooner it happens. To see it clearly, take a big MLP, 784 → 512 → 512 → 10 (670,000
# parameters), and train it with Adam on just 500 of the training images, for 30 epochs.

# %%
n_small = min(500, len(x_train))
x_small, y_small = x_train[:n_small], y_train[:n_small]
over_epochs = 30
big = mlp(512, 512)
print(f"{sum(p.numel() for p in big.parameters()):,} parameters for {n_small} images")
over_runs = {"no cure": quick_fit(big, torch.optim.Adam(big.parameters(), lr=1e-3), over_epochs,
                                  x=x_small, y=y_small)}
no_cure_model = big
h = over_runs["no cure"]
best = min(range(len(h)), key=lambda i: h.val_loss[i])
print(f"lowest val loss {h.val_loss[best]:.3f} at epoch {best + 1}; after epoch {len(h)}: val loss "
      f"{h.val_loss[-1]:.3f}, train loss {h.train_loss[-1]:.4f}, train acc {h.train_acc[-1]:.3f}, val acc {h.val_acc[-1]:.3f}")

# %%
axes = helpers.plot_history(over_runs["no cure"])
axes[0].set_yscale("log")                             # the training loss falls by three orders of magnitude
plt.tight_layout()
plt.show()

# %% tags=["remove-cell"]
if DEFAULTS:
    h = over_runs["no cure"]
    assert h.train_acc[-1] == 1.0 and h.train_loss[-1] < 0.01
    assert h.val_loss[-1] > min(h.val_loss) + 0.07 and h.val_loss.index(min(h.val_loss)) < 8

# %% [markdown]
# The textbook picture: from epoch 9 on, every training image is classified right and the training
# loss heads for zero; the validation loss bottoms out at epoch 3 and then rises. Note
# the validation *accuracy*: it does not fall. The network keeps most of its right answers but
# grows ever more confident, including on the digits it gets wrong, and confident mistakes are
# what cross-entropy punishes. Four cures, each on this same run.
#
# **L2 weight decay.** Add $\frac{\lambda}{2}\lVert\theta\rVert^2$ to the loss. Its gradient is
# $\lambda\theta$, so plain SGD becomes
#
# $$ \theta \leftarrow \theta - \eta\,(\nabla_\theta L + \lambda\theta) = (1 - \eta\lambda)\,\theta - \eta\,\nabla_\theta L :$$
#
# each step first shrinks every weight by a factor $1 - \eta\lambda$ — hence "weight decay" —
# which keeps weights small and the function smooth. Every optimiser's `weight_decay=λ` adds
# $\lambda\theta$ to the gradient. (In Adam that term is then divided by Adam's per-parameter
# scale, so the decay is uneven; `torch.optim.AdamW` applies the shrinking directly — "decoupled"
# weight decay — and is the better choice with Adam for long training, as in chapter 4.)
#
# **L1 penalty.** Add $\lambda\sum|w|$ over the weight matrices. Its gradient $\lambda\,\mathrm{sign}(w)$
# pushes every weight towards zero by the same amount however small it is, so many weights end at
# (nearly) exactly zero: a **sparse** network. No optimiser has an option for it, so it is written
# by hand, as a loss function that adds the penalty while the model trains (in `eval()` mode it
# returns the plain cross-entropy, so validation losses stay comparable).

# %%
def cross_entropy_with_l1(model, lam):
    """A loss function: cross-entropy + lam * sum |w| over weight matrices while `model` trains."""
    def loss_with_l1(logits, y):
        loss = loss_fn(logits, y)
        if model.training:
            loss = loss + lam * sum(p.abs().sum() for p in model.parameters() if p.ndim == 2)
        return loss
    return loss_with_l1


big = mlp(512, 512)
over_runs["L2, weight_decay=3e-3"] = quick_fit(
    big, torch.optim.Adam(big.parameters(), lr=1e-3, weight_decay=3e-3), over_epochs, x=x_small, y=y_small)
l2_model = big
big = mlp(512, 512)
over_runs["L1, λ=3e-5"] = quick_fit(big, torch.optim.Adam(big.parameters(), lr=1e-3), over_epochs,
                                   x=x_small, y=y_small, loss=cross_entropy_with_l1(big, 3e-5))
l1_model = big

# %% [markdown]
# **Dropout.** During training, each hidden unit's output is set to zero with probability $p$, a
# fresh random choice for every example and every step, and the survivors are scaled by
# $1/(1-p)$ so that the expected value is unchanged. No unit can rely on any particular other
# unit, which discourages memorising brittle combinations; it is like training a large ensemble
# of thinned networks that share weights. In evaluation, dropout does nothing (section 3.11).

# %%
big = mlp(512, 512, p=0.5)
print(big)
over_runs["dropout p=0.5"] = quick_fit(big, torch.optim.Adam(big.parameters(), lr=1e-3), over_epochs,
                                       x=x_small, y=y_small)
dropout_model = big

# %% [markdown]
# **Early stopping** keeps the weights of the epoch with the lowest validation loss and stops when
# it has not improved for `patience` epochs. `helpers.fit` does not do it, so it is written here
# with the pair it is built on, `helpers.train_epoch` and `helpers.evaluate`:

# %%
def fit_early_stopping(model, optimizer, train_loader, *, max_epochs, patience):
    """Train until val loss has not improved for `patience` epochs; restore the best weights; return (History, best epoch)."""
    history, best_loss, best_epoch, best_state = helpers.History(), math.inf, 0, None
    for epoch in range(1, max_epochs + 1):
        train = helpers.train_epoch(model, train_loader, loss_fn, optimizer, device)
        val = helpers.evaluate(model, val_loader, loss_fn, device)
        for key, value in [("train_loss", train["loss"]), ("train_acc", train["acc"]),
                           ("val_loss", val["loss"]), ("val_acc", val["acc"])]:
            getattr(history, key).append(value)
        if val["loss"] < best_loss:
            best_loss, best_epoch = val["loss"], epoch
            best_state = copy.deepcopy(model.state_dict())    # a copy, not a reference to live tensors
        elif epoch - best_epoch >= patience:
            break
    model.load_state_dict(best_state)
    return history, best_epoch

# %%
big = mlp(512, 512)
over_runs["early stopping"], best_epoch = fit_early_stopping(
    big, torch.optim.Adam(big.parameters(), lr=1e-3), make_loader(x_small, y_small),
    max_epochs=over_epochs, patience=5)
early_val = helpers.evaluate(big, val_loader, loss_fn, device)
print(f"stopped after epoch {len(over_runs['early stopping'])}, restored epoch {best_epoch}: "
      f"val loss {early_val['loss']:.3f}, val acc {early_val['acc']:.3f}")

# %% tags=["remove-cell"]
if DEFAULTS:
    assert best_epoch + 5 == len(over_runs["early stopping"]) < over_epochs
    assert math.isclose(early_val["loss"], min(over_runs["early stopping"].val_loss), rel_tol=1e-5)

# %% [markdown]
# The runs side by side. "Final" is the model each method hands you: after the last epoch, or,
# for early stopping, the restored best epoch.

# %% tags=["nbval-ignore-output"]
def final_val(name):
    h = over_runs[name]
    i = best_epoch - 1 if name == "early stopping" else -1
    return h.val_loss[i], h.val_acc[i]


print(f"{'':22s} {'train loss':>10s} {'final val loss':>14s} {'final val acc':>13s} {'best val acc':>12s}")
for name, h in over_runs.items():
    val_loss, val_acc = final_val(name)
    print(f"{name:22s} {h.train_loss[-1]:10.4f} {val_loss:14.3f} {val_acc:13.3f} {max(h.val_acc):12.3f}")

# %%
axes = plot_runs(over_runs, ("val_loss", "val_acc"))
lowest = min(min(h.val_loss) for h in over_runs.values())
axes[0, 0].set_ylim(0.9 * lowest, 1.5 * lowest)       # zoom in: epoch 1's losses are far above
plt.show()

# %% [markdown]
# What L1 and L2 did to the weights of the first layer (note the logarithmic axis): L2 shifts the
# whole distribution towards zero; L1 pushes nearly half of the weights below 0.001, down to
# $10^{-5}$ and less, where they no longer matter.

# %%
plt.figure(figsize=(6, 3))
bins = torch.logspace(-8, 0, 50).numpy()
for name, net in [("no cure", no_cure_model), ("L2", l2_model), ("L1", l1_model)]:
    w = net[1].weight.detach().abs().flatten().cpu()
    plt.hist(w.clamp(min=1e-8).numpy(), bins=bins, histtype="step", lw=2, label=name)
plt.xscale("log")
plt.xlabel("|w|, first layer")
plt.legend(fontsize=8)
plt.show()
small = {name: (net[1].weight.abs() < 1e-3).float().mean().item()
         for name, net in [("no cure", no_cure_model), ("L2", l2_model), ("L1", l1_model)]}
print("first-layer weights below 1e-3 in size:", ", ".join(f"{k} {v:.0%}" for k, v in small.items()))

# %% [markdown]
# And the cure that beats them all is more data. The same big network, with no cure at all, for the
# same number of optimiser steps (30 epochs of 8 batches = 240 steps, here 5 epochs of 50), but on
# all the training images:

# %% tags=["nbval-ignore-output"]
big = mlp(512, 512)
more_data = quick_fit(big, torch.optim.Adam(big.parameters(), lr=1e-3),
                      max(1, round(over_epochs * n_small / len(x_train))))
print(f"{len(x_train)} images: val loss {more_data.val_loss[-1]:.3f}, val acc {more_data.val_acc[-1]:.3f}")

# %% tags=["remove-cell"]
if DEFAULTS:
    base_loss, base_acc = final_val("no cure")
    for name in ("L2, weight_decay=3e-3", "L1, λ=3e-5", "early stopping"):
        assert final_val(name)[0] < base_loss - 0.05, (name, final_val(name), base_loss)
    assert max(over_runs["dropout p=0.5"].val_acc) > max(over_runs["no cure"].val_acc) + 0.005
    assert small["L1"] > 0.4 and small["L1"] > 2 * small["L2"] > 4 * small["no cure"], small
    assert more_data.val_acc[-1] > max(max(h.val_acc) for h in over_runs.values()) + 0.02

# %% [markdown]
# Read the table with the noise in mind: with 800 validation images one image is 0.125 points of
# accuracy, so differences below about one point are not reliable. What the numbers show:
#
# - Every cure keeps the validation **loss** well below the uncured run's: the model's confidence
#   stays honest. L2 and L1 do it without changing accuracy much; early stopping gets the lowest
#   loss of all, but by stopping at the epoch where the loss bottomed out it also hands back a
#   model with *lower* accuracy than letting it run: validation loss and validation accuracy
#   disagree about the best epoch, and what you monitor is a choice (exercise 3).
# - **Dropout** is the one cure that lifts validation accuracy here, by one to two points; its
#   training curves are noisier, and its validation loss still creeps up late.
# - **More data** dwarfs all of them: 3,200 images instead of 500 take the same network, with no
#   cure, from 0.88 to about 0.93 validation accuracy, some three points beyond the best any cure reached.
#
# Regularisers buy a little and cost a hyperparameter each; they matter most when data cannot be
# had. On a new problem, measure them on a validation split, as here.
#
# ## 3.11 `train()` and `eval()` modes
#
# Some layers behave differently in training and in evaluation: dropout (here) and batch
# normalisation (chapter 4). `model.train()` and `model.eval()` set a flag, `model.training`, on the
# model and every submodule; the layers read it. A dropout layer in training mode zeroes about half
# of its inputs (with $p = 0.5$), randomly on every call, and doubles the rest; in evaluation mode
# it passes its input through unchanged:

# %%
drop = nn.Dropout(p=0.5)
ones = torch.ones(1, 12)
torch.manual_seed(seed)
print("train mode:", drop.training, drop(ones).tolist())
print("train mode:", drop.training, drop(ones).tolist())
drop.eval()
print("eval mode: ", drop.training, drop(ones).tolist())

# %% [markdown]
# So forgetting `model.eval()` before evaluating a model with dropout gives random, worse
# predictions. The trained dropout model of section 3.10, asked five times for its predictions on
# the validation images in each mode:

# %% tags=["nbval-ignore-output"]
mode_acc, mode_changes = {}, {}
with torch.no_grad():
    for mode in ("train", "eval"):
        dropout_model.train(mode == "train")
        preds = [dropout_model(x_val).argmax(1) for _ in range(5)]          # 5 x (800,)
        mode_acc[mode] = [(p == y_val).float().mean().item() for p in preds]
        mode_changes[mode] = (preds[0] != preds[1]).sum().item()
        print(f"{mode:5s} mode: accuracy {' '.join(f'{a:.3f}' for a in mode_acc[mode])}; "
              f"calls 1 and 2 disagree on {mode_changes[mode]} digits")

# %% tags=["remove-cell"]
assert len(set(mode_acc["eval"])) == 1 and mode_changes["eval"] == 0
if DEFAULTS:
    assert mode_changes["train"] > 10 and max(mode_acc["train"]) < mode_acc["eval"][0], mode_acc

# %% [markdown]
# `eval()` is not `torch.no_grad()`: `eval()` changes what layers compute, `no_grad()` stops
# autograd from recording. Evaluation wants both, which is what `evaluate` does. And the flag
# sticks: after evaluating, switch back with `model.train()` before training on (`helpers.evaluate`
# restores the previous mode itself, and `helpers.train_epoch` calls `model.train()` anyway).
#
# ## 3.12 Putting it together: a deep MLP
#
# The final model uses what the measurements above support: two hidden layers (512 and 256 ReLU
# units), dropout $p = 0.2$ after each (less than 0.5, since there are now 3,200 training images),
# Adam with `lr`, and one more ingredient: a **learning-rate schedule**. With a constant learning
# rate, Adam's last epochs still take full-size steps, so the weights keep bouncing around and the
# validation accuracy jumps from epoch to epoch (as in the validation curves of section 3.10). `CosineAnnealingLR` lowers the
# learning rate along a half cosine, from `lr` at the start to 0 after `epochs` epochs, so
# training ends in small steps and the weights settle. `helpers.fit` steps the scheduler once per
# epoch.

# %%
def deep_mlp():
    """The final architecture: 784 -> 512 -> 256 -> 10, ReLU and dropout 0.2 after each hidden layer."""
    return mlp(512, 256, p=0.2)


model = deep_mlp()
optimizer = torch.optim.Adam(model.parameters(), lr=lr)
scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
history = helpers.fit(model, make_loader(x_train, y_train), val_loader, loss_fn, optimizer, epochs=epochs,
                      scheduler=scheduler, device=device, progress=False)

# %%
axes = helpers.plot_history(history)
axes[0].plot(range(1, len(history) + 1), [l / lr for l in history.lr], "k:", label="lr / lr₀")
axes[0].legend()
plt.tight_layout()
plt.show()

# %% [markdown]
# The settings were chosen on the validation split; now, once, the test set:

# %%
test = helpers.evaluate(model, test_loader, loss_fn, device)
print(f"test loss {test['loss']:.3f}, test accuracy {test['acc']:.3f} on {len(y_test)} digits")

# %% tags=["remove-cell"]
if DEFAULTS:
    assert test["acc"] >= 0.94, test["acc"]
    assert abs(test["acc"] - history.val_acc[-1]) < 0.02

# %% [markdown]
# About 95 % of digits right, from 3,200 training images, against 80 % for chapter 1's templates
# and 90 % for softmax regression. The mistakes (the label, then the prediction) are worth a look;
# some would puzzle a person too. Note the `model.eval()`: `helpers.evaluate` put the model back in
# training mode when it finished, and predictions made with dropout active would be random.

# %%
model.eval()
with torch.no_grad():
    test_pred = model(x_test).argmax(1)
wrong = (test_pred != y_test).nonzero().squeeze(1)[:16]
if len(wrong):
    helpers.show_images(x_test[wrong], labels=y_test[wrong], preds=test_pred[wrong], ncols=8, size=1.0)
    plt.show()

# %% [markdown]
# ## 3.13 Saving and loading a `state_dict`
#
# A model's learned state is its **`state_dict`**: an ordered dictionary from parameter (and
# buffer) names to tensors. Save that, not the model object: `torch.save(model, ...)` pickles the
# class by reference and breaks as soon as the code moves. To load, build the same architecture
# and copy the tensors in.

# %%
state = model.state_dict()
for name, tensor in state.items():
    print(f"{name:10s} {tuple(tensor.shape)}")

# %% [markdown]
# `torch.load(..., weights_only=True)` (the default since PyTorch 2.6; say it anyway) unpickles only
# tensors and plain containers. A `.pt` file is a pickle, and loading an arbitrary pickle can run
# arbitrary code, so never load an untrusted checkpoint without it. `map_location` puts the tensors
# on a device of your choice, e.g. a checkpoint saved on a GPU loaded on a laptop. The file goes
# into a temporary directory that disappears afterwards.

# %%
with tempfile.TemporaryDirectory() as tmp:
    path = Path(tmp) / "deep_mlp.pt"
    torch.save(model.state_dict(), path)
    print(f"{path.name}: {path.stat().st_size / 1e6:.1f} MB for "
          f"{sum(p.numel() for p in model.parameters()):,} float32 parameters")
    restored = deep_mlp()                       # same architecture, fresh weights
    restored.load_state_dict(torch.load(path, map_location=device, weights_only=True))
restored.eval()                                 # `model` is already in eval mode (section 3.12)
with torch.no_grad():
    same = torch.equal(restored(x_test), model(x_test))
print("identical outputs:", same, "  test accuracy:", f"{helpers.evaluate(restored, test_loader, loss_fn, device)['acc']:.3f}")

# %% tags=["remove-cell"]
assert same

# %% [markdown]
# To resume *training* later you also need the optimizer's state (Adam's running averages), the
# scheduler's, the epoch and the random-number generators: `helpers.save_checkpoint` and
# `fit(..., checkpoint=path)` store all of it (chapter 7).
#
# ## Summary
#
# - Softmax regression is one `nn.Linear` on flattened images; cross-entropy is $-\log p_y$, and
#   its gradient with respect to the logits is $p - \text{onehot}(y)$.
# - The training loop: `zero_grad`, forward, loss, `backward`, `step`, per batch; `evaluate` under
#   `no_grad` and `eval()`; average per example. `helpers.fit` is this loop.
# - Models: `nn.Module` subclasses (layers in `__init__`, data flow in `forward`) or `nn.Sequential`.
#   Hidden layers need a nonlinearity, or they collapse into one linear map.
# - `CrossEntropyLoss` takes logits. Log-softmax first is redundant; softmax first is a bug that
#   floors the loss at 1.46 and shrinks the gradients (badly for SGD, mildly for Adam).
# - `MSELoss` (not `MeanSquaredLoss`) is for continuous targets; match the shapes exactly.
# - ReLU is the default hidden activation; sigmoid in hidden layers makes gradients vanish.
#   Adam trains fastest out of the box; momentum mostly buys a bigger effective step.
# - Judge choices on a validation split; overfitting shows as a rising validation loss. L2, L1,
#   dropout and early stopping each help a little; more data helps most.
# - `model.train()` / `model.eval()` switch dropout (and batch norm). Save the `state_dict`; load it
#   with `weights_only=True`.
#
# ## Exercises
#
# ```{exercise}
# :label: mlp-ex-weight-decay
# Write the L2 penalty by hand, like `cross_entropy_with_l1`: a loss function that adds
# $\frac{\lambda}{2}\sum_\theta \lVert\theta\rVert^2$ over **all** parameters. Take one SGD step
# (`lr=0.1`) with it on one batch, and one step with plain cross-entropy and
# `torch.optim.SGD(..., weight_decay=λ)` from the same initial weights. Check with `torch.allclose`
# that the weights agree. Which parameters does `weight_decay` decay, and how would you exclude the
# biases?
# ```
#
# ````{solution} mlp-ex-weight-decay
# :class: dropdown
# ```python
# lam = 1e-2
# def cross_entropy_with_l2(model, lam):
#     def loss_with_l2(logits, y):
#         loss = loss_fn(logits, y)
#         if model.training:
#             loss = loss + lam / 2 * sum((p ** 2).sum() for p in model.parameters())
#         return loss
#     return loss_with_l2
#
# by_hand, builtin = mlp(64), mlp(64)                      # same seed: same initial weights
# for net, loss, opt in [(by_hand, cross_entropy_with_l2(by_hand, lam), torch.optim.SGD(by_hand.parameters(), lr=0.1)),
#                        (builtin, loss_fn, torch.optim.SGD(builtin.parameters(), lr=0.1, weight_decay=lam))]:
#     opt.zero_grad()
#     loss(net(x), y).backward()
#     opt.step()
# print(all(torch.allclose(a, b, atol=1e-6) for a, b in zip(by_hand.parameters(), builtin.parameters())))
# ```
# `weight_decay` decays every parameter the optimizer holds, biases included. To exclude the
# biases, give the optimizer two **parameter groups**:
# `torch.optim.SGD([{"params": weights, "weight_decay": lam}, {"params": biases, "weight_decay": 0.0}], lr=0.1)`,
# with `weights = [p for p in net.parameters() if p.ndim > 1]` and the biases the rest.
# ````
#
# ```{exercise}
# :label: mlp-ex-mse-classification
# Train `mlp(256)` for 5 epochs with SGD+momentum (`lr=0.01, momentum=0.9`) using **MSE** between
# the softmax probabilities and one-hot targets instead of cross-entropy (write it as a loss
# function of `(logits, y)`). Compare the validation accuracy after each epoch with the
# cross-entropy run of section 3.6. Then explain the difference with the gradient with respect to
# the logit of the true class when the model is confidently wrong ($p_y \approx 0$).
# ```
#
# ````{solution} mlp-ex-mse-classification
# :class: dropdown
# ```python
# def mse_on_probabilities(logits, y):
#     return F.mse_loss(logits.softmax(1), F.one_hot(y, 10).float())
#
# net = mlp(256)
# h = quick_fit(net, torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9), 5, loss=mse_on_probabilities)
# print([round(a, 3) for a in h.val_acc])
# print([round(a, 3) for a in head_runs["logits, SGD+momentum"].val_acc])
# ```
# MSE learns much more slowly. (`helpers.fit` still reports accuracy, because the targets are class
# indices.) For cross-entropy, $\partial L/\partial z_y = p_y - 1 \approx -1$ when the model is
# confidently wrong: the strongest push exactly where it is needed. For MSE on probabilities the
# gradient passes through the softmax's derivative, $\partial p_y/\partial z_y = p_y(1 - p_y)$,
# which is $\approx 0$ when $p_y \approx 0$: the more wrong the model, the weaker the push. The
# same vanishing as sigmoid in section 3.8, and as softmax fed to `CrossEntropyLoss` in 3.6.
# ````
#
# ```{exercise}
# :label: mlp-ex-early-stopping
# Change `fit_early_stopping` so that it monitors validation **accuracy** (higher is better)
# instead of validation loss, and rerun it on the 500-image overfitting setup with `patience=5`
# and `patience=10`. Which epoch does it restore, and how do the restored model's validation loss
# and accuracy compare with the loss-monitoring run? Why is monitoring accuracy noisier?
# ```
#
# ````{solution} mlp-ex-early-stopping
# :class: dropdown
# Replace the comparison (and the initial value, since higher is better):
# ```python
# def fit_early_stopping_acc(model, optimizer, train_loader, *, max_epochs, patience):
#     best_acc, best_epoch, best_state = -1.0, 0, None
#     for epoch in range(1, max_epochs + 1):
#         helpers.train_epoch(model, train_loader, loss_fn, optimizer, device)
#         val = helpers.evaluate(model, val_loader, loss_fn, device)
#         if val["acc"] > best_acc:
#             best_acc, best_epoch = val["acc"], epoch
#             best_state = copy.deepcopy(model.state_dict())
#         elif epoch - best_epoch >= patience:
#             break
#     model.load_state_dict(best_state)
#     return best_epoch
#
# for patience in (5, 10):
#     big = mlp(512, 512)
#     epoch = fit_early_stopping_acc(big, torch.optim.Adam(big.parameters(), lr=1e-3),
#                                    make_loader(x_small, y_small), max_epochs=over_epochs, patience=patience)
#     val = helpers.evaluate(big, val_loader, loss_fn, device)
#     print(patience, epoch, round(val["loss"], 3), round(val["acc"], 3))
# ```
# Monitoring accuracy restores a later epoch (in our run, epoch 13 with either patience), with a
# point or so more validation accuracy and a clearly higher validation loss than the
# loss-monitoring run, which restored epoch 3. Accuracy moves in steps of one image
# (0.125 points here) and changes only when a prediction flips, so it plateaus and jumps; a short
# patience can stop on a plateau just before a jump, and the best value is partly luck (the
# maximum of noisy numbers). The loss changes smoothly with every probability, so it is the
# steadier signal, at the price of caring about confidence as well as correctness. A common
# compromise: monitor the loss, and keep training a little past its minimum.
# ````
