"""Pseudo-labels by DBSCAN on a sparse k-reciprocal Jaccard distance.

:func:`sparse_jaccard_distance` keeps, for each point, only its ``num_neighbors`` nearest points
by the Jaccard distance of ``reid_ext.evaluation``'s k-reciprocal re-ranking (``lambda = 0``),
as a symmetric scipy CSR matrix; every pair not kept is farther than the kept ones, so DBSCAN
with ``metric='precomputed'`` sees the same eps-neighbourhoods as with the dense N x N matrix as
long as no point has more than ``num_neighbors`` neighbours within ``eps`` (and even then the
clusters stay connected through the kept edges). Memory is O(N * num_neighbors), so 100k target
images fit where a dense float32 matrix would need 40 GB.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.cluster import DBSCAN

from reid_ext.evaluation.neighbors import as_tensor
from reid_ext.evaluation.rerank import (
    TRIPLES_PER_CHUNK,
    _min_overlap,
    _split_by_cost,
    k_reciprocal_weights_features,
)

OUTLIER_MODES = ("drop", "singleton")
# Stored distances are floored here: an exact 0 (two identical feature rows) must stay an
# explicit entry of the sparse matrix rather than read as "not a neighbour".
MIN_STORED_DISTANCE = 1e-12


def sparse_jaccard_distance(
    features: np.ndarray | torch.Tensor,
    k1: int = 20,
    k2: int = 6,
    num_neighbors: int | None = None,
    metric: str = "euclidean",
    chunk_size: int | None = None,
) -> sp.csr_matrix:
    """Symmetric sparse ``[N, N]`` Jaccard distances to each point's nearest points.

    Row ``i`` keeps the ``num_neighbors`` (default ``2 * k1``) smallest distances to other
    points that share at least one k-reciprocal neighbour with ``i`` (the others are exactly
    1); the matrix is then made symmetric by the union of kept pairs (the distance itself is
    symmetric). The diagonal is not stored. Values equal the dense Jaccard distance.
    """
    feats = as_tensor(features, "features").float()
    n = feats.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 features to cluster, got {n}")
    keep = min(num_neighbors or 2 * k1, n - 1)
    if keep < 1:
        raise ValueError(f"num_neighbors must be >= 1, got {num_neighbors}")
    weights = k_reciprocal_weights_features(feats, k1, k2, metric=metric, chunk_size=chunk_size)
    by_column = weights.tocsc()
    column_size = np.diff(by_column.indptr)
    rows_of = np.repeat(np.arange(n), np.diff(weights.indptr))
    cost = np.bincount(rows_of, weights=column_size[weights.indices], minlength=n)
    max_rows = max(1, (1 << 22) // n)
    rows, cols, vals = [], [], []
    for start, stop in _split_by_cost(cost, TRIPLES_PER_CHUNK, max_rows):
        overlap = torch.from_numpy(_min_overlap(weights[start:stop], by_column))
        local = torch.arange(stop - start)
        overlap[local, local + start] = -1.0  # never keep the point itself
        top, index = torch.topk(overlap, min(keep, n - 1), dim=1)
        shared = top > 0
        row_index = (local[:, None] + start).expand_as(index)[shared]
        o = top[shared].double()
        rows.append(row_index.numpy())
        cols.append(index[shared].numpy())
        vals.append((1.0 - o / (2.0 - o)).clamp_(min=MIN_STORED_DISTANCE).numpy())
    r, c, v = (np.concatenate(x) for x in (rows, cols, vals))
    # union of (i, j) and (j, i): one entry per unordered pair, then mirrored
    low, high = np.minimum(r, c), np.maximum(r, c)
    _, first = np.unique(low.astype(np.int64) * n + high, return_index=True)
    low, high, v = low[first], high[first], v[first].astype(np.float32)
    out = sp.csr_matrix((np.concatenate([v, v]), (np.concatenate([low, high]),
                                                  np.concatenate([high, low]))), shape=(n, n))
    out.sort_indices()
    return out


def eps_from_quantile(distance: sp.csr_matrix, quantile: float) -> float:
    """The ``quantile`` of the stored (nearest-neighbour) pairwise distances."""
    if not 0.0 < quantile < 1.0:
        raise ValueError(f"eps quantile must be in (0, 1), got {quantile}")
    upper = sp.triu(distance, k=1).tocoo()
    if upper.nnz == 0:
        raise ValueError("the distance matrix stores no pair; cannot take a quantile")
    return float(np.quantile(upper.data, quantile))


def relabel_contiguous(labels: np.ndarray, outliers: str = "drop") -> np.ndarray:
    """Clusters renamed ``0..K-1`` in the order of their first member; outliers (``-1``) stay
    ``-1`` (``drop``) or each become a new id after the clusters, in index order
    (``singleton``). Depends only on the partition and the order of points, not on the
    clusterer's own numbering."""
    if outliers not in OUTLIER_MODES:
        raise ValueError(f"outliers must be one of {OUTLIER_MODES}, got {outliers!r}")
    labels = np.asarray(labels)
    out = np.full(labels.shape, -1, dtype=np.int64)
    clustered = labels >= 0
    if clustered.any():
        ids, first = np.unique(labels[clustered], return_index=True)
        order = np.argsort(first, kind="stable")  # cluster ids by first appearance
        rank = np.empty(len(ids), np.int64)
        rank[order] = np.arange(len(ids))
        out[clustered] = rank[np.searchsorted(ids, labels[clustered])]
    if outliers == "singleton":
        num_clusters = int(out.max()) + 1 if clustered.any() else 0
        out[~clustered] = num_clusters + np.arange(int((~clustered).sum()))
    return out


@dataclass(frozen=True)
class ClusterResult:
    labels: np.ndarray  # [N] contiguous pseudo-labels, -1 = dropped outlier
    eps: float
    num_clusters: int  # clusters of >= 2 points (singletons not counted)
    num_outliers: int  # points DBSCAN marked as noise (dropped or made singletons)

    @property
    def outlier_fraction(self) -> float:
        return self.num_outliers / max(1, len(self.labels))


def cluster_dbscan(distance: sp.csr_matrix, eps: float | None = None,
                   eps_quantile: float | None = None, min_samples: int = 4,
                   outliers: str = "drop") -> ClusterResult:
    """DBSCAN (scikit-learn, ``metric='precomputed'``) on a sparse distance matrix.

    Give ``eps`` or ``eps_quantile`` (see :func:`eps_from_quantile`). ``min_samples`` counts
    the point itself, as scikit-learn does.
    """
    if (eps is None) == (eps_quantile is None):
        raise ValueError("give exactly one of eps and eps_quantile")
    if outliers not in OUTLIER_MODES:
        raise ValueError(f"outliers must be one of {OUTLIER_MODES}, got {outliers!r}")
    if eps is None:
        eps = eps_from_quantile(distance, eps_quantile)
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    raw = DBSCAN(eps=eps, min_samples=min_samples, metric="precomputed").fit_predict(distance)
    labels = relabel_contiguous(raw, outliers)
    num_outliers = int((raw < 0).sum())
    return ClusterResult(labels=labels, eps=float(eps),
                         num_clusters=int(raw.max()) + 1 if (raw >= 0).any() else 0,
                         num_outliers=num_outliers)
