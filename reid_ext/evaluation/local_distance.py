"""AlignedReID's local distance (Zhang et al., 2017), batched and chunked for q x g evaluation.

Two images are each cut into horizontal stripes with one local feature per stripe. The stripe
distance ``d`` (euclidean) is squashed by ``(e^d - 1) / (e^d + 1)`` (= tanh(d / 2)), and the
local distance is the shortest path from the top-left to the bottom-right of the m x n grid
moving only down or right: ``S[i, j] = d[i, j] + min(S[i-1, j], S[i, j-1])``. The dynamic
programme runs along anti-diagonals (m + n - 1 vectorised steps for all pairs at once).
"""
from __future__ import annotations

import numpy as np
import torch

from reid_ext.evaluation.neighbors import as_tensor, check_metric, pairwise_distance_squared

CHUNK_ELEMENTS = 1 << 24  # stripe distances held at once (float32: 64 MB)


def squashed_stripe_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """``(e^d - 1) / (e^d + 1)`` of the euclidean distances between all stripes.

    ``x`` [..., m, c] and ``y`` [..., n, c] (broadcastable leading dims) -> [..., m, n].
    """
    sq = x.pow(2).sum(-1).unsqueeze(-1) + y.pow(2).sum(-1).unsqueeze(-2)
    sq = sq - 2 * x @ y.transpose(-1, -2)
    return torch.tanh(sq.clamp_(min=0).sqrt_() / 2)


def shortest_path(dist: torch.Tensor) -> torch.Tensor:
    """Down/right shortest-path length through each [..., m, n] grid, along anti-diagonals."""
    m, n = dist.shape[-2:]
    lead = dist.shape[:-2]
    inf = torch.full((*lead, 1), float("inf"), dtype=dist.dtype)
    prev = torch.full((*lead, m), float("inf"), dtype=dist.dtype)  # S on the last diagonal, by i
    for s in range(m + n - 1):
        rows = torch.arange(max(0, s - n + 1), min(m - 1, s) + 1)
        padded = torch.cat([inf, prev], -1)  # padded[i] = S[i-1, .], padded[i+1] = S[i, .]
        best = torch.minimum(padded[..., rows], padded[..., rows + 1])
        if s == 0:
            best = torch.zeros_like(best)
        current = torch.full_like(prev, float("inf"))
        current[..., rows] = dist[..., rows, s - rows] + best
        prev = current
    return prev[..., m - 1]


def aligned_distance(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Local distance of paired stripe sets: ``x`` [B, m, c], ``y`` [B, n, c] -> [B]."""
    return shortest_path(squashed_stripe_distance(x, y))


def local_distance(
    local_q: np.ndarray | torch.Tensor,
    local_g: np.ndarray | torch.Tensor,
    chunk_size: int | None = None,
) -> torch.Tensor:
    """Local distance between every query [q, m, c] and gallery item [g, n, c] -> [q, g].

    Queries go ``chunk_size`` at a time (default: ~16M stripe distances per chunk).
    """
    lq, lg = as_tensor(local_q, "local_q", 3).float(), as_tensor(local_g, "local_g", 3).float()
    if lq.shape[2] != lg.shape[2]:
        raise ValueError(
            f"local feature sizes differ: {lq.shape[2]} (local_q) vs {lg.shape[2]} (local_g)"
        )
    m, n = lq.shape[1], lg.shape[1]
    if chunk_size is None:
        chunk_size = max(1, CHUNK_ELEMENTS // max(1, lg.shape[0] * m * n))
    out = torch.empty(lq.shape[0], lg.shape[0])
    for start in range(0, lq.shape[0], chunk_size):
        chunk = lq[start : start + chunk_size].unsqueeze(1)  # [c, 1, m, d] against [g, n, d]
        out[start : start + chunk_size] = shortest_path(squashed_stripe_distance(chunk, lg))
    return out


def global_local_distance(
    global_q: np.ndarray | torch.Tensor,
    global_g: np.ndarray | torch.Tensor,
    local_q: np.ndarray | torch.Tensor,
    local_g: np.ndarray | torch.Tensor,
    weight: float = 1.0,
    metric: str = "l2",
) -> torch.Tensor:
    """AlignedReID's test distance: global distance + ``weight`` x local distance, [q, g].

    ``metric`` is the global one (see :mod:`reid_ext.evaluation.neighbors`; the paper uses
    the plain euclidean distance, ``"l2"``).
    """
    check_metric(metric)
    gq, gg = as_tensor(global_q, "global_q").float(), as_tensor(global_g, "global_g").float()
    if gq.shape[0] != as_tensor(local_q, "local_q", 3).shape[0]:
        raise ValueError("global_q and local_q must have the same number of queries")
    if gg.shape[0] != as_tensor(local_g, "local_g", 3).shape[0]:
        raise ValueError("global_g and local_g must have the same number of gallery items")
    return pairwise_distance_squared(gq, gg, metric) + weight * local_distance(local_q, local_g)
