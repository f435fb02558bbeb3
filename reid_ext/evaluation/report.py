"""Features -> distances (-> re-ranking) -> CMC/mAP/mINP, printed as torchreid prints them."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from reid_ext.evaluation.neighbors import pairwise_distance_squared
from reid_ext.evaluation.rank import evaluate
from reid_ext.evaluation.rerank import k_reciprocal_rerank_features


def rank_and_report(qf: torch.Tensor, gf: torch.Tensor, q_pids: np.ndarray, g_pids: np.ndarray,
                    q_camids: np.ndarray, g_camids: np.ndarray, metric: str = "euclidean",
                    ranks: Sequence[int] = (1, 5, 10, 20), rerank: bool = False,
                    protocol: str = "market", max_rank: int = 50,
                    distmat: np.ndarray | None = None) -> dict[str, Any]:
    """Rank query against gallery features with reid_ext's fast evaluation and print results.

    ``metric`` is torchreid's (``euclidean`` = squared euclidean, ``cosine``); re-ranking is
    k-reciprocal (k1=20, k2=6, lambda=0.3) from features, without an N x N matrix. Ranks beyond
    the gallery size are reported as unavailable instead of crashing as the host does.
    A precomputed ``distmat`` [q, g] (e.g. AlignedReID's global + local distance) replaces
    the feature distance; it cannot be combined with ``rerank``.
    """
    if distmat is not None:
        if rerank:
            raise ValueError("rank_and_report: re-ranking works from features; it cannot use a "
                             "precomputed distmat (turn off test.rerank or the local distance)")
    elif rerank:
        print("Applying k-reciprocal re-ranking ...")
        distmat = k_reciprocal_rerank_features(qf, gf, metric=metric)
    else:
        distmat = pairwise_distance_squared(qf, gf, metric).numpy()
    result = evaluate(distmat, q_pids, g_pids, q_camids, g_camids, max_rank=max_rank,
                      protocol=protocol)
    cmc = result.cmc
    print("** Results **")
    print(f"mAP: {result.mAP:.1%}")
    print(f"mINP: {result.mINP:.1%}")
    print("CMC curve")
    for r in ranks:
        if r <= len(cmc):
            print(f"Rank-{r:<3}: {cmc[r - 1]:.1%}")
        else:
            print(f"Rank-{r:<3}: n/a (gallery has {len(cmc)} candidates)")
    if result.num_skipped_queries:
        print(f"({result.num_skipped_queries} queries without a valid gallery match skipped)")
    return {"rank1": float(cmc[0]), "mAP": float(result.mAP), "mINP": float(result.mINP),
            "cmc": cmc, "distmat": distmat, "num_valid_queries": result.num_valid_queries,
            "ranks": {r: float(cmc[r - 1]) for r in ranks if r <= len(cmc)}}
