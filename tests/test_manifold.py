"""Smoothed-manifold re-ranking: brute-force reference, dense == sparse, and it helps on chains."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from reid_ext.evaluation.manifold import smoothed_manifold_rerank
from reid_ext.evaluation.neighbors import faiss_available, knn
from reid_ext.evaluation.rank import evaluate


def reference_manifold(features: np.ndarray, num_q: int, k, alpha, iterations, sigma):
    """The iteration written out on dense numpy arrays, kNN by a full sort."""
    diff = features[:, None, :] - features[None, :, :]
    dist = np.sqrt((diff**2).sum(-1))
    n = len(features)
    affinity = np.zeros((n, n))
    for i in range(n):
        for j in np.argsort(dist[i], kind="stable")[:k]:
            affinity[i, j] = np.exp(-dist[i, j] ** 2 / sigma**2)
    walk = affinity / affinity.sum(1, keepdims=True)
    smoothed = affinity.copy()
    for _ in range(iterations):
        smoothed = alpha * walk @ smoothed @ walk.T + (1 - alpha) * affinity
    block = smoothed[:num_q, num_q:]
    peak = block.max(1, keepdims=True)
    return 1 - block / np.where(peak > 0, peak, 1)


@pytest.mark.parametrize("method", ["dense", "sparse"])
def test_matches_brute_force_reference(method):
    torch.manual_seed(0)
    feats = torch.randn(70, 5, dtype=torch.float64)
    ours = smoothed_manifold_rerank(
        feats[:20], feats[20:], k=5, alpha=0.7, iterations=3, sigma=1.5, method=method
    )
    expected = reference_manifold(feats.numpy(), 20, 5, 0.7, 3, 1.5)
    np.testing.assert_allclose(ours, expected, atol=1e-5)


@pytest.mark.parametrize("k,alpha,iterations", [(4, 0.9, 0), (6, 0.5, 2), (8, 0.8, 4)])
def test_dense_and_sparse_forms_agree(k, alpha, iterations):
    torch.manual_seed(1)
    qf, gf = torch.randn(30, 12), torch.randn(250, 12)
    kwargs = {"k": k, "alpha": alpha, "iterations": iterations, "chunk_size": 64}
    dense = smoothed_manifold_rerank(qf, gf, method="dense", **kwargs)
    sparse = smoothed_manifold_rerank(qf, gf, method="sparse", **kwargs)
    np.testing.assert_allclose(sparse, dense, rtol=0, atol=1e-9)


def chains(num_ids=12, length=20, step=1.0, gap=4.0, dim=16, seed=0):
    """Identities along parallel lines: a chain's far end is farther than the next chain, but
    every point's nearest neighbours lie on its own chain."""
    rng = np.random.default_rng(seed)
    t = np.arange(length) * step
    points = np.stack(
        [np.stack([t, np.full(length, p * gap)], 1) for p in range(num_ids)]
    ).reshape(-1, 2)
    points += rng.normal(scale=0.05, size=points.shape)
    rotation, _ = np.linalg.qr(rng.normal(size=(dim, dim)))
    feats = np.concatenate([points, np.zeros((len(points), dim - 2))], 1) @ rotation
    pids = np.repeat(np.arange(num_ids), length)
    is_query = np.tile(np.arange(length) == 0, num_ids)
    return torch.from_numpy(feats).float(), pids, is_query


def test_improves_map_on_a_manifold():
    feats, pids, is_query = chains()
    qf, gf = feats[is_query], feats[~is_query]
    q_pids, g_pids = pids[is_query], pids[~is_query]
    q_cams, g_cams = np.zeros(len(qf), int), np.ones(len(gf), int)
    raw = evaluate(None, q_pids, g_pids, q_cams, g_cams, max_rank=10, qf=qf, gf=gf, metric="l2")
    smoothed = smoothed_manifold_rerank(qf, gf, k=4, alpha=0.8, iterations=6)
    diffused = evaluate(smoothed, q_pids, g_pids, q_cams, g_cams, max_rank=10)
    assert raw.mAP < 0.6  # far chain points rank behind the neighbouring chains
    assert diffused.mAP > 0.95  # the walk follows each chain to its far end


@pytest.mark.parametrize("metric", ["euclidean", "cosine", "l2"])
def test_faiss_knn_equals_torch_knn(metric):
    if not faiss_available():
        pytest.skip("faiss-cpu is not installed (pip install 'reid-ext[faiss]')")
    torch.manual_seed(2)
    x, y = torch.randn(60, 16), torch.randn(300, 16)
    dist_t, idx_t = knn(x, y, k=7, metric=metric, backend="torch", chunk_size=13)
    dist_f, idx_f = knn(x, y, k=7, metric=metric, backend="faiss")
    np.testing.assert_array_equal(idx_f.numpy(), idx_t.numpy())
    np.testing.assert_allclose(dist_f.numpy(), dist_t.numpy(), atol=1e-4)


def test_bad_parameters_are_named():
    qf, gf = torch.randn(3, 4), torch.randn(6, 4)
    with pytest.raises(ValueError, match="alpha"):
        smoothed_manifold_rerank(qf, gf, k=3, alpha=1.0)
    with pytest.raises(ValueError, match="method"):
        smoothed_manifold_rerank(qf, gf, k=3, method="fast")
    with pytest.raises(ValueError, match="k must be"):
        smoothed_manifold_rerank(qf, gf, k=50)
