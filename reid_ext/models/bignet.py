"""BigNet, SliceNet1 and SliceNet2: small residual networks for 128x48 pedestrian crops.

BigNet is the network of Wojke & Bewley ("Deep cosine metric learning for person
re-identification", WACV 2018) used in the COL780 Re-ID report:

    layer                         output (C x H x W, 128x48 input)
    conv 3x3/1, 32                32 x 128 x 48     ``trunk.stem``
    conv 3x3/1, 32
    max-pool 3x3/2                32 x 64 x 24      ``trunk.stage1``
    residual 32, residual 32
    residual 64 /2, residual 64   64 x 32 x 12      ``trunk.stage2``
    residual 128 /2, residual 128 128 x 16 x 6      ``trunk.stage3``
    (dropout) dense 128, batch norm, l2 normalisation  -> embedding r, ||r|| = 1
    cosine-softmax classifier                          -> logits kappa * cos(w_k, r)

Every convolution is followed by batch norm and ELU, as in Wojke & Bewley. A residual block
is conv3x3(stride) - BN - ELU - conv3x3 - BN, plus the identity (or a strided 1x1 conv + BN
where the shape changes), then ELU.

SliceNet1 cuts the *image* into ``num_slices`` horizontal bands; each band goes through a
BigNet trunk and a dense layer with ``128 / num_slices`` outputs. By default every band has its
own trunk (``share_weights=False``); ``share_weights=True`` runs all bands through one trunk
(the dense layers stay per band, so each band keeps its own projection).
SliceNet2 runs one trunk on the whole image and cuts its final 128x16x6 *feature map* into
``num_slices`` horizontal bands, each with its own dense layer of ``128 / num_slices`` outputs.
In both, the band vectors are concatenated, batch-normalised and l2-normalised into the 128-d
embedding that the cosine-softmax classifier sees.

``pretrained``: no ImageNet weights exist for these networks. ``True``/``False`` both mean
"start from random initialisation"; a string is the path of a local state dict (a reid_ext or
torchreid checkpoint) loaded with ``torch.load(weights_only=True)``; a classifier whose class
count differs from the checkpoint's is left freshly initialised.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reid_ext.checkpoint import load_matching_weights
from reid_ext.layers.heads import CosineSoftmaxHead
from reid_ext.registry import MODELS

EMBEDDING_DIM = 128
DEFAULT_HEIGHT, DEFAULT_WIDTH = 128, 48


def conv_bn_elu(in_ch: int, out_ch: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ELU(inplace=True),
    )


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut; ``stride=2`` halves the spatial size."""

    def __init__(self, in_ch: int, out_ch: int, stride: int = 1) -> None:
        super().__init__()
        self.body = nn.Sequential(
            conv_bn_elu(in_ch, out_ch, stride),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_ch),
        )
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_ch, out_ch, 1, stride=stride, bias=False), nn.BatchNorm2d(out_ch)
            )
        self.act = nn.ELU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.body(x) + self.shortcut(x))


def halved(size: int) -> int:
    """Output size of a 3x3, stride-2, padding-1 convolution or pooling: ceil(size / 2)."""
    return (size + 1) // 2


class BigNetTrunk(nn.Module):
    """The convolutional part of BigNet: image ``[B,3,H,W]`` -> map ``[B,128,H/8,W/8]``."""

    def __init__(self, height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH) -> None:
        super().__init__()
        self.stem = nn.Sequential(conv_bn_elu(3, 32), conv_bn_elu(32, 32))
        self.stage1 = nn.Sequential(
            nn.MaxPool2d(3, stride=2, padding=1), ResidualBlock(32, 32), ResidualBlock(32, 32)
        )
        self.stage2 = nn.Sequential(ResidualBlock(32, 64, stride=2), ResidualBlock(64, 64))
        self.stage3 = nn.Sequential(ResidualBlock(64, 128, stride=2), ResidualBlock(128, 128))
        self.output_shape = (128, halved(halved(halved(height))), halved(halved(halved(width))))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.stage3(self.stage2(self.stage1(self.stem(x))))


def dense_layer(in_features: int, out_features: int, dropout: float) -> nn.Sequential:
    """Flatten -> (dropout) -> linear: a band's (or the whole map's) projection."""
    return nn.Sequential(nn.Flatten(), nn.Dropout(dropout), nn.Linear(in_features, out_features))


def check_slices(num_slices: int, height: int, what: str) -> int:
    """Validate that ``num_slices`` bands tile ``height`` rows and the embedding; return rows."""
    if not isinstance(num_slices, int) or num_slices < 1:
        raise ValueError(f"num_slices must be a positive integer, got {num_slices!r}")
    if height % num_slices:
        raise ValueError(
            f"num_slices={num_slices} does not divide the {what} height {height}: the "
            f"horizontal slices must cover it exactly (choose a divisor of {height})"
        )
    if EMBEDDING_DIM % num_slices:
        raise ValueError(
            f"num_slices={num_slices} does not divide the embedding size {EMBEDDING_DIM}: each "
            f"slice gets {EMBEDDING_DIM}/num_slices outputs"
        )
    return height // num_slices


class _CosineEmbeddingNet(nn.Module):
    """Common part: input check, BN + l2 normalisation of the embedding, cosine classifier."""

    aux_inputs: tuple[str, ...] = ()
    feature_dim = EMBEDDING_DIM

    def __init__(self, num_classes: int, height: int, width: int, init_scale: float) -> None:
        super().__init__()
        if height < 1 or width < 1:
            raise ValueError(f"height and width must be positive, got {height}x{width}")
        self.input_size = (height, width)
        self.embedding_norm = nn.BatchNorm1d(EMBEDDING_DIM)
        self.classifier = CosineSoftmaxHead(EMBEDDING_DIM, num_classes, init_scale)

    def check_input(self, x: torch.Tensor) -> None:
        expected = (3, *self.input_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(
                f"{type(self).__name__} expects input [B, 3, {expected[1]}, {expected[2]}] "
                f"(set height/width when building the model to change it), got "
                f"{list(x.shape)}"
            )

    def raw_embedding(self, x: torch.Tensor) -> torch.Tensor:
        """The 128-d vector before batch and l2 normalisation."""
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor | dict[str, torch.Tensor]:
        self.check_input(x)
        embedding = F.normalize(self.embedding_norm(self.raw_embedding(x)), dim=1)
        if not self.training:
            return embedding
        return {"logits": self.classifier(embedding), "feats": embedding}


class BigNet(_CosineEmbeddingNet):
    """BigNet: trunk -> dense 128 -> BN -> l2 -> cosine softmax."""

    def __init__(self, num_classes: int, height: int = DEFAULT_HEIGHT,
                 width: int = DEFAULT_WIDTH, dropout: float = 0.0,
                 init_scale: float = 10.0) -> None:
        super().__init__(num_classes, height, width, init_scale)
        self.trunk = BigNetTrunk(height, width)
        c, h, w = self.trunk.output_shape
        self.dense = dense_layer(c * h * w, EMBEDDING_DIM, dropout)

    def raw_embedding(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.trunk(x))


class SliceNet1(_CosineEmbeddingNet):
    """Image cut into horizontal bands, each through a BigNet trunk + dense(128/K)."""

    def __init__(self, num_classes: int, num_slices: int = 4, share_weights: bool = False,
                 height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH,
                 dropout: float = 0.0, init_scale: float = 10.0) -> None:
        super().__init__(num_classes, height, width, init_scale)
        self.slice_height = check_slices(num_slices, height, "image")
        self.num_slices = num_slices
        self.share_weights = share_weights
        self.trunks = nn.ModuleList(
            BigNetTrunk(self.slice_height, width) for _ in range(1 if share_weights else num_slices)
        )
        c, h, w = self.trunks[0].output_shape
        self.denses = nn.ModuleList(
            dense_layer(c * h * w, EMBEDDING_DIM // num_slices, dropout) for _ in range(num_slices)
        )

    def slice_embeddings(self, x: torch.Tensor) -> list[torch.Tensor]:
        """One ``[B, 128/K]`` vector per band, top to bottom (before any normalisation)."""
        bands = x.split(self.slice_height, dim=2)
        if self.share_weights:  # one trunk call on all bands stacked along the batch
            maps = self.trunks[0](torch.cat(bands, dim=0)).chunk(self.num_slices, dim=0)
        else:
            maps = [trunk(band) for trunk, band in zip(self.trunks, bands)]
        return [dense(m) for dense, m in zip(self.denses, maps)]

    def raw_embedding(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.slice_embeddings(x), dim=1)


class SliceNet2(_CosineEmbeddingNet):
    """One BigNet trunk; its final map cut into horizontal bands, each with a dense(128/K)."""

    def __init__(self, num_classes: int, num_slices: int = 4, height: int = DEFAULT_HEIGHT,
                 width: int = DEFAULT_WIDTH, dropout: float = 0.0,
                 init_scale: float = 10.0) -> None:
        super().__init__(num_classes, height, width, init_scale)
        self.trunk = BigNetTrunk(height, width)
        c, h, w = self.trunk.output_shape
        self.slice_height = check_slices(num_slices, h, "final feature-map")
        self.num_slices = num_slices
        self.denses = nn.ModuleList(
            dense_layer(c * self.slice_height * w, EMBEDDING_DIM // num_slices, dropout)
            for _ in range(num_slices)
        )

    def slice_embeddings_from_map(self, feature_map: torch.Tensor) -> list[torch.Tensor]:
        """One ``[B, 128/K]`` vector per band of the trunk's output map, top to bottom."""
        bands = feature_map.split(self.slice_height, dim=2)
        return [dense(band) for dense, band in zip(self.denses, bands)]

    def raw_embedding(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat(self.slice_embeddings_from_map(self.trunk(x)), dim=1)


def load_local_weights(model: nn.Module, pretrained: bool | str | Path) -> bool:
    """Load a local state dict into ``model`` when ``pretrained`` is a path; see module doc."""
    if isinstance(pretrained, bool) or pretrained is None:
        return False
    path = Path(pretrained).expanduser()
    if not path.is_file():
        raise FileNotFoundError(
            f"pretrained weights file '{path}' does not exist (BigNet/SliceNet have no "
            f"ImageNet weights: pass pretrained=True/False or a local state dict path)"
        )
    load_matching_weights(model, path, strict=True)
    return True


def _build(cls: type[_CosineEmbeddingNet], num_classes: int, pretrained: bool | str,
           **kwargs: Any) -> _CosineEmbeddingNet:
    model = cls(num_classes, **kwargs)
    load_local_weights(model, pretrained)
    return model


@MODELS.register("bignet")
def bignet(num_classes: int, pretrained: bool | str = True, height: int = DEFAULT_HEIGHT,
           width: int = DEFAULT_WIDTH, dropout: float = 0.0, init_scale: float = 10.0) -> BigNet:
    """BigNet with a cosine-softmax classifier (training outputs ``logits`` and ``feats``)."""
    return _build(BigNet, num_classes, pretrained, height=height, width=width, dropout=dropout,
                  init_scale=init_scale)


@MODELS.register("slicenet1")
def slicenet1(num_classes: int, pretrained: bool | str = True, num_slices: int = 4,
              share_weights: bool = False, height: int = DEFAULT_HEIGHT,
              width: int = DEFAULT_WIDTH, dropout: float = 0.0,
              init_scale: float = 10.0) -> SliceNet1:
    """SliceNet1: the image cut into ``num_slices`` bands, each through a BigNet trunk."""
    return _build(SliceNet1, num_classes, pretrained, num_slices=num_slices,
                  share_weights=share_weights, height=height, width=width, dropout=dropout,
                  init_scale=init_scale)


@MODELS.register("slicenet2")
def slicenet2(num_classes: int, pretrained: bool | str = True, num_slices: int = 4,
              height: int = DEFAULT_HEIGHT, width: int = DEFAULT_WIDTH, dropout: float = 0.0,
              init_scale: float = 10.0) -> SliceNet2:
    """SliceNet2: one BigNet trunk whose final map is cut into ``num_slices`` bands."""
    return _build(SliceNet2, num_classes, pretrained, num_slices=num_slices, height=height,
                  width=width, dropout=dropout, init_scale=init_scale)
