"""Export round trip: eager PyTorch, a saved-and-loaded ExportedProgram (.pt2) and ONNX Runtime agree on the
test split: identical predictions, logits within TOLERANCE (float32 rounding of a different operator order)."""
import numpy as np
import pytest
import torch
from torch import nn

import helpers

onnxruntime = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
TOLERANCE = 1e-4  # max |logit difference|; measured about 1e-5 on the trained small CNN


@pytest.fixture(scope="module")
def trained():
    """The small CNN after 20 AdamW steps (enough for confident, non-tied predictions), in eval mode."""
    helpers.set_seed(0)
    train_loader, _ = helpers.mnist_loaders("embedded", batch_size=64, seed=0)
    torch.manual_seed(0)
    model = helpers.small_cnn()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    helpers.fit(model, train_loader, None, nn.CrossEntropyLoss(), optimizer, epochs=1, max_batches=20,
                progress=False, verbose=False)
    x_test, y_test = helpers.mnist_datasets("embedded")[1].tensors
    return model.eval(), x_test, y_test


def test_exported_program_and_onnx_runtime_match_eager_on_the_test_split(trained, tmp_path):
    model, x_test, y_test = trained
    batch = torch.export.Dim("batch")
    program = torch.export.export(model, (x_test[:2],), dynamic_shapes={"input": {0: batch}})
    torch.export.save(program, tmp_path / "cnn.pt2")
    onnx_program = torch.onnx.export(model, (x_test[:2],), dynamo=True, verbose=False, input_names=["image"],
                                     output_names=["logits"], dynamic_shapes={"input": {0: batch}})
    onnx_program.save(str(tmp_path / "cnn.onnx"))
    del model, program, onnx_program  # from here on only the files

    import onnx
    onnx.checker.check_model(onnx.load(str(tmp_path / "cnn.onnx")), full_check=True)
    loaded = torch.export.load(tmp_path / "cnn.pt2").module()
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    session = onnxruntime.InferenceSession(str(tmp_path / "cnn.onnx"), options, providers=["CPUExecutionProvider"])
    reference, _, _ = trained
    with torch.inference_mode():
        eager = reference(x_test).numpy()
        exported = loaded(x_test).numpy()
        assert loaded(x_test[:1]).shape == (1, 10)  # the batch dimension is dynamic
    ort = session.run(None, {"image": x_test.numpy()})[0]
    assert eager.shape == exported.shape == ort.shape == (len(x_test), 10)
    for name, logits in (("ExportedProgram", exported), ("ONNX Runtime", ort)):
        diff = np.abs(logits - eager).max()
        assert diff <= TOLERANCE, f"{name}: max |logit difference| {diff:.2e} > {TOLERANCE}"
        assert (logits.argmax(1) == eager.argmax(1)).all(), f"{name}: a prediction differs from eager"
    accuracy = (eager.argmax(1) == y_test.numpy()).mean()
    assert accuracy > 0.5, f"the fixture model should have learned something, accuracy {accuracy:.3f}"


def test_data_dependent_control_flow_is_refused_by_export():
    class Gate(nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else -x

    with pytest.raises(Exception, match="(?i)data.dependent"):
        torch.export.export(Gate(), (torch.randn(3),))


def test_weights_only_load_refuses_a_pickled_module(tmp_path):
    torch.save(helpers.small_cnn(), tmp_path / "whole.pt")
    with pytest.raises(Exception, match="Weights only load failed"):
        torch.load(tmp_path / "whole.pt", weights_only=True)
    state = tmp_path / "state.pt"
    torch.save(helpers.small_cnn().state_dict(), state)
    assert set(torch.load(state, weights_only=True)) == set(helpers.small_cnn().state_dict())
