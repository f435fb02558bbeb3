"""Fast, chunked ranking metrics and re-ranking (public API).

``evaluate`` equals torchreid's ``evaluate_rank`` (plus mINP) in bounded memory;
``k_reciprocal_rerank`` equals torchreid's ``re_ranking`` without N x N matrices;
``smoothed_manifold_rerank`` and ``local_distance`` add the SSM and AlignedReID distances.
"""
from reid_ext.evaluation.local_distance import (
    aligned_distance,
    global_local_distance,
    local_distance,
)
from reid_ext.evaluation.manifold import knn_affinity, smoothed_manifold_rerank
from reid_ext.evaluation.neighbors import knn, pairwise_distance_squared
from reid_ext.evaluation.rank import RankResult, evaluate, pool_multi_query
from reid_ext.evaluation.rerank import k_reciprocal_rerank, k_reciprocal_rerank_features

__all__ = [
    "RankResult",
    "aligned_distance",
    "evaluate",
    "global_local_distance",
    "k_reciprocal_rerank",
    "k_reciprocal_rerank_features",
    "knn",
    "knn_affinity",
    "local_distance",
    "pairwise_distance_squared",
    "pool_multi_query",
    "smoothed_manifold_rerank",
]
