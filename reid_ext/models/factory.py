"""Build any model by name: reid_ext's registry first, then torchreid's own factory."""
from __future__ import annotations

from typing import Any

from torch import nn

from reid_ext import host
from reid_ext.registry import MODELS, UnknownNameError, closest_first


def build_model(
    name: str, num_classes: int, loss: str = "softmax", pretrained: bool = True, **kwargs: Any
) -> nn.Module:
    """Build ``name`` with model-specific ``kwargs`` (torchreid's ``build_model`` takes none)."""
    if name in MODELS:  # a reid_ext factory gets loss/pretrained only if it takes them
        return MODELS.build(name, context={"loss": loss, "pretrained": pretrained},
                            num_classes=num_classes, **kwargs)
    table = host.get_host().model_factory()
    if name not in table:
        raise UnknownNameError(
            f"unknown model '{name}'; known models (closest first): "
            + ", ".join(closest_first(name, list(table)))
        )
    return table[name](num_classes=num_classes, loss=loss, pretrained=pretrained,
                       use_gpu=False, **kwargs)


def model_aux_inputs(model: nn.Module) -> tuple[str, ...]:
    """The batch keys ``model`` takes as keyword inputs (``aux_inputs``; unwraps DataParallel)."""
    inner = getattr(model, "module", model)
    return tuple(getattr(inner, "aux_inputs", ()))
