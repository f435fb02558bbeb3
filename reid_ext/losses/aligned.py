"""AlignedReID's local-branch loss: batch-hard triplet on the DP-aligned local distance.

The local distance of two images with stripe features ``x`` [m, c] and ``y`` [n, c]
(Zhang et al., "AlignedReID", 2017) is the shortest down/right path from the top-left to the
bottom-right of the ``m x n`` grid of squashed stripe distances
``d[i, j] = tanh(||x_i - y_j|| / 2)`` (= ``(e^d - 1) / (e^d + 1)``).
:mod:`reid_ext.evaluation.local_distance` computes it for evaluation, but not for training:
its ``sqrt_`` of an exactly zero squared distance (an image against itself, which the batch
distance matrix contains) has an infinite derivative, turning every gradient into NaN, and
it builds its work tensors on the CPU. Here the squared distance is floored at ``1e-12``
before the square root (as torchreid's triplet loss does), the dynamic programme is written
without in-place writes and runs on the inputs' device, and the values equal the evaluation
function's (tests/test_aligned.py).

``triplet_local_dp`` mines, for each anchor, the hardest positive and negative by the local
distance itself (the paper's code can also reuse the hard samples mined by the global
distance; a loss term sees one model output, so that variant is not offered).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from reid_ext.losses.distance import (
    SQUARED_DISTANCE_FLOOR,
    check_margin,
    identity_masks,
    masked_max,
    masked_mean,
    masked_min,
)
from reid_ext.losses.metric import ranking_hinge
from reid_ext.registry import LOSSES


def squashed_stripe_distances(x: Tensor, y: Tensor) -> Tensor:
    """``tanh(||x_i - y_j|| / 2)`` for stripes ``x`` [..., m, c], ``y`` [..., n, c] -> [..., m, n].

    Differentiable everywhere (the squared distance is floored before the square root).
    """
    sq = x.pow(2).sum(-1).unsqueeze(-1) + y.pow(2).sum(-1).unsqueeze(-2)
    sq = sq - 2 * x @ y.transpose(-1, -2)
    return torch.tanh(sq.clamp(min=SQUARED_DISTANCE_FLOOR).sqrt() / 2)


def dp_shortest_path(dist: Tensor) -> Tensor:
    """Shortest down/right path through every ``[..., m, n]`` grid -> ``[...]``, differentiable.

    ``S[i, j] = d[i, j] + min(S[i-1, j], S[i, j-1])``, one row of the grid at a time; each
    step is one vectorised operation over all leading dimensions (all pairs of the batch).
    """
    m, n = dist.shape[-2:]
    previous: list[Tensor] = []
    for i in range(m):
        row: list[Tensor] = []
        for j in range(n):
            cell = dist[..., i, j]
            if i and j:
                cell = cell + torch.minimum(previous[j], row[j - 1])
            elif i:
                cell = cell + previous[j]
            elif j:
                cell = cell + row[j - 1]
            row.append(cell)
        previous = row
    return previous[n - 1]


def local_distance_matrix(local_feats: Tensor, other: Tensor | None = None) -> Tensor:
    """Aligned local distances ``[B, B2]`` between stripe sets ``[B, m, c]`` and ``[B2, n, c]``."""
    other = local_feats if other is None else other
    if local_feats.dim() != 3 or other.dim() != 3 or local_feats.shape[2] != other.shape[2]:
        raise ValueError(f"local features must be [B, stripes, C] with equal C; got "
                         f"{tuple(local_feats.shape)} and {tuple(other.shape)}")
    grid = squashed_stripe_distances(local_feats.float().unsqueeze(1),
                                     other.float().unsqueeze(0))
    return dp_shortest_path(grid)


class LocalDPTripletLoss(nn.Module):
    """Batch-hard triplet loss on the DP-aligned local distance (AlignedReID's local loss).

    ``forward(local_feats [B, m, c], pids [B])``: per anchor, the largest local distance to a
    positive and the smallest to a negative, ``relu(d_ap - d_an + margin)`` (or the soft
    margin), averaged over anchors that have both. Local distances lie in ``[0, m + n - 1)``.
    """

    def __init__(self, margin: float = 0.3, soft_margin: bool = False) -> None:
        super().__init__()
        self.margin = check_margin("margin", margin)
        self.soft_margin = soft_margin

    def forward(self, local_feats: Tensor, targets: Tensor) -> Tensor:
        if targets.dim() != 1 or targets.numel() != local_feats.shape[0]:
            raise ValueError(f"triplet_local_dp: targets must be [B] with B="
                             f"{local_feats.shape[0]}, got {tuple(targets.shape)}")
        with torch.autocast(device_type=local_feats.device.type, enabled=False):
            dist = local_distance_matrix(local_feats)
        positive, negative = identity_masks(targets)
        d_ap, d_an = masked_max(dist, positive), masked_min(dist, negative)
        valid = positive.any(dim=1) & negative.any(dim=1)
        return masked_mean(ranking_hinge(d_ap, d_an, self.margin, self.soft_margin), valid)

    def extra_repr(self) -> str:
        return f"margin={self.margin}, soft_margin={self.soft_margin}"


LOSSES.register("triplet_local_dp", LocalDPTripletLoss, reads="local_feats")
