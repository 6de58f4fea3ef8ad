"""How much does helpers.fit cost over the loop you would write by hand?

Same model, data, seed and work (train epoch + evaluation per epoch, loss and accuracy tracked);
runs are interleaved and repeated, and the median of each is compared. Prints the figures.

    .venv/bin/python benchmarks/fit_overhead.py [--epochs 2] [--repeats 5]
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

import helpers


def make(seed: int):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 10))
    return model, torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)


def hand_loop(model, optimizer, train_loader, val_loader, loss_fn, epochs: int) -> None:
    """The pytorch/examples-style loop: per-example loss sums, accuracy, eval under no_grad."""
    for _ in range(epochs):
        model.train()
        total, correct, n = 0.0, 0, 0
        for x, y in train_loader:
            optimizer.zero_grad()
            logits = model(x)
            loss = loss_fn(logits, y)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(y)
            correct += (logits.argmax(1) == y).sum().item()
            n += len(y)
        model.eval()
        with torch.no_grad():
            vtotal, vcorrect, vn = 0.0, 0, 0
            for x, y in val_loader:
                logits = model(x)
                vtotal += loss_fn(logits, y).item() * len(y)
                vcorrect += (logits.argmax(1) == y).sum().item()
                vn += len(y)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=64)
    args = parser.parse_args()
    loss_fn = nn.CrossEntropyLoss()
    times = {"hand": [], "fit": []}
    for r in range(args.repeats):
        for name in ("hand", "fit") if r % 2 == 0 else ("fit", "hand"):   # interleave: drift hits both
            train_loader, val_loader, _ = helpers.mnist_loaders(batch_size=args.batch_size, seed=0,
                                                                val_fraction=0.2)
            model, optimizer = make(seed=0)
            t0 = time.perf_counter()
            if name == "hand":
                hand_loop(model, optimizer, train_loader, val_loader, loss_fn, args.epochs)
            else:
                helpers.fit(model, train_loader, val_loader, loss_fn, optimizer, epochs=args.epochs,
                            device="cpu", progress=False, verbose=False)
            times[name].append(time.perf_counter() - t0)
    hand, fit = statistics.median(times["hand"]), statistics.median(times["fit"])
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.epochs} epochs x "
          f"{len(train_loader)} batches of {args.batch_size}, {args.repeats} repeats (median)")
    print(f"hand-written loop: {hand:.3f} s")
    print(f"helpers.fit:       {fit:.3f} s")
    print(f"ratio fit / hand:  {fit / hand:.3f}  (goal <= 1.03)")


if __name__ == "__main__":
    main()
