"""AlignedReID local distance against a per-pair Python dynamic programme."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from reid_ext.evaluation.local_distance import (
    aligned_distance,
    global_local_distance,
    local_distance,
)
from reid_ext.evaluation.neighbors import pairwise_distance_squared


def reference_pair(x: torch.Tensor, y: torch.Tensor) -> float:
    """Shortest down/right path through the squashed stripe distances, plain loops."""
    m, n = len(x), len(y)
    d = [[0.0] * n for _ in range(m)]
    for i in range(m):
        for j in range(n):
            dist = math.sqrt(sum((float(a) - float(b)) ** 2 for a, b in zip(x[i], y[j])))
            d[i][j] = (math.exp(dist) - 1) / (math.exp(dist) + 1)
    total = [[0.0] * n for _ in range(m)]
    for i in range(m):
        for j in range(n):
            if i == 0 and j == 0:
                best = 0.0
            elif i == 0:
                best = total[i][j - 1]
            elif j == 0:
                best = total[i - 1][j]
            else:
                best = min(total[i - 1][j], total[i][j - 1])
            total[i][j] = d[i][j] + best
    return total[m - 1][n - 1]


@pytest.mark.parametrize("m,n", [(6, 6), (4, 7), (1, 5), (3, 1)])
def test_local_distance_equals_per_pair_dp(m, n):
    torch.manual_seed(0)
    lq, lg = torch.randn(5, m, 8) * 0.5, torch.randn(9, n, 8) * 0.5
    expected = torch.tensor([[reference_pair(a, b) for b in lg] for a in lq])
    for chunk_size in (None, 2):
        torch.testing.assert_close(
            local_distance(lq, lg, chunk_size=chunk_size), expected, atol=1e-5, rtol=0
        )


def test_aligned_distance_on_paired_batches():
    torch.manual_seed(1)
    x, y = torch.randn(6, 5, 4), torch.randn(6, 7, 4)
    expected = torch.tensor([reference_pair(a, b) for a, b in zip(x, y)])
    torch.testing.assert_close(aligned_distance(x, y), expected, atol=1e-5, rtol=0)


def test_local_distance_is_symmetric():
    """Swapping query and gallery transposes every grid; down/right paths map onto each other."""
    torch.manual_seed(2)
    lq, lg = torch.randn(4, 5, 6), torch.randn(7, 3, 6)
    torch.testing.assert_close(local_distance(lg, lq), local_distance(lq, lg).T)


def test_global_local_distance_adds_weighted_local_term():
    torch.manual_seed(3)
    gq, gg = torch.randn(4, 10), torch.randn(6, 10)
    lq, lg = torch.randn(4, 3, 5), torch.randn(6, 3, 5)
    combined = global_local_distance(gq, gg, lq, lg, weight=0.5)
    expected = pairwise_distance_squared(gq, gg, "l2") + 0.5 * local_distance(lq, lg)
    torch.testing.assert_close(combined, expected)
    l2 = torch.cdist(gq, gg)
    torch.testing.assert_close(global_local_distance(gq, gg, lq, lg, weight=0.0), l2, atol=1e-4,
                               rtol=0)


def test_bad_shapes_are_named():
    with pytest.raises(ValueError, match="local_g"):
        local_distance(np.zeros((2, 3, 4)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="local feature sizes"):
        local_distance(np.zeros((2, 3, 4)), np.zeros((5, 3, 6)))
