# %% [markdown]
# # 6. Autoencoders
#
# Every network so far learned from labels. An **autoencoder** learns from the images alone: it is
# trained to reproduce its input at its output, through a narrow **bottleneck**. The first half, the
# **encoder**, squeezes a 784-pixel digit into a short vector, its **code** (or *latent*
# representation); the second half, the **decoder**, rebuilds the image from the code. Copying through
# 16 numbers is only possible if the network finds what digits have in common, so the code becomes a
# compact description of the image — useful for compression, for removing noise, for visualising a
# data set, and, with one probabilistic twist (the *variational* autoencoder), for generating new digits.
#
# **You will learn to**
# - build an encoder–decoder pair and train it with `helpers.fit` on batches `(x, x)`: the target is the input;
# - build a convolutional decoder with `nn.ConvTranspose2d`, predict its output sizes, and see why it is
#   called *transposed*;
# - judge a reconstruction loss against two baselines: the average digit and PCA, the best *linear* autoencoder;
# - draw the latent space in 2-D, coloured by digit, with `torch.pca_lowrank`;
# - train a denoising autoencoder on (noisy, clean) pairs;
# - derive and implement a variational autoencoder (VAE): the reparameterisation trick, the KL term in
#   closed form, the ELBO; then generate digits from the prior, decode a grid of the latent space and
#   interpolate between two digits.
#
# **Prerequisites:** chapters 1–4: tensors, autograd, the MLP chapter ([chapter 3](03_mlp.ipynb), which
# introduces `helpers.fit`) and convolutions ([chapter 4](04_cnn.ipynb)). A little probability helps
# for the VAE: the normal distribution and expectations. **Time:** about 60 minutes; the notebook itself
# runs in under a minute on a laptop CPU.

# %%
# SETUP

# %%
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import helpers

# %% [markdown]
# The **parameters**. `epochs` is used by each of the three autoencoders of sections 6.2–6.5,
# `vae_epochs` by the VAE. `latent_dim` is the code size of the autoencoders; the VAE's latent space
# is 2-D by default so that it can be drawn and decoded as a grid (section 6.8). `noise_std` is the
# standard deviation of the noise the denoising autoencoder removes.

# %% tags=["parameters"]
dataset = "embedded"   # "embedded": 5,000 real MNIST digits, offline; "full": 60k/10k MNIST (downloads)
epochs = 10            # the fully connected, convolutional and denoising autoencoders
vae_epochs = 20        # the variational autoencoder
batch_size = 64
lr = 3e-3              # Adam, for every model
latent_dim = 16        # code size of the autoencoders
vae_latent_dim = 2     # the VAE's latent size: 2 can be drawn as is
noise_std = 0.5        # Gaussian noise added for the denoising autoencoder
seed = 0
device = None          # None: best available; or "cpu", "cuda", "mps"
max_batches = None     # e.g. 5 for a quick smoke run

# %% tags=["nbval-ignore-output"]
helpers.set_seed(seed)
device = helpers.get_device(device)
print(f"computing on: {device}")

# %% [markdown]
# ## 6.1 The data: the target is the input
#
# The images are loaded **without** normalisation this time, as pixel intensities in $[0, 1]$: the
# decoders end in a sigmoid, whose outputs lie in $[0, 1]$ too, and the VAE's loss (section 6.7)
# treats each pixel as a probability of ink. The labels are kept aside; they are used only to colour
# plots, never for training.
#
# `helpers.fit` trains on batches `(x, y)` and computes `loss_fn(model(x), y)`. For an autoencoder
# `y` is `x` itself, so a `TensorDataset(x, x)` is all it takes — no special case in the training loop.
# (It stores the tensor twice by reference, not two copies.) The function below builds the two loaders
# from any pair of datasets; section 6.5 will reuse it with noisy inputs.

# %%
train_ds, test_ds = helpers.mnist_datasets(dataset, normalize=False)
x_train, y_train = train_ds.tensors            # (N, 1, 28, 28) in [0, 1], and (N,) labels
x_test, y_test = test_ds.tensors

def make_loaders(train_pairs, test_pairs):
    """A shuffled, seeded training loader and an ordered test loader over (input, target) datasets."""
    train_loader = DataLoader(train_pairs, batch_size=batch_size, shuffle=True,
                              generator=torch.Generator().manual_seed(seed))
    return train_loader, DataLoader(test_pairs, batch_size=500)

train_loader, test_loader = make_loaders(TensorDataset(x_train, x_train), TensorDataset(x_test, x_test))
x, target = next(iter(train_loader))
assert x.shape == target.shape == (batch_size, 1, 28, 28) and torch.equal(x, target)
print(f"{len(x_train)} training and {len(x_test)} test images; a batch: {tuple(x.shape)}, "
      f"pixels in [{x.min():.0f}, {x.max():.0f}]")

# %% [markdown]
# Two numbers to judge any reconstruction by. A model that ignores its input and always outputs the
# **average training digit** has a mean squared error (MSE) equal to the average pixel variance; that
# is the bar to clear. And since all losses below are per-pixel MSEs: an error of $0.01$ means a typical
# pixel is off by about $\sqrt{0.01} = 0.1$, a tenth of the range from white to black.

# %%
mean_digit = x_train.mean(dim=0)                         # (1, 28, 28)
baseline_mse = F.mse_loss(mean_digit.expand_as(x_test), x_test).item()
print(f"MSE of always answering the average digit: {baseline_mse:.4f}")

# %% [markdown]
# One plotting helper for the whole chapter: it draws rows of images, one row per entry of a
# dictionary, labelled on the left (originals above, reconstructions below, and so on).

# %%
def show_rows(rows, size=0.7):
    """Draw each (n, 1, 28, 28) tensor of the dict ``rows`` as one row labelled by its key; return the axes."""
    ncols = max(len(images) for images in rows.values())
    _, axes = plt.subplots(len(rows), ncols, figsize=(size * ncols, size * len(rows)), squeeze=False)
    for ax_row, (label, images) in zip(axes, rows.items()):
        for ax, image in zip(ax_row, images.detach().cpu()):
            ax.imshow(image.squeeze(0), cmap="gray", vmin=0, vmax=1)
        for ax in ax_row:
            ax.set_xticks([])
            ax.set_yticks([])
        ax_row[0].set_ylabel(label, rotation=0, ha="right", va="center", fontsize=9)
    return axes

# %% [markdown]
# ## 6.2 A fully connected autoencoder
#
# The encoder $f_\phi$ maps an image $x \in \mathbb{R}^{784}$ to a code $z \in \mathbb{R}^{d}$ with
# $d$ = `latent_dim` = 16; the decoder $g_\theta$ maps the code back to an image
# $\hat x = g_\theta(f_\phi(x))$. Both are trained together to minimise the reconstruction error,
#
# $$L(\phi, \theta) = \frac{1}{N}\sum_{i=1}^{N} \frac{1}{784}\,\bigl\lVert x_i - g_\theta(f_\phi(x_i))\bigr\rVert^2,$$
#
# which is exactly `nn.MSELoss()` (it averages over every pixel of the batch). The bottleneck is what
# makes this non-trivial: with $d \geq 784$ and nothing else to stop it, the network could learn the
# identity map, a perfect and useless copy. The model keeps `encoder` and `decoder` as separate
# attributes, because later sections call them on their own: the encoder to look at codes, the decoder
# to turn codes of our choosing into images.

# %%
class AutoEncoder(nn.Module):
    """forward(x) = decoder(encoder(x)); encoder: images -> codes (N, d), decoder: codes -> images."""

    def __init__(self, encoder, decoder):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder

    def forward(self, x):
        return self.decoder(self.encoder(x))

def fc_autoencoder(latent_dim, hidden=256):
    encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(),
                            nn.Linear(hidden, latent_dim))                      # (N, 784) -> (N, d)
    decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(), nn.Linear(hidden, 784),
                            nn.Sigmoid(), nn.Unflatten(1, (1, 28, 28)))        # (N, d) -> (N, 1, 28, 28)
    return AutoEncoder(encoder, decoder)

def n_params(model):
    return sum(p.numel() for p in model.parameters())

model = fc_autoencoder(latent_dim)
code = model.encoder(x)
assert code.shape == (batch_size, latent_dim) and model(x).shape == x.shape
print(f"code {tuple(code.shape)}, reconstruction {tuple(model(x).shape)}, {n_params(model):,} parameters")

# %% [markdown]
# Train it with Adam and `helpers.fit`, exactly as a classifier. There is no accuracy column: the
# targets are images, not class labels, so `fit` reports the loss only. Watch the validation MSE
# fall well below the average-digit baseline.

# %%
torch.manual_seed(seed)
fc_model = fc_autoencoder(latent_dim).to(device)
loss_fn = nn.MSELoss()
fc_history = helpers.fit(fc_model, train_loader, test_loader, loss_fn,
                         torch.optim.Adam(fc_model.parameters(), lr=lr), epochs=epochs, device=device,
                         max_batches=max_batches, progress=False)

# %% tags=["remove-cell"]
DEFAULTS = ((dataset, epochs, vae_epochs, batch_size, lr, latent_dim, vae_latent_dim, noise_std, seed, max_batches)
            == ("embedded", 10, 20, 64, 3e-3, 16, 2, 0.5, 0, None))
if DEFAULTS:
    assert fc_history.val_loss[-1] < 0.5 * fc_history.val_loss[0], fc_history.val_loss
    assert fc_history.val_loss[-1] < 0.3 * baseline_mse, (fc_history.val_loss, baseline_mse)
    assert all(a > b for a, b in zip(fc_history.train_loss, fc_history.train_loss[1:])), fc_history.train_loss

# %% [markdown]
# The reconstructions of ten test digits the network has never seen, originals above, reconstructions
# below. For most digits sixteen numbers are enough to keep the identity, the slant and the stroke
# width; what goes missing is fine detail — sharp stroke ends, small gaps, the odd flourish — which comes
# back blurred, an average over training digits with similar codes. An unusual shape (like the looped
# two here) can come back as a smudge: the code has no room for what few training digits share.

# %%
fc_model.eval()
with torch.no_grad():
    x_show = x_test[:10].to(device)
    show_rows({"original": x_show, "fully connected": fc_model(x_show)})
plt.show()

# %% [markdown]
# ## 6.3 A convolutional autoencoder
#
# A convolutional encoder is chapter 4's feature extractor: two stride-2 convolutions take the image
# from $28\times 28$ to $14\times 14$ to $7\times 7$. The decoder has to go the other way, from small
# maps to large ones, and the layer for that is the **transposed convolution**, `nn.ConvTranspose2d`.
# Each input pixel *stamps* a copy of the $k\times k$ kernel, scaled by the pixel's value, into the
# output, with the stamps $s$ pixels apart; where stamps overlap, they add up. With a $2\times 2$ input,
# a $3\times 3$ kernel of ones and stride 2, the overlaps (the middle row and column) are plain to see:

# %%
x_small = torch.tensor([[1., 2.], [3., 4.]]).reshape(1, 1, 2, 2)   # (N, C_in, H, W)
ones_kernel = torch.ones(1, 1, 3, 3)                                # (C_in, C_out, k, k) for transposed convs
print(F.conv_transpose2d(x_small, ones_kernel, stride=2).squeeze())

# %% [markdown]
# The output size inverts chapter 4's formula $n_\text{out} = \lfloor (n + 2p - k)/s \rfloor + 1$:
#
# $$n_\text{out} = (n - 1)\,s - 2p + k + \text{output\_padding}.$$
#
# Here padding $p$ *removes* $p$ rows and columns from each border of the stamped result. And because
# the convolution's formula rounds down, it maps *two* sizes to the same output: with $k = 3, s = 2,
# p = 1$, both 13 and 14 give 7. Going back from 7 is therefore ambiguous, and `output_padding` (0 or,
# with stride 2, 1) says which size to produce. Check the formula against `nn.ConvTranspose2d`:

# %%
def conv_transpose_out(n, k, s=1, p=0, output_padding=0):
    return (n - 1) * s - 2 * p + k + output_padding

for n, k, s, p, op in [(2, 3, 2, 0, 0), (7, 3, 2, 1, 0), (7, 3, 2, 1, 1), (14, 3, 2, 1, 1), (7, 4, 2, 1, 0)]:
    layer = nn.ConvTranspose2d(1, 1, k, stride=s, padding=p, output_padding=op)
    got = layer(torch.zeros(1, 1, n, n)).shape[-1]
    assert got == conv_transpose_out(n, k, s, p, op)
    print(f"n={n:2d} k={k} s={s} p={p} output_padding={op}:  ->  {got:2d}")

# %% [markdown]
# Why *transposed*? A convolution is linear, so it is multiplication by some (large, sparse) matrix
# $C$: $y = Cx$. The transposed convolution with the same kernel multiplies by $C^\top$. And $C^\top$
# is exactly what backpropagation needs: the gradient of $\langle Cx, v\rangle$ with respect to $x$ is
# $C^\top v$. So a transposed convolution is the backward pass of a convolution — which is how
# autograd (chapter 2) computes a convolution's input gradient. Check it:

# %%
g = torch.Generator().manual_seed(seed)
x_in = torch.randn(1, 1, 14, 14, generator=g, requires_grad=True)
kernel = torch.randn(1, 1, 3, 3, generator=g)
v = torch.randn(1, 1, 7, 7, generator=g)                      # same shape as the convolution's output
(F.conv2d(x_in, kernel, stride=2, padding=1) * v).sum().backward()
transposed = F.conv_transpose2d(v, kernel, stride=2, padding=1, output_padding=1)   # (1, 1, 14, 14)
print(transposed.shape, torch.allclose(x_in.grad, transposed, atol=1e-5))

# %% [markdown]
# The convolutional autoencoder mirrors its encoder: `Conv2d` with stride 2 twice on the way down,
# `ConvTranspose2d` with stride 2 (and `output_padding=1`, to land on 14 and 28 rather than 13 and 25)
# twice on the way up, and a linear layer on each side of the 16-number code. Follow a batch through
# it, asserting every shape:

# %%
def conv_autoencoder(latent_dim, width=16):
    encoder = nn.Sequential(
        nn.Conv2d(1, width, 3, stride=2, padding=1), nn.ReLU(),              # (N, 16, 14, 14)
        nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), nn.ReLU(),      # (N, 32, 7, 7)
        nn.Flatten(), nn.Linear(2 * width * 7 * 7, latent_dim))              # (N, d)
    decoder = nn.Sequential(
        nn.Linear(latent_dim, 2 * width * 7 * 7), nn.ReLU(),
        nn.Unflatten(1, (2 * width, 7, 7)),                                  # (N, 32, 7, 7)
        nn.ConvTranspose2d(2 * width, width, 3, stride=2, padding=1, output_padding=1), nn.ReLU(),  # (N, 16, 14, 14)
        nn.ConvTranspose2d(width, 1, 3, stride=2, padding=1, output_padding=1), nn.Sigmoid())      # (N, 1, 28, 28)
    return AutoEncoder(encoder, decoder)

expected = {"Conv2d": [(16, 14, 14), (32, 7, 7)], "Linear": [(latent_dim,), (32 * 7 * 7,)],
            "Unflatten": [(32, 7, 7)], "ConvTranspose2d": [(16, 14, 14), (1, 28, 28)]}
out = x[:2]
for layer in [*conv_autoencoder(latent_dim).encoder, *conv_autoencoder(latent_dim).decoder]:
    out = layer(out)
    name = type(layer).__name__
    if name in expected:
        assert out.shape[1:] == expected[name].pop(0), (name, out.shape)
        print(f"{name:16s} -> {tuple(out.shape)}")
assert out.shape == (2, 1, 28, 28)

# %% [markdown]
# Train it like the fully connected one. It has about a seventh of the parameters, most of them in the
# two linear layers around the code. Its first epoch stalls at the average-digit baseline — the decoder
# first learns to paint the average digit, then to depart from it — before it catches up. (The last
# digit of this log can differ with the number of CPU threads: convolutions sum in a thread-dependent
# order, and training amplifies the rounding differences. Hence the tag that keeps the tests from
# comparing it; hidden checks test the claims instead.)

# %% tags=["nbval-ignore-output"]
torch.manual_seed(seed)
conv_model = conv_autoencoder(latent_dim).to(device)
conv_history = helpers.fit(conv_model, train_loader, test_loader, loss_fn,
                           torch.optim.Adam(conv_model.parameters(), lr=lr), epochs=epochs, device=device,
                           max_batches=max_batches, progress=False)
print(f"parameters: fully connected {n_params(fc_model):,}, convolutional {n_params(conv_model):,}")

# %% tags=["remove-cell"]
assert n_params(conv_model) < n_params(fc_model) / 6
if DEFAULTS:
    assert conv_history.val_loss[-1] < 0.5 * conv_history.val_loss[0], conv_history.val_loss
    assert conv_history.val_loss[0] > 0.9 * baseline_mse, conv_history.val_loss   # the stall
    assert conv_history.val_loss[-1] < fc_history.val_loss[-1], (conv_history.val_loss, fc_history.val_loss)

# %% [markdown]
# Both models' learning curves, with the average-digit baseline for scale:

# %%
fig, ax = plt.subplots(figsize=(5, 3))
epochs_axis = range(1, len(fc_history) + 1)
ax.plot(epochs_axis, fc_history.val_loss, "o-", label="fully connected")
ax.plot(epochs_axis, conv_history.val_loss, "s-", label="convolutional")
ax.axhline(baseline_mse, color="gray", ls=":", label="average digit")
ax.set(xlabel="epoch", ylabel="test MSE", ylim=(0, None))
ax.legend()
plt.show()

# %% [markdown]
# With the same 16-number code, the convolutional autoencoder ends slightly ahead of the fully
# connected one, with far fewer weights. Here are the same ten digits through both:

# %%
conv_model.eval()
with torch.no_grad():
    show_rows({"original": x_show, "fully connected": fc_model(x_show), "convolutional": conv_model(x_show)})
plt.show()

# %% [markdown]
# ## 6.4 The latent space, and PCA
#
# What do the codes look like? They have 16 dimensions; to draw them, project them onto the two
# directions along which they vary most — the first two **principal components** (PCA).
# `torch.pca_lowrank(A, q)` centres the rows of `A` (subtracts their mean) and returns $U, S, V$ with
# $A - \bar A \approx U \operatorname{diag}(S)\, V^\top$; the columns of $V$ are the principal
# directions, $S^2$ the variance along each (times $N - 1$), and $(A - \bar A)V$ the coordinates in
# that basis. It is a *randomised* algorithm: it works on a random projection of `A` (drawn from the
# global random generator) and refines it with `niter` extra passes, so with few components it is much
# cheaper than a full SVD, and approximate: here within about a percent of the exact values.
#
# The plot below is the convolutional autoencoder's codes of the 1,000 test digits, **projected to 2-D
# with PCA** (the bottleneck itself is 16-D), one colour per digit. The autoencoder never saw a label.

# %%
with torch.no_grad():
    codes = conv_model.encoder(x_test.to(device)).cpu()                   # (1000, 16)
U, S, V = torch.pca_lowrank(codes, q=2, niter=4)                          # V: (16, 2)
codes_2d = (codes - codes.mean(dim=0)) @ V                                # (1000, 2)
explained = (S ** 2).sum() / ((codes - codes.mean(dim=0)) ** 2).sum()
fig, ax = plt.subplots(figsize=(5, 4))
points = ax.scatter(codes_2d[:, 0], codes_2d[:, 1], c=y_test, cmap="tab10", s=6)
fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
ax.set(xlabel="principal component 1", ylabel="principal component 2")
plt.show()
print(f"the two directions shown hold {explained:.0%} of the codes' variance")

# %% tags=["remove-cell"]
assert codes.shape == (len(x_test), latent_dim) and codes_2d.shape == (len(x_test), 2)
centred = codes - codes.mean(dim=0)
S_exact = torch.linalg.svdvals(centred)
assert torch.allclose(S, S_exact[:2], rtol=1e-2), (S, S_exact[:2])

# %% [markdown]
# Digits of one kind gather in regions: the ones in a tight cluster, the zeros in a region of their own
# on the opposite side, fours, sevens and nines sharing a third. Twos, threes, fives, sixes and eights
# overlap in the middle of this 2-D shadow; the 16-D codes separate them better than any two directions
# can show — the printed fraction says how much of the codes' spread the picture leaves out.
#
# PCA is more than a plotting tool here. Applied to the **pixels**, it is the best *linear*
# autoencoder: among all encoders $z = W^\top(x - \bar x)$ and decoders $\hat x = \bar x + W z$ with
# $d$ columns in $W$, the top $d$ principal directions give the smallest MSE (the Eckart–Young
# theorem). So PCA with 16 components is a fair baseline for a 16-number code, and the gap to the
# trained autoencoders measures what their non-linearities buy:

# %%
x_flat, x_test_flat = x_train.flatten(1), x_test.flatten(1)               # (N, 784)
_, _, W = torch.pca_lowrank(x_flat, q=latent_dim, niter=4)                # (784, 16)
pixel_mean = x_flat.mean(dim=0)
pca_codes = (x_test_flat - pixel_mean) @ W                                # encode: (1000, 16)
pca_recon = pca_codes @ W.T + pixel_mean                                  # decode: (1000, 784)
pca_mse = F.mse_loss(pca_recon, x_test_flat).item()
for name, mse in [("average digit", baseline_mse), (f"PCA, {latent_dim} components", pca_mse),
                  ("fully connected autoencoder", fc_history.val_loss[-1]),
                  ("convolutional autoencoder", conv_history.val_loss[-1])]:
    print(f"{name:28s} test MSE {mse:.3f}")

# %% tags=["remove-cell"]
assert W.shape == (784, latent_dim)
if DEFAULTS:
    assert conv_history.val_loss[-1] < fc_history.val_loss[-1] < 0.75 * pca_mse < baseline_mse

# %% [markdown]
# ## 6.5 A denoising autoencoder
#
# A **denoising autoencoder** gets a corrupted image as input and the clean one as target: batches
# are `(noisy_x, clean_x)`. To succeed it cannot just copy; it must know what digits look like and
# pull the input back towards one. Here the corruption is Gaussian noise with standard deviation
# `noise_std` = 0.5 (clipped back into $[0, 1]$), drawn **once** from a seeded generator, so every run
# sees the same noisy images; the test images get their own noise (seed + 1), so the model is measured
# on noise it has never seen. The training loop does not change: only the dataset does.

# %%
def noisy_pairs(x_clean, std, seed):
    """TensorDataset of (noisy, clean) pairs; the Gaussian noise is fixed by ``seed``, the result clipped to [0, 1]."""
    g = torch.Generator().manual_seed(seed)
    noisy = (x_clean + std * torch.randn(x_clean.shape, generator=g)).clamp(0, 1)
    return TensorDataset(noisy, x_clean)

noisy_train_loader, noisy_test_loader = make_loaders(noisy_pairs(x_train, noise_std, seed),
                                                     noisy_pairs(x_test, noise_std, seed + 1))
x_noisy, x_clean = next(iter(noisy_train_loader))
assert x_noisy.shape == x_clean.shape == (batch_size, 1, 28, 28)
print(f"MSE between noisy and clean training images: {F.mse_loss(x_noisy, x_clean):.4f}")

# %% [markdown]
# Same architecture as section 6.3, new weights, trained on the noisy pairs:

# %% tags=["nbval-ignore-output"]
torch.manual_seed(seed)
denoiser = conv_autoencoder(latent_dim).to(device)
denoise_history = helpers.fit(denoiser, noisy_train_loader, noisy_test_loader, loss_fn,
                              torch.optim.Adam(denoiser.parameters(), lr=lr), epochs=epochs, device=device,
                              max_batches=max_batches, progress=False)

# %% [markdown]
# Compare three distances to the clean test images: the noisy input itself, the plain convolutional
# autoencoder of section 6.3 given the noisy input, and the denoising autoencoder. (The digits in the
# third decimal depend on the thread count, as for the training logs; the hidden checks test the
# comparison itself.)

# %% tags=["nbval-ignore-output"]
noisy_test, clean_test = (t.to(device) for t in noisy_test_loader.dataset.tensors)
denoiser.eval()
with torch.no_grad():
    mse_noisy = F.mse_loss(noisy_test, clean_test).item()
    mse_plain = F.mse_loss(conv_model(noisy_test), clean_test).item()
    mse_denoised = F.mse_loss(denoiser(noisy_test), clean_test).item()
print(f"MSE to the clean test images:  noisy input {mse_noisy:.3f}   plain autoencoder {mse_plain:.3f}   "
      f"denoising autoencoder {mse_denoised:.3f}")

# %% tags=["remove-cell"]
if DEFAULTS:
    assert mse_denoised < 0.25 * mse_noisy, (mse_denoised, mse_noisy)   # 'about four fifths' removed
    assert mse_denoised < 0.6 * mse_plain and mse_plain < mse_noisy, (mse_denoised, mse_plain, mse_noisy)

# %% [markdown]
# The denoiser removes about four fifths of the noise's error. The plain autoencoder barely helps: it
# never saw noise, so the speckles push its codes to places its decoder has no good answer for, and
# it returns blotchy shapes. Noisy inputs, both outputs and the clean targets:

# %%
with torch.no_grad():
    show_rows({"noisy input": noisy_test[:10], "plain AE": conv_model(noisy_test[:10]),
               "denoising AE": denoiser(noisy_test[:10]), "clean": clean_test[:10]})
plt.show()

# %% [markdown]
# ## 6.6 Can an autoencoder generate digits?
#
# The decoder turns *any* 16 numbers into an image. So, to make a new digit, pick a code and decode it?
# The question is which code. The autoencoder's codes fill some irregular region of
# $\mathbb{R}^{16}$, and nothing in its training says what lies between or around them. Try the
# natural guess: draw each of the 16 numbers from a normal distribution with the same mean and
# standard deviation as that coordinate has over the training codes.

# %%
with torch.no_grad():
    train_codes = conv_model.encoder(x_train.to(device))                  # (N, 16)
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(10, latent_dim, generator=g).to(device)               # (10, 16)
    z = train_codes.mean(dim=0) + train_codes.std(dim=0) * z
    show_rows({"decoded": conv_model.decoder(z)})
plt.show()

# %% [markdown]
# Some could pass for digits; most are smudges or blends of two digits: random codes land between the
# regions the training codes occupy, where the decoder was never asked to produce anything sensible.
# The coordinates of the codes are also correlated, which independent draws ignore. We had to *guess*
# the codes' distribution after training, and the guess is poor. To generate, we need to **know** it —
# better, to *choose* it, and train the encoder to follow it. That is what a variational autoencoder does.
#
# ## 6.7 The variational autoencoder
#
# A VAE (Kingma & Welling, 2014) turns the autoencoder into a probabilistic model with a simple
# recipe for making a digit:
#
# 1. draw a code from the **prior** $p(z) = \mathcal{N}(0, I)$, a standard normal in $k$ dimensions;
# 2. the decoder turns it into a probability of ink for each pixel: $p_\theta(x \mid z)$ is a
#    Bernoulli distribution per pixel with probability $\sigma(g_\theta(z))_j$.
#
# Training should make the data likely under this model. Its likelihood $\log p_\theta(x)$ is an
# integral over all codes and has no closed form; instead, the **encoder** proposes, for each image,
# a distribution over the codes that could have produced it, a normal with a diagonal covariance:
#
# $$q_\phi(z \mid x) = \mathcal{N}\bigl(\mu_\phi(x),\ \operatorname{diag}\sigma^2_\phi(x)\bigr).$$
#
# For any such $q$, the log-likelihood is bounded below by the **evidence lower bound** (ELBO):
#
# $$\log p_\theta(x) \;\geq\; \underbrace{\mathbb{E}_{z \sim q_\phi(z \mid x)}\bigl[\log p_\theta(x \mid z)\bigr]}_{\text{reconstruction}}
# \;-\; \underbrace{D_\text{KL}\bigl(q_\phi(z \mid x)\,\big\|\,p(z)\bigr)}_{\text{stay close to the prior}} \;=\; \text{ELBO}.$$
#
# The VAE maximises the ELBO over $\phi$ and $\theta$ together, so the loss is $-\text{ELBO}$, a sum
# of two terms per image:
#
# - the **reconstruction** term: with Bernoulli pixels, $-\log p_\theta(x \mid z)$ is the binary
#   cross-entropy between the image and the decoder's pixel probabilities, **summed** over the 784
#   pixels (a sum, not a mean: it is the log-probability of the whole image). The expectation is
#   estimated with one sample of $z$ per image;
# - the **KL term** pulls each image's $q_\phi(z \mid x)$ towards $\mathcal{N}(0, I)$. That is the
#   part the plain autoencoder lacks: it makes the codes fill the region the prior samples from.
#
# For a diagonal Gaussian against $\mathcal{N}(0, I)$ the KL divergence has a closed form. In one
# dimension, with $q = \mathcal{N}(\mu, \sigma^2)$ and $p = \mathcal{N}(0, 1)$,
# $D_\text{KL} = \mathbb{E}_q[\log q(z) - \log p(z)] = -\tfrac12\log\sigma^2 - \tfrac12 + \tfrac12(\sigma^2 + \mu^2)$,
# and the $k$ independent dimensions add up:
#
# $$D_\text{KL}\bigl(q_\phi(z \mid x)\,\|\,\mathcal{N}(0, I)\bigr) = \frac12\sum_{j=1}^{k}\bigl(\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2\bigr) \;\geq\; 0,$$
#
# zero only when $\mu = 0$ and $\sigma = 1$. The encoder outputs $\log\sigma^2$ ("logvar") rather than
# $\sigma$: any real number is a valid log-variance, while $\sigma$ would have to be kept positive.
# Check the formula against `torch.distributions` and against a Monte Carlo estimate of
# $\mathbb{E}_q[\log q(z) - \log p(z)]$:

# %%
from torch.distributions import Normal, kl_divergence

def kl_to_standard_normal(mu, logvar):
    """KL(N(mu, diag(exp(logvar))) || N(0, I)) per row: shape (N,)."""
    return 0.5 * (mu ** 2 + logvar.exp() - 1 - logvar).sum(dim=1)

g = torch.Generator().manual_seed(seed)
mu, logvar = torch.randn(3, 2, generator=g), torch.randn(3, 2, generator=g)
q, prior = Normal(mu, (0.5 * logvar).exp()), Normal(0.0, 1.0)
z = q.sample((100_000,))                                                  # (100000, 3, 2)
monte_carlo = (q.log_prob(z) - prior.log_prob(z)).sum(-1).mean(0)         # (3,)
print("closed form       ", kl_to_standard_normal(mu, logvar))
print("torch.distributions", kl_divergence(q, prior).sum(-1))
print("Monte Carlo        ", monte_carlo)

# %% tags=["remove-cell"]
assert torch.allclose(kl_to_standard_normal(mu, logvar), kl_divergence(q, prior).sum(-1), atol=1e-5)
assert torch.allclose(kl_to_standard_normal(mu, logvar), monte_carlo, rtol=0.05, atol=0.02)
assert torch.allclose(kl_to_standard_normal(torch.zeros(1, 3), torch.zeros(1, 3)), torch.zeros(1))

# %% [markdown]
# **The reparameterisation trick.** The reconstruction term needs a sample $z \sim q_\phi(z \mid x)$,
# and gradients must flow through that sample back into the encoder. Sampling itself has no gradient,
# but a normal sample can be written as a deterministic function of the parameters and of noise that
# does not depend on them:
#
# $$z = \mu + \sigma \odot \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, I).$$
#
# Now $\partial z / \partial \mu = 1$ and $\partial z / \partial \sigma = \varepsilon$, and autograd
# handles the rest. `torch.distributions` knows the trick too: `rsample()` ("reparameterised sample")
# keeps the graph, `sample()` does not:

# %%
mu = torch.zeros(4, requires_grad=True)
sigma = torch.ones(4, requires_grad=True)
eps = torch.randn(4, generator=g)
z = mu + sigma * eps                                   # reparameterised: a function of mu and sigma
z.sum().backward()
print("dz/dmu", mu.grad, " dz/dsigma == eps:", torch.equal(sigma.grad, eps))
print("rsample keeps the graph:", Normal(mu, sigma).rsample().requires_grad,
      "  sample does not:", Normal(mu, sigma).sample().requires_grad)

# %% [markdown]
# **The model.** The encoder ends in a linear layer with $2k$ outputs, split into $\mu$ and
# $\log\sigma^2$; the decoder outputs one **logit** per pixel, and $\sigma(\text{logit})$ is its ink
# probability. (The loss takes logits, because `binary_cross_entropy_with_logits` is numerically safer
# than a sigmoid followed by a logarithm.)
#
# One design choice concerns `helpers.fit`. It computes `loss_fn(model(x), y)`, and the VAE's loss needs
# three things from the model: the logits, $\mu$ and $\log\sigma^2$. `fit` also checks that the model
# returned one output per example, `output.shape[0] == len(y)`, so `forward` must return a single
# tensor. The simplest honest solution: `forward` returns the three **concatenated** along dimension 1,
# shape `(N, 784 + 2k)`, and the loss `split`s them apart again. Outside training, `encode` and `decode`
# are called directly.

# %%
class VAE(nn.Module):
    """q(z|x) = N(mu, diag(exp(logvar))) from the encoder; p(x|z) = Bernoulli(sigmoid(decoder(z))) per pixel."""

    def __init__(self, latent_dim, hidden=256):
        super().__init__()
        self.latent_dim = latent_dim
        self.encoder = nn.Sequential(nn.Flatten(), nn.Linear(784, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 2 * latent_dim))              # (N, 2k)
        self.decoder = nn.Sequential(nn.Linear(latent_dim, hidden), nn.ReLU(),
                                     nn.Linear(hidden, 784))                         # logits, (N, 784)

    def encode(self, x):
        mu, logvar = self.encoder(x).chunk(2, dim=1)                                 # (N, k) each
        return mu, logvar

    def decode(self, z):
        return torch.sigmoid(self.decoder(z)).view(-1, 1, 28, 28)                    # ink probabilities

    def forward(self, x):
        mu, logvar = self.encode(x)
        z = mu + (0.5 * logvar).exp() * torch.randn_like(mu)                         # z = mu + sigma * eps
        return torch.cat([self.decoder(z), mu, logvar], dim=1)                       # (N, 784 + 2k), for fit

# %% [markdown]
# The loss unpacks the output and returns $-\text{ELBO}$ averaged over the batch, in **nats per image**
# (natural-log units; divide by $784 \ln 2$ for bits per pixel). `terms` returns the two parts
# separately, to look at them after training; `beta` weights the KL term (1 for the VAE proper; see
# exercise 3).

# %%
class VAELoss(nn.Module):
    """-ELBO per image: summed Bernoulli cross-entropy of the pixels + beta * KL(q(z|x) || N(0, I))."""

    def __init__(self, beta=1.0):
        super().__init__()
        self.beta = beta

    def terms(self, output, x):
        k = (output.shape[1] - 784) // 2
        logits, mu, logvar = output.split([784, k, k], dim=1)                  # (N, 784), (N, k), (N, k)
        recon = F.binary_cross_entropy_with_logits(logits, x.flatten(1), reduction="none").sum(dim=1)
        return recon.mean(), kl_to_standard_normal(mu, logvar).mean()          # both per image

    def forward(self, output, x):
        recon, kl = self.terms(output, x)
        return recon + self.beta * kl

torch.manual_seed(seed)
vae = VAE(vae_latent_dim).to(device)
vae_loss_fn = VAELoss()
output = vae(x.to(device))
assert output.shape == (batch_size, 784 + 2 * vae_latent_dim)
print(f"packed output {tuple(output.shape)}; -ELBO of the untrained VAE {vae_loss_fn(output, x.to(device)):.1f} nats per image")

# %% [markdown]
# An untrained decoder gives every pixel probability about $\frac12$, which costs $784 \ln 2 \approx 543$
# nats per image. Train with `helpers.fit`, on the same `(x, x)` loaders as the first autoencoders.
# `fit`'s validation loss is also an estimate from one random $z$ per image — the VAE samples in
# `eval()` mode too — so it wobbles a little from run to run of `evaluate`.

# %%
vae_history = helpers.fit(vae, train_loader, test_loader, vae_loss_fn,
                          torch.optim.Adam(vae.parameters(), lr=lr), epochs=vae_epochs, device=device,
                          max_batches=max_batches, progress=False)

# %% [markdown]
# The two terms on the test set, at the end of training: the KL term is the price, in nats, of
# describing each image's code with a distribution that stays close to the prior.

# %%
vae.eval()
torch.manual_seed(seed)
with torch.no_grad():
    recon, kl = vae_loss_fn.terms(vae(x_test.to(device)), x_test.to(device))
print(f"test set, per image: reconstruction {recon:.1f} nats + KL {kl:.2f} nats = -ELBO {recon + kl:.1f} nats")

# %% tags=["remove-cell"]
assert kl.item() >= 0
if DEFAULTS:
    assert kl.item() > 1, kl
    assert vae_history.val_loss[-1] < 0.9 * vae_history.val_loss[0], vae_history.val_loss
    assert vae_history.val_loss[-1] < 0.35 * 543, vae_history.val_loss   # untrained: 784 ln 2 = 543
    assert vae_history.train_loss[-1] < vae_history.train_loss[0]

# %% [markdown]
# ## 6.8 Generating with the VAE
#
# With a 2-D latent space, the codes can be drawn **as they are**, no projection needed. Each test
# digit is plotted at its mean code $\mu_\phi(x)$, coloured by its (unused) label. The KL term has
# done its job: the cloud is centred close to the origin with a spread of about 1 in each direction —
# the region $\mathcal{N}(0, I)$ samples from — and digits still gather by kind, though with two
# numbers per image many kinds have to share the crowded centre.

# %%
with torch.no_grad():
    mu_test, logvar_test = (t.cpu() for t in vae.encode(x_test.to(device)))    # (1000, k) each
fig, ax = plt.subplots(figsize=(5, 4))
points = ax.scatter(mu_test[:, 0], mu_test[:, 1], c=y_test, cmap="tab10", s=6)
fig.colorbar(points, ax=ax, ticks=range(10), label="digit")
ax.set(xlabel="$z_1$", ylabel="$z_2$", aspect="equal")
plt.show()
print(f"mean of the codes {mu_test.mean(dim=0).numpy().round(2)}, standard deviation {mu_test.std(dim=0).numpy().round(2)}")

# %% tags=["remove-cell"]
if DEFAULTS:
    assert mu_test.mean(dim=0).abs().max() < 0.3 and ((0.5 < mu_test.std(dim=0)) & (mu_test.std(dim=0) < 1.5)).all()

# %% [markdown]
# **Decoding a grid.** Now walk over the latent space: a $15 \times 15$ grid of codes, decoded. The grid
# is not evenly spaced: its coordinates are the quantiles of the standard normal at 5 %, 11.4 %, …,
# 95 % (`Normal(0, 1).icdf`), so each cell covers the same probability under the prior and the dense
# centre is not squeezed into a few tiles. (With `vae_latent_dim` above 2, the other coordinates are
# held at 0.) The 225 decoded images are laid out as one big image with a reshape and a `permute`,
# chapter 1's tools:

# %%
n = 15
ticks = Normal(0.0, 1.0).icdf(torch.linspace(0.05, 0.95, n))                 # (15,)
z = torch.zeros(n, n, vae_latent_dim)
z[..., 0] = ticks.view(1, n)                                                  # z1 grows to the right
z[..., 1] = ticks.flip(0).view(n, 1)                                          # z2 grows upwards
with torch.no_grad():
    tiles = vae.decode(z.view(-1, vae_latent_dim).to(device)).cpu()          # (225, 1, 28, 28)
canvas = tiles.view(n, n, 28, 28).permute(0, 2, 1, 3).reshape(n * 28, n * 28)  # rows of tiles side by side
fig, ax = plt.subplots(figsize=(5, 5))
ax.imshow(canvas, cmap="gray")
ax.axis("off")
plt.show()

# %% [markdown]
# There are no holes: every point of the grid decodes to something digit-like, and neighbouring tiles
# differ only a little, so the digits morph continuously into each other. In this run the
# neighbourhoods are those of the scatter plot: ones down the left edge, sevens and nines along the
# top, threes and eights along the bottom, zeros in the lower right corner. Two dimensions cannot hold
# every digit's variety, though: the kinds crowded in the middle of the scatter (fours, fives, sixes)
# get hardly a tile of their own, and the decoder renders crowded regions as blurry blends.
#
# **Samples from the prior.** The generative recipe of section 6.7, literally: draw
# $z \sim \mathcal{N}(0, I)$, decode. No guessing is involved this time: the training made the
# codes follow this distribution.

# %%
g = torch.Generator().manual_seed(seed)
z = torch.randn(20, vae_latent_dim, generator=g).to(device)                  # (20, k) from the prior
with torch.no_grad():
    samples = vae.decode(z)                                                   # (20, 1, 28, 28)
assert samples.shape == (20, 1, 28, 28)
show_rows({"": samples[:10], " ": samples[10:]})
plt.show()

# %% [markdown]
# They are blurry, and many are the blends of the crowded centre. That is the 2-D bottleneck, not the
# method: the reconstruction term of 6.7 says a 2-D code loses far more of each image than the 16-D
# codes of the autoencoders. Set `vae_latent_dim = 8` in the parameters cell and rerun: measured, the
# test $-\text{ELBO}$ drops from about 165 to 124 nats (reconstruction 108, KL 16) and the samples
# become distinct, sharper digits — at the price of a latent space you can no longer draw as it is.

# %% [markdown]
# **Interpolating between two digits.** Encode two test digits, a one and a zero, walk in a straight
# line from one mean code to the other, and decode the points along the way. The row below does the
# same with the plain convolutional autoencoder of 6.3, between its 16-D codes of the same two images.

# %%
start, end = x_test[y_test == 1][:1].to(device), x_test[y_test == 0][:1].to(device)   # (1, 1, 28, 28) each
t = torch.linspace(0, 1, 10, device=device).view(-1, 1)                               # (10, 1)
with torch.no_grad():
    mu_start, mu_end = vae.encode(start)[0], vae.encode(end)[0]                        # (1, k) each
    vae_path = vae.decode((1 - t) * mu_start + t * mu_end)                             # (10, 1, 28, 28)
    code_start, code_end = conv_model.encoder(start), conv_model.encoder(end)          # (1, 16) each
    ae_path = conv_model.decoder((1 - t) * code_start + t * code_end)
show_rows({"VAE": vae_path, "plain AE": ae_path})
plt.show()

# %% [markdown]
# Both paths change gradually. The VAE's path crosses its 2-D plane, so it passes through the digits
# that lie between ones and zeros there — in this run something like a two, a three, an eight — each
# step a digit-like image. The plain autoencoder's path runs through its 16-D code space, where the one
# and the zero are not separated by other digits; its middle frames are neither: a stroke that grows a
# loop. Straight lines between codes are meaningful in a VAE's latent space because the KL term packs
# the codes into one connected region; in a plain autoencoder nothing guarantees it.

# %% [markdown]
# ## Summary
#
# - An autoencoder is an encoder and a decoder trained to reproduce the input through a bottleneck;
#   with `helpers.fit` the batches are simply `(x, x)`, and the loss is a reconstruction error.
# - Judge a reconstruction MSE against the average digit and against PCA, the optimal linear
#   autoencoder; here the non-linear ones beat PCA with the same 16 numbers by a wide margin.
# - `nn.ConvTranspose2d` upsamples by stamping the kernel, output size $(n-1)s - 2p + k + \text{output\_padding}$;
#   it multiplies by the transpose of the convolution's matrix, which is why it is also a convolution's backward pass.
# - The codes organise the digits by kind without ever seeing a label; `torch.pca_lowrank` projects
#   them to 2-D for a look.
# - A denoising autoencoder is trained on `(noisy_x, clean_x)` pairs; it removes noise far better than
#   a plain autoencoder, which only ever saw clean inputs.
# - A plain autoencoder cannot generate: nothing says where its codes are. A VAE makes the encoder output
#   a distribution $\mathcal{N}(\mu, \operatorname{diag}\sigma^2)$, samples it with $z = \mu + \sigma\odot\varepsilon$
#   (the reparameterisation trick), and minimises $-\text{ELBO}$ = reconstruction + KL; the KL term,
#   $\frac12\sum_j(\mu_j^2 + \sigma_j^2 - 1 - \log\sigma_j^2)$, keeps the codes where the prior
#   $\mathcal{N}(0, I)$ samples, so decoding prior samples, grid points or interpolations gives digits.
# - When a model must hand the loss several tensors and `fit` expects one output, pack them with
#   `torch.cat` in `forward` and `split` them in the loss.
#
# ## Exercises
#
# ```{exercise}
# :label: autoencoder-ex-2d
# Train the fully connected autoencoder of 6.2 with a 2-D bottleneck, `fc_autoencoder(2)`, for `epochs`
# epochs. Plot its codes of the test digits, coloured by digit (no PCA needed), next to the VAE's. Then
# decode a $15\times 15$ grid spanning the range of its codes (from the 1st to the 99th percentile of
# each coordinate). How do its MSE, the shape of its code cloud and its grid compare with the VAE's?
# ```
#
# ````{solution} autoencoder-ex-2d
# :class: dropdown
# ```python
# torch.manual_seed(seed)
# ae2 = fc_autoencoder(2).to(device)
# h2 = helpers.fit(ae2, train_loader, test_loader, loss_fn, torch.optim.Adam(ae2.parameters(), lr=lr),
#                  epochs=epochs, device=device, progress=False, verbose=False)
# print(f"test MSE with a 2-D code: {h2.val_loss[-1]:.4f}")
# ae2.eval()
# with torch.no_grad():
#     c = ae2.encoder(x_test.to(device)).cpu()                              # (1000, 2)
# fig, axes = plt.subplots(1, 2, figsize=(9, 4))
# axes[0].scatter(c[:, 0], c[:, 1], c=y_test, cmap="tab10", s=6)
# axes[0].set_title("plain autoencoder")
# axes[1].scatter(mu_test[:, 0], mu_test[:, 1], c=y_test, cmap="tab10", s=6)
# axes[1].set_title("VAE")
# plt.show()
# lo, hi = torch.quantile(c, 0.01, dim=0), torch.quantile(c, 0.99, dim=0)
# g1, g2 = (torch.linspace(lo[i], hi[i], 15) for i in (0, 1))
# z = torch.stack(torch.meshgrid(g1, g2.flip(0), indexing="xy"), dim=-1).view(-1, 2)   # (225, 2)
# with torch.no_grad():
#     tiles = ae2.decoder(z.to(device)).cpu()
# plt.figure(figsize=(6, 6))
# plt.imshow(tiles.view(15, 15, 28, 28).permute(0, 2, 1, 3).reshape(15 * 28, 15 * 28), cmap="gray")
# plt.axis("off")
# plt.show()
# ```
# Measured: test MSE about 0.040, between the VAE-free 16-D models (0.016) and the average digit
# (0.067). The codes span a range set by nothing in particular (tens of units here, not 1), the
# clouds are long thin arms radiating from a dense centre, with empty space between the arms. The grid
# shows the consequence: tiles in those gaps decode to smudges or to mixtures of two digits, and most
# of the grid's area is spent on the outskirts where few codes lie. The VAE's cloud is round, centred
# and unit-sized, because the KL term asks for exactly that.
# ````
#
# ```{exercise}
# :label: autoencoder-ex-fresh-noise
# The denoiser of 6.5 sees the *same* noisy version of each training image in every epoch, so it could
# in principle learn those particular noise patterns. Write a small `Dataset` wrapper whose
# `__getitem__` returns `(clean + noise_std * fresh noise, clean)`, with new noise every time an image is
# fetched, train the same architecture on it, and compare the test MSE (on the same fixed noisy test
# set) with the fixed-noise denoiser. Does it help on this budget?
# ```
#
# ````{solution} autoencoder-ex-fresh-noise
# :class: dropdown
# ```python
# from torch.utils.data import Dataset
#
# class FreshNoise(Dataset):
#     """(noisy, clean) pairs with new Gaussian noise at every access."""
#     def __init__(self, x_clean, std):
#         self.x_clean, self.std = x_clean, std
#     def __len__(self):
#         return len(self.x_clean)
#     def __getitem__(self, i):
#         clean = self.x_clean[i]
#         return (clean + self.std * torch.randn_like(clean)).clamp(0, 1), clean
#
# fresh_loader, _ = make_loaders(FreshNoise(x_train, noise_std), noisy_pairs(x_test, noise_std, seed + 1))
# torch.manual_seed(seed)
# fresh = conv_autoencoder(latent_dim).to(device)
# h = helpers.fit(fresh, fresh_loader, noisy_test_loader, loss_fn, torch.optim.Adam(fresh.parameters(), lr=lr),
#                 epochs=epochs, device=device, progress=False, verbose=False)
# print(f"fixed noise {denoise_history.val_loss[-1]:.4f}, fresh noise {h.val_loss[-1]:.4f}")
# ```
# `torch.randn_like` draws from the global generator, so the run is still reproducible with a seed (in
# one process; with `num_workers > 0` each worker has its own generator). Measured: fixed noise 0.0212,
# fresh noise 0.0208, a difference of the size of run-to-run noise. With 4,000 images and 10 epochs the
# network does not get to memorise particular noise patterns; training a few times longer, or with a
# larger network, the fixed-noise denoiser starts to overfit them (its training loss keeps falling
# while its test loss stalls) and fresh noise pays off — the same reason data augmentation (chapter 4)
# draws new transformations every epoch. Fresh noise costs one Python call per image, which is why
# the chapter used the simpler fixed-noise `TensorDataset`.
# ````
#
# ```{exercise}
# :label: autoencoder-ex-beta
# A **$\beta$-VAE** multiplies the KL term by $\beta$: `VAELoss(beta)`. Train the VAE with
# $\beta = 0.1$ and $\beta = 4$ (besides the $\beta = 1$ above) and for each report the test
# reconstruction and KL terms, and the standard deviation of the mean codes $\mu$. Decode 10 samples from
# the prior for each. Explain the trade-off you see.
# ```
#
# ````{solution} autoencoder-ex-beta
# :class: dropdown
# ```python
# for beta in (0.1, 1.0, 4.0):
#     torch.manual_seed(seed)
#     model = VAE(vae_latent_dim).to(device)
#     helpers.fit(model, train_loader, test_loader, VAELoss(beta), torch.optim.Adam(model.parameters(), lr=lr),
#                 epochs=vae_epochs, device=device, progress=False, verbose=False)
#     model.eval()
#     with torch.no_grad():
#         recon, kl = VAELoss().terms(model(x_test.to(device)), x_test.to(device))
#         spread = model.encode(x_test.to(device))[0].std(dim=0)
#         samples = model.decode(torch.randn(10, vae_latent_dim, device=device))
#     print(f"beta {beta}: reconstruction {recon:.1f}, KL {kl:.2f}, std of mu {spread.cpu().numpy().round(2)}")
#     show_rows({f"beta {beta}": samples})
#     plt.show()
# ```
# Measured: $\beta = 0.1$: reconstruction 145, KL 11, codes spread over several units;
# $\beta = 1$: 154 and 6.5; $\beta = 4$: 176 and 3.7, codes squeezed close to the origin. A small
# $\beta$ lets the encoder spend more nats on each code, so reconstructions are sharper, but the codes
# no longer match the prior: samples from $\mathcal{N}(0, I)$ cover only the middle of the code cloud
# and some decode to blends. A large $\beta$ forces every $q(z \mid x)$ towards $\mathcal{N}(0, I)$, so
# the codes carry less information about the image: reconstructions and samples get blurrier and more
# alike. $\beta = 1$ is the value for which the loss is a bound on the log-likelihood; other values trade
# reconstruction against a latent space that is regular (and, with more dimensions, often more
# *disentangled*, which is where $\beta$-VAEs got their name).
# ````
