"""Sparse k-reciprocal Jaccard distance and DBSCAN pseudo-labels."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from sklearn.metrics import adjusted_rand_score

from reid_ext import host
from reid_ext.evaluation.neighbors import pairwise_distance_squared
from reid_ext.evaluation.rerank import k_reciprocal_rerank_features
from reid_ext.uda.cluster import (
    cluster_dbscan,
    eps_from_quantile,
    relabel_contiguous,
    sparse_jaccard_distance,
)


def _blobs(seed: int = 0, num_ids: int = 20, per_id: int = 15, dim: int = 32,
           num_outliers: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(num_ids, dim)) * 3
    labels = np.repeat(np.arange(num_ids), per_id)
    feats = centers[labels] + rng.normal(size=(len(labels), dim)) * 0.5
    far = rng.normal(size=(num_outliers, dim)) * 10  # far from every blob and from each other
    feats = np.concatenate([feats, far]).astype(np.float32)
    return feats, np.concatenate([labels, -np.ones(num_outliers, int)])


def _dense_jaccard(feats: np.ndarray, k1: int, k2: int) -> np.ndarray:
    """Row i from the re-ranking with query = point i, gallery = the others, lambda = 0."""
    n = len(feats)
    dense = np.zeros((n, n), np.float32)
    for i in range(n):
        others = np.delete(np.arange(n), i)
        row = k_reciprocal_rerank_features(feats[[i]], feats[others], k1, k2, 0.0)
        dense[i, others] = row[0]
    return dense


@pytest.mark.parametrize("k1,k2", [(6, 3), (10, 1), (20, 6)])
def test_sparse_jaccard_equals_dense(k1: int, k2: int) -> None:
    feats, _ = _blobs(1, num_ids=6, per_id=8, dim=8)
    n = len(feats)
    sparse = sparse_jaccard_distance(feats, k1, k2, num_neighbors=n - 1)
    assert (sparse != sparse.T).nnz == 0
    assert sparse.diagonal().max() == 0
    dense = _dense_jaccard(feats, k1, k2)
    full = np.ones((n, n), np.float32)  # unstored pairs share no neighbour: distance 1
    np.fill_diagonal(full, 0)
    coo = sparse.tocoo()
    full[coo.row, coo.col] = coo.data
    np.testing.assert_allclose(full, dense, atol=1e-5)


def test_sparse_jaccard_matches_torchreid_re_ranking() -> None:
    feats, _ = _blobs(2, num_ids=5, per_id=6, dim=8)
    m = 7
    t = torch.from_numpy(feats)
    qg = pairwise_distance_squared(t[:m], t[m:]).numpy()
    qq = pairwise_distance_squared(t[:m], t[:m]).numpy()
    gg = pairwise_distance_squared(t[m:], t[m:]).numpy()
    reference = host.utils.re_ranking(qg, qq, gg, k1=8, k2=3, lambda_value=0.0)
    sparse = sparse_jaccard_distance(feats, 8, 3, num_neighbors=len(feats) - 1).toarray()
    block = np.where(sparse[:m, m:] > 0, sparse[:m, m:], 1.0)
    np.testing.assert_allclose(block, reference, atol=1e-5)


def test_kept_neighbours_are_the_nearest() -> None:
    feats, _ = _blobs(3, num_ids=8, per_id=10, dim=16)
    everything = sparse_jaccard_distance(feats, 10, 3, num_neighbors=len(feats) - 1).toarray()
    few = sparse_jaccard_distance(feats, 10, 3, num_neighbors=5)
    for i in range(len(feats)):
        row = few.getrow(i)
        kept = row.data
        assert np.allclose(kept, everything[i, row.indices], atol=1e-6)
        # the row's own 5 nearest (it may hold more: others chose it) are all kept
        stored = np.flatnonzero(everything[i])
        nearest = stored[np.argsort(everything[i, stored], kind="stable")[:5]]
        fifth = np.sort(everything[i, stored])[min(4, len(stored) - 1)]
        assert all(j in set(row.indices) or everything[i, j] >= fifth - 1e-6 for j in nearest)


def test_dbscan_recovers_planted_blobs() -> None:
    feats, labels = _blobs(4)
    result = cluster_dbscan(sparse_jaccard_distance(feats), eps=0.5, min_samples=4)
    assert adjusted_rand_score(labels, result.labels) > 0.9
    assert result.num_clusters == 20


def test_dbscan_marks_planted_outliers() -> None:
    # without query expansion (k2=1) an isolated point has no k-reciprocal neighbour
    feats, labels = _blobs(5, num_outliers=8)
    result = cluster_dbscan(sparse_jaccard_distance(feats, k1=20, k2=1), eps=0.5, min_samples=4)
    planted = labels < 0
    assert (result.labels[planted] == -1).all()
    assert (result.labels[~planted] >= 0).mean() > 0.95
    assert adjusted_rand_score(labels[~planted], result.labels[~planted]) > 0.9
    assert result.num_outliers >= planted.sum()
    singles = cluster_dbscan(sparse_jaccard_distance(feats, k1=20, k2=1), eps=0.5,
                             min_samples=4, outliers="singleton")
    ids = singles.labels[planted]
    assert (ids >= singles.num_clusters).all() and len(set(ids.tolist())) == planted.sum()


def test_eps_quantile_is_a_quantile_of_stored_pairs() -> None:
    feats, labels = _blobs(6)
    dist = sparse_jaccard_distance(feats)
    eps = eps_from_quantile(dist, 0.5)
    upper = sp.triu(dist, 1).data
    assert abs((upper <= eps).mean() - 0.5) < 0.01
    result = cluster_dbscan(dist, eps_quantile=0.5, min_samples=4)
    assert result.eps == pytest.approx(eps)
    with pytest.raises(ValueError, match="exactly one"):
        cluster_dbscan(dist, eps=0.5, eps_quantile=0.5)


def test_relabelling_contiguous_and_deterministic() -> None:
    raw = np.array([7, 7, -1, 3, 9, 3, -1, 9, 7])
    out = relabel_contiguous(raw)
    np.testing.assert_array_equal(out, [0, 0, -1, 1, 2, 1, -1, 2, 0])
    # any renaming of the clusters gives the same output
    renamed = np.select([raw == 7, raw == 3, raw == 9], [1, 0, 5], raw)
    np.testing.assert_array_equal(relabel_contiguous(renamed), out)
    singles = relabel_contiguous(raw, "singleton")
    np.testing.assert_array_equal(singles, [0, 0, 3, 1, 2, 1, 4, 2, 0])
    with pytest.raises(ValueError, match="outliers"):
        relabel_contiguous(raw, "keep")


def test_clustering_is_deterministic() -> None:
    feats, _ = _blobs(7)
    a = cluster_dbscan(sparse_jaccard_distance(feats), eps=0.5, min_samples=4).labels
    b = cluster_dbscan(sparse_jaccard_distance(feats.copy()), eps=0.5, min_samples=4).labels
    np.testing.assert_array_equal(a, b)
    used = np.unique(a[a >= 0])
    np.testing.assert_array_equal(used, np.arange(len(used)))


def test_duplicate_points_stay_neighbours() -> None:
    feats, _ = _blobs(8, num_ids=4, per_id=6, dim=8)
    feats = np.concatenate([feats, feats[:1]])  # an exact duplicate: distance 0 to point 0
    dist = sparse_jaccard_distance(feats, 6, 3)
    assert dist[0, len(feats) - 1] > 0  # stored (floored), not dropped as a zero
    labels = cluster_dbscan(dist, eps=0.5, min_samples=3).labels
    assert labels[0] == labels[-1] >= 0
