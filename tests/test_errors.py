"""Bad input gets one clear error that names the problem and the fix."""
import pytest
import torch
from conftest import tiny_mlp
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import helpers

X = torch.randn(8, 2)
Y = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])


def loader(x=X, y=Y, **kw):
    return DataLoader(TensorDataset(x, y), batch_size=4, **kw)


def fit(model=None, train=None, loss_fn=None, optimizer=None, **kw):
    model = tiny_mlp() if model is None else model
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1) if optimizer is None else optimizer
    train = loader() if train is None else train
    loss_fn = nn.CrossEntropyLoss() if loss_fn is None else loss_fn
    kw = {"epochs": 1, "device": "cpu", "progress": False, "verbose": False, **kw}
    return helpers.fit(model, train, None, loss_fn, optimizer, **kw)


class NaNModel(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(2, 3)

    def forward(self, x):
        return self.lin(x) * float("nan")


class Triple(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        return X[i], Y[i], i


CASES = {
    "epochs below 1": (lambda: fit(epochs=0), ValueError, "epochs must be an int >= 1"),
    "epochs not an int": (lambda: fit(epochs=2.5), ValueError, "epochs must be an int"),
    "empty loader": (lambda: fit(train=loader(X[:0], Y[:0])), ValueError, "yielded no batches"),
    "drop_last empties loader": (lambda: fit(train=DataLoader(TensorDataset(X[:3], Y[:3]), batch_size=4,
                                                               drop_last=True)), ValueError, "drop_last"),
    "model and data on different devices": (lambda: fit(model=tiny_mlp().to("meta")), ValueError,
                                            r"model is on meta but the data goes to cpu.*model.to\('cpu'\)"),
    "one-hot target for CrossEntropyLoss": (lambda: fit(train=loader(X, nn.functional.one_hot(Y, 3))),
                                            ValueError, "class indices"),
    "(batch, 1) target for CrossEntropyLoss": (lambda: fit(train=loader(X, Y[:, None])), ValueError,
                                               r"wants target shape \(4,\)"),
    "MSELoss would broadcast": (lambda: fit(model=nn.Linear(2, 1), train=loader(X, torch.randn(8)),
                                            loss_fn=nn.MSELoss()), ValueError, "broadcasting"),
    "batch size mismatch": (lambda: fit(model=nn.Sequential(nn.Flatten(0), nn.Unflatten(0, (-1, 2)),
                                                            nn.Linear(2, 3))[2:], train=loader()),
                            None, None),
    "batch is not (x, y)": (lambda: fit(train=DataLoader(Triple(), batch_size=2)), ValueError,
                            r"must be a pair \(x, y\)"),
    "non-finite loss": (lambda: fit(model=NaNModel()), FloatingPointError, "epoch 1, batch 0"),
    "optimizer of another model": (lambda: fit(optimizer=torch.optim.SGD(tiny_mlp().parameters(), lr=0.1)),
                                   ValueError, "holds none of this model's parameters"),
    "max_batches of 0": (lambda: fit(max_batches=0), ValueError, "max_batches must be a positive int"),
    "negative grad_clip": (lambda: fit(grad_clip=-1.0), ValueError, "grad_clip must be a positive"),
    "loss not reduced": (lambda: fit(loss_fn=nn.CrossEntropyLoss(reduction="none")), ValueError,
                         "not a scalar"),
    "unknown dataset": (lambda: helpers.mnist_loaders("fashion"), ValueError,
                        r"unknown dataset 'fashion'.*'embedded'"),
    "batch_size of 0": (lambda: helpers.mnist_loaders(batch_size=0), ValueError, "batch_size must be"),
    "missing checkpoint": (lambda: helpers.load_checkpoint("/nonexistent/run.pt", tiny_mlp()),
                           FileNotFoundError, "no checkpoint at"),
    "negative seed": (lambda: helpers.set_seed(-1), ValueError, "non-negative int"),
    "show_images of a flat batch": (lambda: helpers.show_images(torch.zeros(4, 784)), ValueError,
                                    r"\(N, H, W\)"),
    "labels and images differ in length": (lambda: helpers.show_images(torch.zeros(4, 28, 28), labels=[1, 2]),
                                           ValueError, "labels has 2 entries for 4 images"),
    "plot of an empty history": (lambda: helpers.plot_history(helpers.History()), ValueError, "empty"),
    "unsupported amp dtype": (lambda: fit(amp_dtype=torch.float64), ValueError, "amp_dtype must be None"),
}
CASES.pop("batch size mismatch")  # covered below with a clearer model


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_a_clear_error(case):
    call, error, message = CASES[case]
    with pytest.raises(error, match=message):
        call()


def test_model_returning_wrong_batch_size():
    class Mean(nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = nn.Linear(2, 3)

        def forward(self, x):
            return self.lin(x).mean(0, keepdim=True)  # (1, 3) whatever the batch

    with pytest.raises(ValueError, match="returned 1 outputs for a batch of 4"):
        fit(model=Mean())


def test_checkpoint_of_another_architecture(tmp_path):
    path = helpers.save_checkpoint(tmp_path / "c.pt", tiny_mlp(), epoch=1)
    with pytest.raises(ValueError, match="does not fit this model"):
        helpers.load_checkpoint(path, nn.Linear(2, 3))


def test_bare_state_dict_is_not_mistaken_for_a_checkpoint(tmp_path):
    torch.save(tiny_mlp().state_dict(), tmp_path / "w.pt")
    with pytest.raises(ValueError, match="not a checkpoint written by helpers.save_checkpoint"):
        helpers.load_checkpoint(tmp_path / "w.pt", tiny_mlp())


@pytest.mark.parametrize("call", [lambda: helpers.get_device("gpu"), lambda: fit(device="gpu"),
                                  lambda: helpers.evaluate(tiny_mlp(), loader(), nn.CrossEntropyLoss(), "gpu")],
                         ids=["get_device", "fit", "evaluate"])
def test_an_unknown_device_name_says_what_is_accepted(call):
    with pytest.raises(ValueError) as err:
        call()
    message = str(err.value)
    assert message.startswith("device 'gpu' is not a device name")
    for accepted in ('"cpu"', '"cuda"', '"cuda:N"', '"mps"', "None", '"auto"'):
        assert accepted in message
    assert message.endswith("Did you mean 'cuda'?")
    assert "ipu" not in message and "privateuseone" not in message  # not torch's list of twenty types


@pytest.mark.parametrize("name, meant", [("GPU:1", "cuda:1"), ("CUDA", "cuda"), ("cuda0", "cuda:0"), ("metal", "mps")])
def test_a_misspelled_device_gets_a_hint(name, meant):
    with pytest.raises(ValueError, match=f"Did you mean '{meant}'"):
        helpers.get_device(name)


def test_a_device_name_with_no_likely_meaning_gets_no_hint():
    with pytest.raises(ValueError) as err:
        helpers.get_device("banana")
    assert "'banana' is not a device name" in str(err.value) and "Did you mean" not in str(err.value)


@pytest.mark.parametrize("call", [
    lambda: helpers.get_device("cuda"),
    lambda: fit(device="cuda"),
    lambda: fit(device=torch.device("cuda")),
    lambda: helpers.evaluate(tiny_mlp(), loader(), nn.CrossEntropyLoss(), "cuda"),
    lambda: helpers.train_epoch(tiny_mlp(), loader(), nn.CrossEntropyLoss(),
                                torch.optim.SGD(tiny_mlp().parameters(), lr=0.1), "cuda"),
], ids=["get_device", "fit", "fit torch.device", "evaluate", "train_epoch"])
def test_cuda_asked_for_where_there_is_none(monkeypatch, call):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # a CPU machine, even on a GPU runner
    with pytest.raises(RuntimeError) as err:
        call()
    message = str(err.value)
    assert "device 'cuda' was asked for, but CUDA is not available here" in message
    assert "device=None" in message and "install a CUDA build of torch" in message and "Colab" in message
    assert "model is on" not in message


def test_a_gpu_number_beyond_the_machine_is_named(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(RuntimeError, match=r"'cuda:1' was asked for, but this machine has 1 CUDA GPU \(only cuda:0\)"):
        helpers.get_device("cuda:1")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(RuntimeError, match=r"'cuda:2' was asked for, but this machine has 2 CUDA GPUs \(cuda:0 to"):
        helpers.get_device("cuda:2")


@pytest.mark.parametrize("call", [lambda: helpers.get_device("mps"), lambda: fit(device="mps")],
                         ids=["get_device", "fit"])
def test_mps_asked_for_where_there_is_none(monkeypatch, call):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(RuntimeError) as err:
        call()
    message = str(err.value)
    assert "device 'mps' was asked for, but MPS (the Apple-silicon GPU) is not available here" in message
    assert "device=None" in message and "model is on" not in message


X_SEQ = torch.randn(8, 5, 2)  # (B, T, features): 8 sequences of 5 steps


def test_a_model_returning_a_tuple_names_the_tuple_and_the_fix():
    lstm = nn.LSTM(2, 3, batch_first=True)  # returns (output, (h_n, c_n)), not logits
    for call in (lambda: fit(model=lstm, train=loader(X_SEQ)),
                 lambda: helpers.evaluate(lstm, loader(X_SEQ), nn.CrossEntropyLoss(), "cpu")):
        with pytest.raises(TypeError) as err:
            call()
        message = str(err.value)
        assert message.startswith("the model returned a tuple of 2 (tensor (4, 5, 3), tuple), not a tensor of logits")
        assert "output[0][:, -1]" in message and "chapter 6" in message and "'shape'" not in message


def test_the_fix_the_tuple_message_names_works():
    class LastStep(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm, self.head = nn.LSTM(2, 3, batch_first=True), nn.Linear(3, 3)

        def forward(self, x):
            output, _ = self.lstm(x)          # (B, T, 3)
            return self.head(output[:, -1])   # (B, 3): the message's suggestion

    history = fit(model=LastStep(), train=loader(X_SEQ))
    assert len(history) == 1 and 0.0 <= history.train_acc[0] <= 1.0
