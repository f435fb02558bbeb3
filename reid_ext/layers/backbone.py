"""torchvision ResNet/ResNeXt trunks for Re-ID models, and the last-stride-1 helper.

``build_resnet(arch, pretrained, last_stride)`` returns a :class:`ResNetTrunk`: the stem and the
four stages of a torchvision ResNet without its pooling and classifier, so a model can take the
map after any stage (SpindleNet pools regions at an early and a late stage). ``pretrained`` is
``False`` (random initialisation), ``True`` (the architecture's default torchvision ImageNet
weights), the name of a torchvision weights enum member (e.g. ``"IMAGENET1K_V2"``) or the path
of a local state dict. No weights can be downloaded on an offline machine: a failed download
warns, naming the file to place in torch's hub cache, and the trunk starts from scratch.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torchvision import models as tv_models

from reid_ext.checkpoint import load_state_dict_file

# arch -> (constructor, weights enum)
BACKBONES: dict[str, tuple[Any, Any]] = {
    "resnet18": (tv_models.resnet18, tv_models.ResNet18_Weights),
    "resnet34": (tv_models.resnet34, tv_models.ResNet34_Weights),
    "resnet50": (tv_models.resnet50, tv_models.ResNet50_Weights),
    "resnext50_32x4d": (tv_models.resnext50_32x4d, tv_models.ResNeXt50_32X4D_Weights),
}
STAGES = ("layer1", "layer2", "layer3", "layer4")


def set_last_stride_one(resnet: nn.Module) -> None:
    """Make a torchvision ResNet's last stage keep its input resolution (stride 1)."""
    block = resnet.layer4[0]
    strided = block.conv2 if isinstance(block, tv_models.resnet.Bottleneck) else block.conv1
    strided.stride = (1, 1)
    if block.downsample is not None:
        block.downsample[0].stride = (1, 1)


class ResNetTrunk(nn.Module):
    """A torchvision ResNet without pooling and classifier: image -> ``[B, C, H/s, W/s]``."""

    def __init__(self, resnet: nn.Module) -> None:
        super().__init__()
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.layer1, self.layer2 = resnet.layer1, resnet.layer2
        self.layer3, self.layer4 = resnet.layer3, resnet.layer4
        self.stage_channels = {name: _out_channels(getattr(resnet, name)) for name in STAGES}
        self.out_channels = self.stage_channels["layer4"]

    def forward(self, x: torch.Tensor, until: str = "layer4") -> torch.Tensor:
        """The feature map after stage ``until`` (``layer1`` .. ``layer4``)."""
        return self.forward_from(self.stem(x), "stem", until)

    def forward_from(self, x: torch.Tensor, after: str, until: str = "layer4") -> torch.Tensor:
        """Continue from the output of stage ``after`` (``stem`` or ``layerN``) to ``until``."""
        order = ("stem", *STAGES)
        if after not in order or until not in STAGES or order.index(until) <= order.index(after):
            raise ValueError(f"cannot run from '{after}' to '{until}'; stages are {order}")
        for name in order[order.index(after) + 1: order.index(until) + 1]:
            x = getattr(self, name)(x)
        return x


def _out_channels(stage: nn.Sequential) -> int:
    block = stage[-1]
    last_bn = block.bn3 if hasattr(block, "bn3") else block.bn2
    return last_bn.num_features


def build_resnet(arch: str = "resnet50", pretrained: bool | str = False,
                 last_stride: int = 2) -> ResNetTrunk:
    """A :class:`ResNetTrunk` of ``arch`` (see :data:`BACKBONES`); see the module doc."""
    if arch not in BACKBONES:
        raise ValueError(f"unknown backbone '{arch}'; known: {sorted(BACKBONES)}")
    if last_stride not in (1, 2):
        raise ValueError(f"last_stride must be 1 or 2, got {last_stride}")
    constructor, weights_enum = BACKBONES[arch]
    resnet = constructor(weights=None)
    load_backbone_weights(resnet, pretrained, weights_enum)
    if last_stride == 1:
        set_last_stride_one(resnet)
    return ResNetTrunk(resnet)


def load_backbone_weights(backbone: nn.Module, pretrained: bool | str | Path,
                          weights_enum: Any) -> bool:
    """Load ImageNet (or local) weights into a torchvision ``backbone``; see the module doc.

    Returns whether weights were loaded. The classifier (``fc.*``) of the file is ignored; any
    other missing or unexpected tensor is an error naming the first few.
    """
    if pretrained is False or pretrained is None:
        return False
    if isinstance(pretrained, Path) or (isinstance(pretrained, str)
                                        and pretrained not in weights_enum.__members__):
        state = load_state_dict_file(pretrained)
    else:
        member = (weights_enum.DEFAULT if pretrained is True
                  else weights_enum.__members__[pretrained])
        try:
            state = member.get_state_dict(progress=False, check_hash=True)
        except Exception as err:  # offline, proxy, corrupt download ...
            name = Path(member.url).name
            cache = Path(torch.hub.get_dir()) / "checkpoints" / name
            warnings.warn(
                f"could not load ImageNet weights {member} ({type(err).__name__}: {err}); the "
                f"backbone starts from random initialisation. To use them offline, place {name} "
                f"at {cache} or pass pretrained=<path to a state dict>.", stacklevel=3)
            return False
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    unexpected = [k for k in unexpected if not k.startswith("fc.")]
    missing = [k for k in missing if not k.startswith("fc.")]
    if unexpected or missing:
        raise ValueError(f"pretrained weights do not fit the backbone: missing {missing[:5]}, "
                         f"unexpected {unexpected[:5]}")
    return True
