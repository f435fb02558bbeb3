"""ONNX export (tools/export_onnx.py, reid_ext.export): dynamic batch, aux inputs, parity."""
from __future__ import annotations

import re

import pytest
import torch
from test_tools import load_tool
from tiny_models import MaskKeypointPoolNet

from reid_ext.checkpoint import save_atomic
from reid_ext.models.factory import build_model

pytest.importorskip("onnx", reason="onnx not installed (pip install 'reid-ext[export]')")
ort = pytest.importorskip("onnxruntime",
                          reason="onnxruntime not installed (pip install 'reid-ext[export]')")

from reid_ext.export import export_onnx, onnx_embeddings, parity  # noqa: E402

# resnet18_bnneck stands in for resnet50_bnneck in the fast suite (same family file, same head;
# only the trunk depth differs); resnet50_bnneck itself is the slow test below.
CASES = [
    ("resnet18", [], 64, 32),  # a stock torchreid model
    ("resnet18_bnneck", [], 64, 32),
    ("bignet", ["model.kwargs.height", "64", "model.kwargs.width", "32"], 64, 32),
]


def _export_with_tool(tmp_path, capsys, name, extra, height, width):
    torch.manual_seed(0)
    kwargs = {k.split(".")[-1]: int(v) for k, v in zip(extra[::2], extra[1::2])}
    model = build_model(name, num_classes=7, pretrained=False, **kwargs)
    weights = tmp_path / "model.pth.tar-1"
    save_atomic({"state_dict": model.state_dict(), "config": f"model:\n  name: {name}\n"},
                weights)
    out = tmp_path / "m.onnx"
    code = load_tool("export_onnx").main([
        "--weights", str(weights), "--out", str(out), "model.name", name,
        "data.height", str(height), "data.width", str(width), *extra])
    printed = capsys.readouterr().out
    assert code == 0, printed
    diff = float(re.search(r"max abs diff ([\d.e+-]+)", printed).group(1))
    return model, out, diff


@pytest.mark.parametrize("name, extra, height, width", CASES, ids=[c[0] for c in CASES])
def test_export_tool_dynamic_batch_and_parity(tmp_path, capsys, name, extra, height, width):
    model, out, diff = _export_with_tool(tmp_path, capsys, name, extra, height, width)
    assert diff < 1e-3
    # dynamic batch axis: batch sizes other than the export's (2) run and match torch
    for batch in (1, 5):
        images = torch.randn(batch, 3, height, width)
        with torch.no_grad():
            expected = model.eval()(images)
        got = onnx_embeddings(out, {"image": images})
        assert got.shape == tuple(expected.shape)
        assert abs(got - expected.numpy()).max() < 1e-3


@pytest.mark.slow
def test_export_resnet50_bnneck(tmp_path, capsys):
    _, _, diff = _export_with_tool(tmp_path, capsys, "resnet50_bnneck", [], 128, 64)
    assert diff < 1e-3


def test_aux_maps_are_named_inputs_and_change_the_output(tmp_path):
    torch.manual_seed(0)
    model = MaskKeypointPoolNet(num_classes=3).eval()
    result = export_onnx(model, tmp_path / "aux.onnx", 32, 16)
    assert result.input_names == ["image", "mask", "keypoints"]
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["image", "mask", "keypoints"]
    assert parity(model, result.path, 32, 16, batch=4) < 1e-4
    inputs = {"image": torch.randn(2, 3, 32, 16), "mask": torch.ones(2, 1, 32, 16),
              "keypoints": torch.rand(2, 17, 3) * 15}
    full = onnx_embeddings(result.path, inputs)
    inputs["mask"] = torch.zeros(2, 1, 32, 16)
    inputs["mask"][..., :8, :] = 1
    assert abs(onnx_embeddings(result.path, inputs) - full).max() > 1e-4


def test_export_tool_refuses_another_architecture(tmp_path, capsys):
    weights = tmp_path / "w.pth"
    save_atomic({"state_dict": build_model("resnet18", 3, pretrained=False).state_dict(),
                 "config": "model:\n  name: resnet18\n"}, weights)
    code = load_tool("export_onnx").main(["--weights", str(weights), "model.name", "bignet"])
    assert code == 1
    assert "checkpoint is resnet18, config builds bignet" in capsys.readouterr().err
