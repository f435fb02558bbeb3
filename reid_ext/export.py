"""ONNX export of the embedding network, with a parity check against onnxruntime.

The exported graph is the model in eval mode: ``embedding = model(image, **aux)``. Inputs are
named ``image`` and, for a model that declares ``aux_inputs``, each aux map under its batch key
(``mask`` [B,1,H,W], ``keypoints`` [B,K,3] in pixels, ``parts`` [B,P,H,W]); the batch axis of
every input and of the output ``embedding`` is dynamic. The TorchScript-based exporter
(``dynamo=False``) is used: it needs only the ``onnx`` package, not ``onnxscript``.

onnx and onnxruntime are the ``export`` extra (``pip install reid-ext[export]``); they are
imported only here, inside the functions that need them.
"""
from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from reid_ext.models.factory import model_aux_inputs
from reid_ext.skeletons import get_keypoint_format

OUTPUT_NAME = "embedding"
DEFAULT_OPSET = 17


class MissingExportBackendError(ImportError):
    """onnx / onnxruntime are not installed."""


def _require(module: str) -> Any:
    try:
        return __import__(module)
    except ImportError as err:
        raise MissingExportBackendError(
            f"ONNX export needs '{module}': pip install 'reid-ext[export]' (onnx, onnxruntime)"
        ) from err


class _PositionalAux(nn.Module):
    """``model(image, **aux)`` with the aux maps passed positionally (what ONNX export needs)."""

    def __init__(self, model: nn.Module, aux_keys: tuple[str, ...]) -> None:
        super().__init__()
        self.model = model
        self.aux_keys = aux_keys

    def forward(self, image: torch.Tensor, *aux: torch.Tensor) -> torch.Tensor:
        return self.model(image, **dict(zip(self.aux_keys, aux)))


def example_inputs(model: nn.Module, batch: int, height: int, width: int,
                   keypoint_format: str | None = None, num_parts: int | None = None,
                   seed: int = 0) -> dict[str, torch.Tensor]:
    """Random ``image`` plus the aux maps ``model`` declares, in the batch-dict layout."""
    gen = torch.Generator().manual_seed(seed)
    inputs = {"image": torch.randn(batch, 3, height, width, generator=gen)}
    for key in model_aux_inputs(model):
        if key == "mask":
            inputs["mask"] = torch.rand(batch, 1, height, width, generator=gen)
        elif key == "keypoints":
            fmt = keypoint_format or getattr(model, "keypoint_format", None)
            num = get_keypoint_format(fmt).num_keypoints if fmt else 17
            xy = torch.rand(batch, num, 2, generator=gen) * torch.tensor([width - 1, height - 1])
            inputs["keypoints"] = torch.cat([xy, torch.rand(batch, num, 1, generator=gen)], 2)
        elif key == "parts":
            parts = num_parts or int(getattr(model, "num_parts", 3))
            inputs["parts"] = torch.rand(batch, parts, height, width, generator=gen)
        else:
            raise ValueError(f"cannot make an example for aux input '{key}' of "
                             f"{type(model).__name__}; known: mask, keypoints, parts")
    return inputs


@dataclass
class ExportResult:
    path: Path
    input_names: list[str]
    max_abs_diff: float | None = None
    parity_batch: int | None = None


def export_onnx(model: nn.Module, path: str | os.PathLike, height: int, width: int, *,
                keypoint_format: str | None = None, opset: int = DEFAULT_OPSET,
                export_batch: int = 2) -> ExportResult:
    """Write ``model``'s eval-mode embedding network to ``path`` (dynamic batch axis)."""
    _require("onnx")
    model = model.eval().cpu()
    inputs = example_inputs(model, export_batch, height, width, keypoint_format)
    names = list(inputs)
    wrapped = _PositionalAux(model, tuple(names[1:]))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            wrapped, tuple(inputs.values()), str(path), dynamo=False, opset_version=opset,
            input_names=names, output_names=[OUTPUT_NAME],
            dynamic_axes={name: {0: "batch"} for name in [*names, OUTPUT_NAME]},
        )
    import onnx

    onnx.checker.check_model(str(path))
    return ExportResult(path, names)


def onnx_embeddings(path: str | os.PathLike, inputs: Mapping[str, torch.Tensor]) -> np.ndarray:
    """Run the exported graph with onnxruntime on CPU."""
    ort = _require("onnxruntime")
    options = ort.SessionOptions()
    options.intra_op_num_threads = int(os.environ.get("OMP_NUM_THREADS", "1") or 1)
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    feeds = {name: tensor.numpy() for name, tensor in inputs.items()}
    return session.run([OUTPUT_NAME], feeds)[0]


def parity(model: nn.Module, path: str | os.PathLike, height: int, width: int, *,
           batch: int = 3, keypoint_format: str | None = None, seed: int = 1) -> float:
    """Max absolute difference between torch and onnxruntime embeddings on a fresh batch
    (of another size than the export's, so the dynamic batch axis is exercised)."""
    model = model.eval().cpu()
    inputs = example_inputs(model, batch, height, width, keypoint_format, seed=seed)
    with torch.no_grad():
        expected = model(inputs["image"], **{k: v for k, v in inputs.items() if k != "image"})
    got = onnx_embeddings(path, inputs)
    if got.shape != tuple(expected.shape):
        raise AssertionError(f"onnxruntime gave {got.shape}, torch {tuple(expected.shape)}")
    return float(np.abs(got - expected.float().numpy()).max())
