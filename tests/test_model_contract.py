"""The model contract, checked for every registered model (and a few stock torchreid ones).

For each name: build with ``pretrained=False``; feed a batch with every aux input the model
declares; the eval embedding is ``[B, D]`` and finite; training outputs are named, with
``logits`` of ``num_classes`` columns; a backward pass reaches every parameter that learns; and
a model declaring an aux input really depends on it. New families get these checks for free.
"""
from __future__ import annotations

import pytest
import torch

from reid_ext import host
from reid_ext.engine import named_outputs
from reid_ext.models.factory import build_model, model_aux_inputs
from reid_ext.registry import MODELS
from reid_ext.skeletons import get_keypoint_format

STOCK = ("resnet18", "osnet_x0_25", "pcb_p4")
NUM_CLASSES = 5
BATCH = 2
DEFAULT_SIZE = (64, 32)


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(name, num_classes=NUM_CLASSES, loss="triplet", pretrained=False)


def input_size(model: torch.nn.Module) -> tuple[int, int]:
    size = getattr(model, "contract_input_size", None) or getattr(model, "input_size", None)
    return tuple(size) if size else DEFAULT_SIZE


def synthetic_aux(model: torch.nn.Module, height: int, width: int,
                  generator: torch.Generator) -> dict[str, torch.Tensor]:
    """A plausible map for every aux input the model declares (a centred person)."""
    aux: dict[str, torch.Tensor] = {}
    keys = model_aux_inputs(model)
    if "mask" in keys:
        mask = torch.zeros(BATCH, 1, height, width)
        mask[:, :, height // 8: height - height // 8, width // 4: width - width // 4] = 1.0
        aux["mask"] = mask
    if "keypoints" in keys:
        fmt = get_keypoint_format(getattr(model, "keypoint_format", "coco17"))
        xy = torch.rand(BATCH, fmt.num_keypoints, 2, generator=generator)
        xy = xy * torch.tensor([width * 0.5, height * 0.8]) + torch.tensor(
            [width * 0.25, height * 0.1])
        aux["keypoints"] = torch.cat([xy, torch.ones(BATCH, fmt.num_keypoints, 1)], dim=2)
    if "parts" in keys:
        num_parts = getattr(model, "num_parts", 3)
        parts = torch.zeros(BATCH, num_parts, height, width)
        for p, band in enumerate(torch.arange(height).chunk(num_parts)):
            parts[:, p, band] = 1.0
        aux["parts"] = parts
    return aux


def altered(aux: dict[str, torch.Tensor], key: str) -> dict[str, torch.Tensor]:
    """``aux`` with the map ``key`` changed (mask shrunk, keypoints moved, parts shifted)."""
    changed = dict(aux)
    value = aux[key].clone()
    if key == "mask":
        h = value.shape[-2]
        value[..., : h // 2, :] = 0.0
    elif key == "keypoints":
        value[..., 1] = value[..., 1] * 0.5
    else:
        value = torch.roll(value, shifts=1, dims=1)
    changed[key] = value
    return changed


def all_names() -> list[str]:
    return [*MODELS.names(), *STOCK]


def test_every_registered_model_is_covered():
    assert set(MODELS.names()) <= set(all_names())
    table = host.get_host().model_factory()
    assert all(name in table for name in MODELS.names()), "registered but not in torchreid"


@pytest.mark.parametrize("name", all_names())
def test_model_contract(name):
    model = build(name)
    height, width = input_size(model)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(BATCH, 3, height, width, generator=generator)
    aux = synthetic_aux(model, height, width, generator)

    model.train()
    outputs = named_outputs(model(images, **aux))
    assert "logits" in outputs, f"{name}: training outputs {sorted(outputs)} lack 'logits'"
    logits = outputs["logits"]
    for item in logits if isinstance(logits, (list, tuple)) else [logits]:
        assert item.shape == (BATCH, NUM_CLASSES), f"{name}: logits {tuple(item.shape)}"
    tensors = [t for v in outputs.values()
               for t in (v if isinstance(v, (list, tuple)) else [v])
               if isinstance(t, torch.Tensor) and t.requires_grad]
    # random projections of every output: a gradient BN's mean-centring cannot cancel
    loss = sum((t.float() * torch.randn(t.shape, generator=generator)).sum() for t in tensors)
    loss.backward()
    learning = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    unreached = [n for n, p in learning if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not unreached, f"{name}: no finite gradient reaches {unreached[:5]}"

    model.eval()
    with torch.no_grad():
        embedding = model(images, **aux)
        assert isinstance(embedding, torch.Tensor) and embedding.dim() == 2, name
        assert embedding.shape[0] == BATCH and torch.isfinite(embedding).all(), name
        for key in aux:
            other = model(images, **altered(aux, key))
            assert not torch.allclose(embedding, other), (
                f"{name} declares aux input '{key}' but its embedding ignores it")
