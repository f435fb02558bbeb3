"""Distances -> (re-ranking) -> CMC/mAP/mINP, printed the way torchreid prints them."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from reid_ext import host


def rank_and_report(qf: torch.Tensor, gf: torch.Tensor, q_pids: np.ndarray, g_pids: np.ndarray,
                    q_camids: np.ndarray, g_camids: np.ndarray, metric: str = "euclidean",
                    ranks: Sequence[int] = (1, 5, 10, 20), rerank: bool = False,
                    protocol: str = "market", max_rank: int = 50) -> dict[str, Any]:
    """Rank query against gallery features and print torchreid's result lines.

    Ranks beyond the gallery size are reported as unavailable instead of crashing (the host
    indexes ``cmc[r - 1]`` past the end of a short CMC curve).
    """
    distmat = host.metrics.compute_distance_matrix(qf, gf, metric).numpy()
    if rerank:
        print("Applying k-reciprocal re-ranking ...")
        q_q = host.metrics.compute_distance_matrix(qf, qf, metric).numpy()
        g_g = host.metrics.compute_distance_matrix(gf, gf, metric).numpy()
        distmat = host.utils.re_ranking(distmat, q_q, g_g)
    cmc, mAP = host.metrics.evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids,
                                          max_rank=max_rank,
                                          use_metric_cuhk03=protocol == "cuhk03",
                                          use_cython=False)
    cmc = np.asarray(cmc)
    print("** Results **")
    print(f"mAP: {mAP:.1%}")
    print("CMC curve")
    for r in ranks:
        if r <= len(cmc):
            print(f"Rank-{r:<3}: {cmc[r - 1]:.1%}")
        else:
            print(f"Rank-{r:<3}: n/a (gallery has {len(cmc)} candidates)")
    return {"rank1": float(cmc[0]), "mAP": float(mAP), "cmc": cmc, "distmat": distmat,
            "ranks": {r: float(cmc[r - 1]) for r in ranks if r <= len(cmc)}}
