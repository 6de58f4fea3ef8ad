"""The reference CNN chapter 5 compares itself with: pytorch/examples' ``mnist/main.py``, on the embedded split.

The network, optimizer and schedule are the example's defaults (two 3x3 convolutions of 32 and 64
channels, max-pool, dropout, a 9216 -> 128 -> 10 head; Adadelta lr=1.0, StepLR gamma=0.7, batch 64,
14 epochs), trained here on the course's 4,000 / 1,000 embedded MNIST split instead of the full 60k.
Prints the test accuracy once, after training, and the total training time (pytorch/examples
evaluates after every epoch; here nothing but training is inside the clock).

    .venv/bin/python benchmarks/cnn_reference.py [--epochs 14] [--threads 2] [--seed 1]
"""
from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F
from torch import nn

import helpers


class Net(nn.Module):
    """pytorch/examples mnist/main.py, unchanged."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x):
        x = F.relu(self.conv1(x))                  # (N, 32, 26, 26)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)  # (N, 64, 12, 12)
        x = torch.flatten(self.dropout1(x), 1)      # (N, 9216)
        x = self.dropout2(F.relu(self.fc1(x)))
        return F.log_softmax(self.fc2(x), dim=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=14)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (the course's budget is 2 cores)")
    parser.add_argument("--seed", type=int, default=1, help="the example's default seed")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    helpers.set_seed(args.seed)
    device = torch.device("cpu")
    train_loader, test_loader = helpers.mnist_loaders("embedded", batch_size=64, seed=args.seed)
    torch.manual_seed(args.seed)
    model = Net().to(device)
    optimizer = torch.optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    # no evaluation between epochs (pytorch/examples tests after each one): the seconds are training
    # only, like the speedrun's; the test split is evaluated once, at the end
    history = helpers.fit(model, train_loader, None, nn.NLLLoss(), optimizer, epochs=args.epochs,
                          device=device, scheduler=scheduler, progress=False, verbose=False)
    test_acc = helpers.evaluate(model, test_loader, nn.NLLLoss(), device, progress=False)["acc"]
    params = sum(p.numel() for p in model.parameters())
    print(f"reference CNN: {params:,} parameters, test accuracy {test_acc:.3f} "
          f"after {sum(history.seconds):.0f} s of training ({args.epochs} epochs, {args.threads} threads)")


if __name__ == "__main__":
    main()
