"""The cosine-softmax loss (Wojke & Bewley, WACV 2018) as a loss term.

Two ways to train with a cosine-softmax classifier:

* the model owns the classifier (BigNet, SliceNet1/2 end in a :class:`CosineSoftmaxHead`):
  its ``logits`` already are ``kappa * cos``, so the loss term is a plain cross entropy on
  them: ``cosine_softmax_ce`` (``output: logits``);
* any other model: the loss term ``cosine_softmax`` owns the head and reads the model's
  ``feats`` (``output: feats``). The head's parameters are trained by the loss's own optimiser,
  :meth:`CosineSoftmaxLoss.make_optimizer`, which the engine builds once and steps every
  iteration (docs/architecture.md, "Loss terms"). Its ``in_features`` may be left out: the
  head is then created at the first forward from the feature width it sees.
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reid_ext.layers.heads import CosineSoftmaxHead
from reid_ext.registry import LOSSES

__all__ = [
    "CosineSoftmaxHead", "CosineSoftmaxLoss", "LogitsCrossEntropy", "cosine_softmax_ce",
    "cosine_softmax_loss",
]

_OPTIMIZERS = {"adam": torch.optim.Adam, "sgd": torch.optim.SGD}


def _check_label_smooth(label_smooth: float, name: str) -> None:
    if not 0.0 <= label_smooth < 1.0:
        raise ValueError(f"{name}: label_smooth must be in [0, 1), got {label_smooth}")


class LogitsCrossEntropy(nn.Module):
    """Cross entropy (optionally label-smoothed) on logits a model's own head produced."""

    def __init__(self, label_smooth: float = 0.0) -> None:
        super().__init__()
        _check_label_smooth(label_smooth, "cosine_softmax_ce")
        self.label_smooth = label_smooth

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(inputs, targets, label_smoothing=self.label_smooth)


class CosineSoftmaxLoss(nn.Module):
    """Cross entropy of a cosine-softmax classifier that this module owns, fed features.

    ``scale_decay`` is the L2 weight decay put on the free parameter of ``kappa`` (pulling it
    towards ``softplus(0)``), separate from ``weight_decay`` on the class weights.
    """

    def __init__(self, num_classes: int, in_features: int | None = None,
                 init_scale: float = 10.0, label_smooth: float = 0.0,
                 optimizer: str = "adam", lr: float = 3e-4, weight_decay: float = 5e-4,
                 scale_decay: float = 0.0) -> None:
        super().__init__()
        if optimizer not in _OPTIMIZERS:
            raise ValueError(
                f"cosine_softmax: unknown optimizer '{optimizer}'; expected one of "
                f"{sorted(_OPTIMIZERS)}"
            )
        _check_label_smooth(label_smooth, "cosine_softmax")
        self.num_classes = num_classes
        self.init_scale = init_scale
        self.label_smooth = label_smooth
        self.optimizer_name, self.lr = optimizer, lr
        self.weight_decay, self.scale_decay = weight_decay, scale_decay
        self.head: CosineSoftmaxHead | None = None
        if in_features is not None:
            self.head = CosineSoftmaxHead(in_features, num_classes, init_scale)
        # a checkpoint of a lazily-built head recreates it before loading (exact resume)
        self.register_load_state_dict_pre_hook(_build_head_from_state)

    def _head_for(self, feats: torch.Tensor) -> CosineSoftmaxHead:
        if self.head is None:
            if feats.dim() != 2:
                raise ValueError(
                    f"cosine_softmax expects features [B, D] (output: feats), got "
                    f"{list(feats.shape)}"
                )
            self.head = CosineSoftmaxHead(feats.shape[1], self.num_classes, self.init_scale)
            self.head.to(feats.device)
        return self.head

    def forward(self, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        logits = self._head_for(inputs)(inputs)
        return F.cross_entropy(logits, targets, label_smoothing=self.label_smooth)

    def make_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser of the head's parameters (call after the first forward)."""
        if self.head is None:
            raise RuntimeError(
                "cosine_softmax: the head is created at the first forward (in_features was "
                "not given); call make_optimizer() after it"
            )
        groups = [
            {"params": [self.head.weight], "weight_decay": self.weight_decay},
            {"params": [self.head.raw_scale], "weight_decay": self.scale_decay},
        ]
        return _OPTIMIZERS[self.optimizer_name](groups, lr=self.lr)


def _build_head_from_state(module: CosineSoftmaxLoss, state_dict: dict, prefix: str,
                           *_: object) -> None:
    weight = state_dict.get(prefix + "head.weight")
    if module.head is None and weight is not None:
        module.head = CosineSoftmaxHead(weight.shape[1], module.num_classes, module.init_scale)


@LOSSES.register("cosine_softmax_ce", reads="logits")
def cosine_softmax_ce(label_smooth: float = 0.0) -> LogitsCrossEntropy:
    """Loss term: cross entropy on the ``logits`` of a model that owns a cosine-softmax head."""
    return LogitsCrossEntropy(label_smooth)


@LOSSES.register("cosine_softmax", reads="feats")
def cosine_softmax_loss(num_classes: int, **kwargs: Any) -> CosineSoftmaxLoss:
    """Loss term: cosine-softmax cross entropy on ``feats`` with a loss-owned head.

    ``kwargs``: in_features, init_scale, label_smooth, optimizer ('adam'|'sgd'), lr,
    weight_decay, scale_decay.
    """
    return CosineSoftmaxLoss(num_classes, **kwargs)
