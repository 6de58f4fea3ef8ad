import math

import pytest
import torch
from conftest import tiny_mlp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import helpers


def test_fit_learns_and_records_history(blobs):
    train, val = blobs
    model = tiny_mlp()
    opt = torch.optim.Adam(model.parameters(), lr=0.05)
    history = helpers.fit(model, train, val, nn.CrossEntropyLoss(), opt, epochs=5, device="cpu",
                          progress=False, verbose=False)
    assert len(history) == 5 and len(history.val_acc) == 5 and len(history.seconds) == 5
    assert history.train_loss[-1] < history.train_loss[0]
    assert history.val_acc[-1] > 0.9
    assert all(0.0 <= a <= 1.0 for a in history.train_acc + history.val_acc)


def test_evaluate_is_a_per_example_average_and_restores_mode():
    x = torch.randn(7, 2)
    y = torch.tensor([0, 1, 2, 0, 1, 2, 0])
    loader = DataLoader(TensorDataset(x, y), batch_size=3)  # batches of 3, 3, 1
    model = tiny_mlp(dropout=0.5)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    result = helpers.evaluate(model, loader, loss_fn, "cpu")
    assert model.training, "evaluate must give the model back in the mode it found it in"
    model.eval()
    with torch.no_grad():
        logits = model(x)
    assert result["n"] == 7
    assert result["loss"] == pytest.approx(loss_fn(logits, y).item(), rel=1e-6)
    assert result["acc"] == pytest.approx((logits.argmax(1) == y).float().mean().item())
    helpers.evaluate(model, loader, loss_fn, "cpu")
    assert not model.training


def test_train_epoch_matches_a_hand_written_loop(blobs):
    train, _ = blobs
    loss_fn = nn.CrossEntropyLoss()
    a, b = tiny_mlp(), tiny_mlp()
    opt_a = torch.optim.SGD(a.parameters(), lr=0.1)
    opt_b = torch.optim.SGD(b.parameters(), lr=0.1)
    torch.manual_seed(5)
    state = train.generator.get_state()
    helpers.train_epoch(a, train, loss_fn, opt_a, "cpu")
    torch.manual_seed(5)
    train.generator.set_state(state)
    for x, y in train:  # the oracle: the loop every PyTorch user writes
        opt_b.zero_grad()
        loss_fn(b(x), y).backward()
        opt_b.step()
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_max_batches_limits_an_epoch(blobs):
    train, val = blobs
    seen = []
    model = tiny_mlp()
    model.register_forward_hook(lambda m, inp, out: seen.append(len(inp[0])))
    helpers.train_epoch(model, train, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                        "cpu", max_batches=2)
    assert len(seen) == 2
    assert helpers.evaluate(model, val, nn.CrossEntropyLoss(), "cpu", max_batches=1)["n"] == 25


def test_reconstruction_targets_need_no_special_case():
    x = torch.randn(64, 8)
    loader = DataLoader(TensorDataset(x, x), batch_size=16)  # an autoencoder's batches: (x, x)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(8, 4), nn.ReLU(), nn.Linear(4, 8))
    history = helpers.fit(model, loader, loader, nn.MSELoss(), torch.optim.Adam(model.parameters(), lr=1e-2),
                          epochs=3, device="cpu", progress=False, verbose=False)
    assert history.val_loss[-1] < history.val_loss[0]
    assert all(math.isnan(a) for a in history.train_acc)


def test_grad_clip_bounds_the_update(blobs):
    train, _ = blobs
    model = tiny_mlp()
    before = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    opt = torch.optim.SGD(model.parameters(), lr=1.0)
    helpers.train_epoch(model, train, nn.CrossEntropyLoss(), opt, "cpu", max_batches=1, grad_clip=0.01)
    after = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (after - before).norm().item() <= 0.01 + 1e-6


def test_scheduler_steps_each_epoch_and_lr_is_recorded(blobs):
    train, val = blobs
    model = tiny_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    history = helpers.fit(model, train, val, nn.CrossEntropyLoss(), opt, epochs=3, device="cpu",
                          scheduler=sched, progress=False, verbose=False)
    assert history.lr == pytest.approx([0.1, 0.05, 0.025])


def test_scheduler_can_step_after_every_batch(blobs):
    train, val = blobs
    model = tiny_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    steps = 3 * len(train)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.1, total_steps=steps)
    history = helpers.fit(model, train, val, nn.CrossEntropyLoss(), opt, epochs=3, device="cpu",
                          scheduler=sched, scheduler_step="batch", progress=False, verbose=False)
    assert sched.last_epoch == steps            # one step per batch, none per epoch
    assert history.lr[0] == pytest.approx(0.1 / 25)   # OneCycleLR's initial lr, recorded at epoch start
    assert history.lr[1] > history.lr[0]


def test_scheduler_step_refuses_bad_values(blobs):
    train, val = blobs
    model = tiny_mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="scheduler_step must be 'epoch' or 'batch'"):
        helpers.fit(model, train, val, nn.CrossEntropyLoss(), opt, epochs=1, device="cpu",
                    scheduler_step="step", progress=False, verbose=False)
    plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
    with pytest.raises(ValueError, match="ReduceLROnPlateau"):
        helpers.fit(model, train, val, nn.CrossEntropyLoss(), opt, epochs=1, device="cpu",
                    scheduler=plateau, scheduler_step="batch", progress=False, verbose=False)


def test_fit_prints_one_reproducible_line_per_epoch(blobs, capsys):
    train, val = blobs
    model = tiny_mlp()
    helpers.fit(model, train, val, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                epochs=2, device="cpu", progress=False)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2  train_loss ")
    assert "val_acc" in lines[1] and "s" not in lines[1].split("val_acc")[1]


def test_progress_bar_does_not_change_the_result(blobs):
    train, val = blobs
    results = []
    for progress in (False, True):
        train.generator.manual_seed(1)
        model = tiny_mlp()
        helpers.fit(model, train, val, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                    epochs=2, device="cpu", progress=progress, verbose=False)
        results.append(torch.cat([p.detach().flatten() for p in model.parameters()]))
    assert torch.equal(*results)


def test_bfloat16_autocast_trains_close_to_float32(blobs):
    train, val = blobs
    results = {}
    for amp_dtype in (None, torch.bfloat16):
        train.generator.manual_seed(1)
        model = tiny_mlp()
        h = helpers.fit(model, train, val, nn.CrossEntropyLoss(), torch.optim.Adam(model.parameters(), lr=0.05),
                        epochs=3, device="cpu", progress=False, verbose=False, amp_dtype=amp_dtype)
        results[amp_dtype] = h
    assert results[torch.bfloat16].val_acc[-1] > 0.9
    assert results[torch.bfloat16].train_loss != results[None].train_loss  # autocast really was on
    assert results[torch.bfloat16].train_loss[-1] == pytest.approx(results[None].train_loss[-1], abs=0.05)


def test_tensor_loader_batches_shuffles_and_trains(blobs):
    train, val = blobs
    x, y = train.dataset.tensors
    loader = helpers.TensorLoader(x, y, batch_size=32, shuffle=True, generator=torch.Generator().manual_seed(0))
    assert len(loader) == 8  # 240 / 32, last batch short
    epoch1 = torch.cat([yb for _, yb in loader])
    epoch2 = torch.cat([yb for _, yb in loader])
    assert sorted(epoch1.tolist()) == sorted(y.tolist()) and not torch.equal(epoch1, epoch2)
    model = tiny_mlp()
    h = helpers.fit(model, loader, helpers.TensorLoader(*val.dataset.tensors, batch_size=60), nn.CrossEntropyLoss(),
                    torch.optim.Adam(model.parameters(), lr=0.05), epochs=3, device="cpu", progress=False,
                    verbose=False)
    assert h.val_acc[-1] > 0.9
    with pytest.raises(ValueError, match="x has 240 examples but y has 10"):
        helpers.TensorLoader(x, y[:10], batch_size=4)


def test_fit_reads_the_device_once_per_epoch_not_once_per_batch(monkeypatch):
    """Every .item() on a GPU tensor makes the CPU wait for the GPU; fit must not do it per batch:
    twice the batches, the same number of reads (the DataLoader itself draws one seed per epoch)."""
    calls = []
    original = torch.Tensor.item
    monkeypatch.setattr(torch.Tensor, "item", lambda self: calls.append(1) or original(self))

    def reads(n_batches: int) -> int:
        calls.clear()
        data = TensorDataset(torch.randn(8 * n_batches, 2), torch.arange(8 * n_batches) % 3)
        loader = DataLoader(data, batch_size=8, shuffle=True, generator=torch.Generator().manual_seed(0))
        model = tiny_mlp()
        helpers.fit(model, loader, loader, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                    epochs=2, device="cpu", progress=False, verbose=False)
        return len(calls)

    few, many = reads(5), reads(10)
    assert few == many, f"{few} .item() calls with 5 batches per epoch, {many} with 10: a per-batch sync"
    assert many <= 4 * 2


def test_a_diverging_loss_names_its_first_batch_after_the_epoch():
    x = torch.randn(40, 2)
    x[25] = float("nan")  # batch 2 of 4 (batch_size 10) is the first non-finite one
    loader = DataLoader(TensorDataset(x, torch.zeros(40, dtype=torch.long)), batch_size=10)
    model = nn.Linear(2, 3)
    with pytest.raises(FloatingPointError, match="at epoch 1, batch 2"):
        helpers.fit(model, loader, None, nn.CrossEntropyLoss(), torch.optim.SGD(model.parameters(), lr=0.1),
                    epochs=1, device="cpu", progress=False, verbose=False)


def test_fit_refuses_the_test_loader_for_validation():
    """The run-time guard behind the course rule 'the test split never chooses'."""
    train, val, test = helpers.mnist_loaders(val_fraction=0.2, batch_size=256)
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="val_loader is the test loader"):
        helpers.fit(model, train, test, nn.CrossEntropyLoss(), opt, epochs=1, device="cpu", verbose=False)
    helpers.fit(model, train, val, nn.CrossEntropyLoss(), opt, epochs=1, device="cpu", verbose=False,
                max_batches=1, progress=False)
