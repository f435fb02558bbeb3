"""Exact vs approximate (faiss IVF) k-reciprocal re-ranking from features: time and accuracy.

Features are clustered like embeddings of a trained model (one centre per identity plus noise,
so neighbours mean something); both variants run on the same inputs and the script prints
their times, the largest difference of the re-ranked distances, and mAP / rank-1 of each.

    python benchmarks/rerank_approx.py                      # 3368 x 15913, 751 identities
    python benchmarks/rerank_approx.py --queries 3368 --gallery 100000
"""
from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from reid_ext.evaluation import evaluate
from reid_ext.evaluation.rerank import k_reciprocal_rerank_features


def clustered(num_ids: int, count: int, dim: int, noise: float, rng: np.random.Generator,
              centres: np.ndarray) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
    pids = rng.integers(0, num_ids, count)
    feats = centres[pids] + noise * rng.standard_normal((count, dim))
    return torch.from_numpy(feats.astype(np.float32)), pids, rng.integers(0, 6, count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=3368)
    parser.add_argument("--gallery", type=int, default=15913)
    parser.add_argument("--ids", type=int, default=751)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--noise", type=float, default=3.0)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((args.ids, args.dim))
    qf, q_pids, q_cams = clustered(args.ids, args.queries, args.dim, args.noise, rng, centres)
    gf, g_pids, g_cams = clustered(args.ids, args.gallery, args.dim, args.noise, rng, centres)
    results = {}
    for name, approximate in (("exact", False), ("approximate", True)):
        start = time.perf_counter()
        dist = k_reciprocal_rerank_features(qf, gf, approximate=approximate)
        seconds = time.perf_counter() - start
        metrics = evaluate(dist, q_pids, g_pids, q_cams, g_cams, max_rank=1)
        results[name] = (dist, seconds, metrics)
    print(f"{args.queries} x {args.gallery}, dim {args.dim}, {args.ids} ids, noise "
          f"{args.noise}, torch threads {torch.get_num_threads()}")
    print("| variant | seconds | mAP | rank-1 |")
    print("|---|---|---|---|")
    for name, (_, seconds, metrics) in results.items():
        print(f"| {name} | {seconds:.1f} | {metrics.mAP:.4f} | {metrics.cmc[0]:.4f} |")
    diff = np.abs(results["exact"][0] - results["approximate"][0])
    print(f"re-ranked distances: max abs diff {diff.max():.3g}, mean {diff.mean():.3g}")


if __name__ == "__main__":
    main()
