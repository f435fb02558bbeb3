"""Loading ImageNet weights for torchvision backbones, with a clear message when offline."""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn


def load_backbone_weights(backbone: nn.Module, pretrained: bool | str, weights: Any) -> bool:
    """Load ImageNet weights into ``backbone``.

    ``pretrained`` is ``True`` (torchvision's ``weights`` enum, downloaded into the torch hub
    cache on first use), a path to a local state dict, or ``False``. Returns whether weights
    were loaded; a failed download warns (naming the file to place in the cache) instead of
    failing, so that training from scratch still works on an offline machine.
    """
    if not pretrained:
        return False
    if isinstance(pretrained, (str, Path)):
        path = Path(pretrained).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"pretrained weights file '{path}' does not exist")
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = state.get("state_dict", state)
    else:
        try:
            state = weights.get_state_dict(progress=False, check_hash=True)
        except Exception as err:  # offline, proxy, corrupt download ...
            cache = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
            warnings.warn(
                f"could not load ImageNet weights {weights} ({type(err).__name__}: {err}); "
                f"the model starts from random initialisation. To use them offline, place "
                f"{Path(weights.url).name} at {cache} or pass pretrained=<path to a state dict>.",
                stacklevel=3,
            )
            return False
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if not k.startswith("fc.")]
    if unexpected or missing:
        raise ValueError(
            f"pretrained weights do not fit the backbone: missing {missing[:5]}, "
            f"unexpected {unexpected[:5]}"
        )
    return True
