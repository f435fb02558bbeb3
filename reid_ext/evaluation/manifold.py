"""Smoothed-manifold re-ranking (after Bai, Bai & Tian, "Scalable person re-identification on
supervised smoothed manifold", CVPR 2017): affinities diffused along a kNN graph.

Graph over all N = num_q + num_g points: ``W[i, j] = exp(-d(i, j)^2 / sigma^2)`` for j among
the ``k`` nearest neighbours of i (i itself included), 0 elsewhere; ``P = D^-1 W`` (row
normalised); ``L = W``. The affinity is iterated ``Q(t+1) = alpha P Q(t) P^T + (1 - alpha) L``
from ``Q(0) = L``, and the query-gallery block of ``Q(T)`` becomes a distance
``1 - Q[i, j] / max_j Q[i, j]`` (1 where a query reaches no gallery item).

Two forms give the same numbers:

* ``"dense"``: the N x N iteration (O(N^3) per step), for small N;
* ``"sparse"``: the unrolled series ``Q(T) = alpha^T P^T L P^T' + (1 - alpha)
  sum_{t<T} alpha^t P^t L P^t'`` restricted to the query-gallery block, with sparse
  ``P^t`` rows for the queries and the gallery only -- memory grows like ``N k^T``, work like
  ``num_q k^(2T+1)``, never N x N. For large N keep ``k`` and ``iterations`` small.
"""
from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from reid_ext.evaluation.neighbors import as_tensor, check_metric, knn

DENSE_MAX_POINTS = 3000


def smoothed_manifold_rerank(
    qf: np.ndarray | torch.Tensor,
    gf: np.ndarray | torch.Tensor,
    k: int = 10,
    alpha: float = 0.8,
    iterations: int = 2,
    *,
    sigma: float | None = None,
    metric: str = "l2",
    method: str = "auto",
    knn_backend: str = "auto",
    chunk_size: int | None = None,
) -> np.ndarray:
    """Manifold distances [num_q, num_g] (float64, in [0, 1]) from query/gallery features.

    ``sigma`` defaults to the mean distance to the k-th neighbour. ``method`` is ``"dense"``,
    ``"sparse"`` or ``"auto"`` (dense up to ``DENSE_MAX_POINTS`` points). ``knn_backend``
    is passed to :func:`reid_ext.evaluation.neighbors.knn` (faiss when installed, for large N).
    """
    check_metric(metric)
    if method not in ("auto", "dense", "sparse"):
        raise ValueError(f"unknown method '{method}'; expected 'auto', 'dense' or 'sparse'")
    if not 0.0 <= alpha < 1.0:
        raise ValueError(f"alpha must be in [0, 1), got {alpha}")
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    qt, gt = as_tensor(qf, "qf").float(), as_tensor(gf, "gf").float()
    features = torch.cat([qt, gt])
    affinity = knn_affinity(features, k, sigma, metric, knn_backend, chunk_size)
    num_q = qt.shape[0]
    if method == "auto":
        method = "dense" if features.shape[0] <= DENSE_MAX_POINTS else "sparse"
    if method == "dense":
        block = _diffuse_dense(affinity, alpha, iterations)[:num_q, num_q:]
    else:
        block = _diffuse_block(affinity, num_q, alpha, iterations)
    return _to_distance(block)


def knn_affinity(
    features: torch.Tensor,
    k: int,
    sigma: float | None = None,
    metric: str = "l2",
    backend: str = "auto",
    chunk_size: int | None = None,
) -> sp.csr_matrix:
    """Sparse gaussian affinity over each point's ``k`` nearest neighbours (itself included)."""
    n = features.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, {n}] (the number of points), got {k}")
    dist, index = knn(features, k=k, metric=metric, chunk_size=chunk_size, backend=backend)
    dist = dist.double().clamp(min=0).numpy()
    if sigma is None:
        sigma = float(dist[:, -1].mean()) or 1.0
    if sigma <= 0:
        raise ValueError(f"sigma must be > 0, got {sigma}")
    weight = np.exp(-(dist**2) / sigma**2)
    indptr = np.arange(0, n * k + 1, k)
    return sp.csr_matrix((weight.ravel(), index.numpy().ravel(), indptr), shape=(n, n))


def _row_normalised(affinity: sp.csr_matrix) -> sp.csr_matrix:
    degree = np.asarray(affinity.sum(1)).ravel()
    return sp.diags(1.0 / np.where(degree > 0, degree, 1.0)) @ affinity


def _diffuse_dense(affinity: sp.csr_matrix, alpha: float, iterations: int) -> np.ndarray:
    """``Q(t+1) = alpha P Q(t) P^T + (1 - alpha) L`` on full N x N matrices."""
    local = torch.from_numpy(affinity.toarray())
    walk = torch.from_numpy(_row_normalised(affinity).toarray())
    smoothed = local.clone()
    for _ in range(iterations):
        smoothed = alpha * walk @ smoothed @ walk.T + (1 - alpha) * local
    return smoothed.numpy()


def _diffuse_block(
    affinity: sp.csr_matrix, num_q: int, alpha: float, iterations: int
) -> np.ndarray:
    """The query-gallery block of the dense iteration, from the unrolled series."""
    n = affinity.shape[0]
    walk = _row_normalised(affinity).tocsr()
    query_walk = sp.identity(n, format="csr")[:num_q]  # rows of P^t for the queries
    gallery_walk = sp.identity(n, format="csr")[num_q:]  # ... and for the gallery
    block = np.zeros((num_q, n - num_q))
    for t in range(iterations + 1):
        coeff = alpha**iterations if t == iterations else (1 - alpha) * alpha**t
        _add_product(block, coeff, (query_walk @ affinity).tocsr(), gallery_walk.T.tocsc())
        if t < iterations:
            query_walk = (query_walk @ walk).tocsr()
            gallery_walk = (gallery_walk @ walk).tocsr()
    return block


def _add_product(out: np.ndarray, coeff: float, left: sp.csr_matrix, right: sp.csc_matrix) -> None:
    """``out += coeff * left @ right`` in row chunks, each product densified on its own."""
    step = max(1, (1 << 22) // max(1, out.shape[1]))
    for start in range(0, out.shape[0], step):
        stop = min(start + step, out.shape[0])
        out[start:stop] += coeff * (left[start:stop] @ right).toarray()


def _to_distance(block: np.ndarray) -> np.ndarray:
    peak = block.max(1, keepdims=True)
    return 1.0 - block / np.where(peak > 0, peak, 1.0)
