"""Pairwise distances and same/different-identity masks shared by the metric losses.

Everything is a whole ``B x B`` matrix so the losses can mine with masks instead of looping
over anchors; it runs on whatever device the inputs live on.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

METRICS = ("euclidean", "cosine")

# torchreid clamps squared distances here before the square root (sqrt'(0) is infinite).
SQUARED_DISTANCE_FLOOR = 1e-12


def check_metric(metric: str) -> str:
    """Return ``metric`` if it is a known distance name, else raise a ValueError naming both."""
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}")
    return metric


def check_margin(name: str, value: float) -> float:
    """Margins are distances: reject negative values with a message naming the argument."""
    if value < 0:
        raise ValueError(f"{name} must be >= 0, got {value}")
    return float(value)


def check_batch(inputs: Tensor, targets: Tensor, loss_name: str) -> None:
    """Raise a ValueError unless ``inputs`` is ``[B, D]`` and ``targets`` is ``[B]``."""
    if inputs.dim() != 2:
        raise ValueError(
            f"{loss_name}: inputs must be a [B, D] feature matrix, got shape {tuple(inputs.shape)}"
        )
    if targets.dim() != 1 or targets.numel() != inputs.size(0):
        raise ValueError(
            f"{loss_name}: targets must be a [B] label vector with B={inputs.size(0)}, got shape "
            f"{tuple(targets.shape)}"
        )


def pairwise_distance_l2(x: Tensor, y: Tensor | None = None, metric: str = "euclidean") -> Tensor:
    """Distances between the rows of ``x`` ``[N, D]`` and of ``y`` ``[M, D]`` (default ``x``).

    ``euclidean``: ``sqrt(clamp(||x||^2 + ||y||^2 - 2 x.y, 1e-12))``, computed exactly as
    torchreid's ``TripletLoss`` does so the values agree with it.
    ``cosine``: ``1 - cos(x, y)`` on L2-normalised rows.
    Half-precision inputs are computed in float32 with autocast off: in float16 the 1e-12
    floor rounds to 0 and the diagonal's infinite sqrt gradient would turn into NaN.
    """
    check_metric(metric)
    y = x if y is None else y
    if x.dtype in (torch.float16, torch.bfloat16):
        x, y = x.float(), y.float()
    with torch.autocast(device_type=x.device.type, enabled=False):
        if metric == "cosine":
            return 1.0 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).t()
        squared_norms = x.pow(2).sum(dim=1, keepdim=True) + y.pow(2).sum(dim=1, keepdim=True).t()
        squared = torch.addmm(squared_norms, x, y.t(), beta=1, alpha=-2)
        return squared.clamp(min=SQUARED_DISTANCE_FLOOR).sqrt()


def identity_masks(targets: Tensor) -> tuple[Tensor, Tensor]:
    """Boolean ``[B, B]`` masks ``(positive, negative)`` for a label vector ``[B]``.

    ``positive[i, j]``: same identity and ``i != j`` (an anchor is not its own positive);
    ``negative[i, j]``: different identity.
    """
    same = targets.unsqueeze(0) == targets.unsqueeze(1)
    eye = torch.eye(targets.numel(), dtype=torch.bool, device=targets.device)
    return same & ~eye, ~same


def masked_max(values: Tensor, mask: Tensor, dim: int = 1) -> Tensor:
    """Row-wise max over the entries where ``mask`` is True; ``-inf`` for an empty row."""
    return values.masked_fill(~mask, float("-inf")).amax(dim=dim)


def masked_min(values: Tensor, mask: Tensor, dim: int = 1) -> Tensor:
    """Row-wise min over the entries where ``mask`` is True; ``+inf`` for an empty row."""
    return values.masked_fill(~mask, float("inf")).amin(dim=dim)


def masked_softmax(logits: Tensor, mask: Tensor, dim: int = 1) -> Tensor:
    """Softmax of ``logits`` over the masked entries; exactly zero elsewhere and on empty rows."""
    filled = logits.masked_fill(~mask, float("-inf"))
    # An all-masked row would give 0/0; give it finite logits, its weights are zeroed below.
    filled = torch.where(mask.any(dim=dim, keepdim=True), filled, torch.zeros_like(filled))
    return torch.softmax(filled, dim=dim) * mask


def masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    """Mean of ``values`` where ``mask`` is True; a zero with a grad_fn when nothing is selected.

    Selecting first keeps the ``inf`` of empty mining rows out of the arithmetic (and out of
    the gradient).
    """
    return values[mask].sum() / mask.sum().clamp(min=1)
