import torch
from conftest import tiny_mlp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import helpers


def make_run(seed: int):
    """Model with dropout, Adam (has state), a scheduler and a generator-shuffled loader, all from ``seed``."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 2, generator=g)
    y = (x[:, 0] > 0).long() + (x[:, 1] > 0).long()
    train = DataLoader(TensorDataset(x, y), batch_size=16, shuffle=True, generator=torch.Generator().manual_seed(seed))
    val = DataLoader(TensorDataset(x[:50], y[:50]), batch_size=25)
    helpers.set_seed(seed)
    model = tiny_mlp(seed, dropout=0.3)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.9)
    return model, opt, sched, train, val


def run_fit(run, epochs, checkpoint=None):
    model, opt, sched, train, val = run
    return helpers.fit(model, train, val, nn.CrossEntropyLoss(), opt, epochs=epochs, device="cpu",
                       scheduler=sched, checkpoint=checkpoint, progress=False, verbose=False)


def test_resumed_run_ends_with_identical_weights(tmp_path):
    straight = make_run(seed=0)
    history_straight = run_fit(straight, epochs=4)

    path = tmp_path / "run.pt"
    run_fit(make_run(seed=0), epochs=2, checkpoint=path)        # "interrupted" after epoch 2
    resumed = make_run(seed=123)                                 # a new process: other init, other RNG
    assert not torch.equal(resumed[0][0].weight, straight[0][0].weight)
    history_resumed = run_fit(resumed, epochs=4, checkpoint=path)

    for a, b in zip(straight[0].parameters(), resumed[0].parameters()):
        assert torch.equal(a, b), "resume must reproduce the uninterrupted run bit for bit"
    assert history_resumed.train_loss == history_straight.train_loss
    assert history_resumed.lr == history_straight.lr


def test_checkpoint_loads_with_weights_only(tmp_path):
    model, opt, sched, train, val = make_run(seed=0)
    path = helpers.save_checkpoint(tmp_path / "c.pt", model, opt, epoch=3, scheduler=sched, train_loader=train)
    state = torch.load(path, weights_only=True)  # no pickled code inside
    assert state["epoch"] == 3 and list(state["model"]) == list(model.state_dict())
    assert all(torch.equal(state["model"][k], v) for k, v in model.state_dict().items())
    assert state["optimizer"]["param_groups"][0]["lr"] == 0.01 and state["scheduler"]["step_size"] == 1
    assert torch.equal(state["rng"]["loader"], train.generator.get_state())


def test_load_checkpoint_restores_weights_and_optimizer(tmp_path):
    model, opt, sched, train, val = make_run(seed=0)
    run_fit((model, opt, sched, train, val), epochs=1)
    path = helpers.save_checkpoint(tmp_path / "c.pt", model, opt, epoch=1)
    other, other_opt, *_ = make_run(seed=9)
    assert not torch.equal(other[0].weight, model[0].weight)  # else the test below would pass by itself
    assert other_opt.state_dict()["state"] == {}                # a fresh Adam: no step taken yet
    state = helpers.load_checkpoint(path, other, other_opt)
    assert state["epoch"] == 1
    assert all(torch.equal(a, b) for a, b in zip(model.parameters(), other.parameters()))
    assert other_opt.state_dict()["state"][0]["step"] == opt.state_dict()["state"][0]["step"] > 0
    assert torch.equal(other_opt.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])


def test_finished_run_is_not_trained_again(tmp_path):
    path = tmp_path / "c.pt"
    run = make_run(seed=0)
    run_fit(run, epochs=2, checkpoint=path)
    weights = [p.clone() for p in run[0].parameters()]
    again = run_fit(run, epochs=2, checkpoint=path)
    assert len(again) == 2
    assert all(torch.equal(a, b) for a, b in zip(weights, run[0].parameters()))
