"""Classifier heads shared by several model families and by the loss-side classifiers.

:class:`CosineSoftmaxHead` is the cosine-softmax classifier of Wojke & Bewley ("Deep cosine
metric learning for person re-identification", WACV 2018):

    p(y = k | r) = exp(kappa * w~_k^T r) / sum_n exp(kappa * w~_n^T r),   w~_k = w_k / ||w_k||

The head returns the logits ``kappa * cos(w_k, r)``; any cross entropy turns them into the
loss. ``kappa`` is learned and kept positive by parametrising it as ``softplus(raw_scale)``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def inverse_softplus(value: float) -> float:
    """The ``x`` with ``softplus(x) == value`` (``value > 0``), computed without overflow."""
    if not value > 0:
        raise ValueError(f"softplus only reaches positive values; got {value}")
    # softplus^-1(v) = log(exp(v) - 1) = v + log(1 - exp(-v))
    return value + math.log(-math.expm1(-value))


class CosineSoftmaxHead(nn.Module):
    """Cosine-softmax classifier: logits ``kappa * <w_k / ||w_k||, r / ||r||>``.

    The input is l2-normalised here too, so the head works on top of any feature (for a
    network that already outputs unit vectors, as BigNet does, this changes nothing).
    ``kappa = softplus(raw_scale)`` stays positive for any value of the free parameter; a
    weight decay on ``raw_scale`` (torchreid's optimiser applies one to every parameter)
    pulls ``kappa`` towards ``softplus(0) = log 2``, the regularisation Wojke & Bewley use.
    """

    def __init__(self, in_features: int, num_classes: int, init_scale: float = 10.0) -> None:
        super().__init__()
        if in_features < 1 or num_classes < 1:
            raise ValueError(
                f"CosineSoftmaxHead needs in_features >= 1 and num_classes >= 1; got "
                f"in_features={in_features}, num_classes={num_classes}"
            )
        self.in_features = in_features
        self.num_classes = num_classes
        self.weight = nn.Parameter(torch.empty(num_classes, in_features))
        self.raw_scale = nn.Parameter(torch.tensor(inverse_softplus(float(init_scale))))
        nn.init.normal_(self.weight, std=0.01)

    @property
    def scale(self) -> torch.Tensor:
        """The positive scale ``kappa`` (a 0-d tensor that carries gradients)."""
        return F.softplus(self.raw_scale)

    def cosine(self, feats: torch.Tensor) -> torch.Tensor:
        """Cosine similarity ``[B, num_classes]`` between ``feats`` and every class weight."""
        if feats.dim() != 2 or feats.shape[1] != self.in_features:
            raise ValueError(
                f"CosineSoftmaxHead expects features of shape [B, {self.in_features}], got "
                f"{list(feats.shape)}"
            )
        return F.normalize(feats, dim=1) @ F.normalize(self.weight, dim=1).t()

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.scale * self.cosine(feats)

    def extra_repr(self) -> str:
        return (f"in_features={self.in_features}, num_classes={self.num_classes}, "
                f"scale={self.scale.item():.3g}")


class BNNeck(nn.Module):
    """The strong baseline's BatchNorm "neck" and bias-free ID classifier (Luo et al., 2019).

    ``forward(feats)`` returns ``(neck_feats, logits)``: metric losses read the pre-BN
    ``feats``, the ID loss reads ``logits`` of the post-BN feature, and the post-BN feature is
    the embedding at inference. The BN has no learnable shift, as in the bag of tricks.
    """

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        if in_features < 1 or num_classes < 1:
            raise ValueError(f"BNNeck needs in_features >= 1 and num_classes >= 1; got "
                             f"in_features={in_features}, num_classes={num_classes}")
        self.neck = nn.BatchNorm1d(in_features)
        self.neck.bias.requires_grad_(False)
        self.classifier = nn.Linear(in_features, num_classes, bias=False)
        nn.init.ones_(self.neck.weight)
        nn.init.normal_(self.classifier.weight, std=0.001)

    def forward(self, feats: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        neck_feats = self.neck(feats)
        return neck_feats, self.classifier(neck_feats)
