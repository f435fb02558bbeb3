"""Time and memory of one UDA clustering step: k-reciprocal Jaccard distance + DBSCAN.

    python benchmarks/uda_clustering.py                     # sparse at 20k and 100k, dense at 20k
    python benchmarks/uda_clustering.py --sizes 5000 --dense-sizes 5000   # ~1 min

Inputs: seeded synthetic features (``--dim`` dims, identities of ``--per-id`` images around a
random centre, Gaussian noise), camera-normalised as in the loop. "sparse" is
``reid_ext.uda.cluster``: ``sparse_jaccard_distance`` (k-NN entries only) + scikit-learn DBSCAN
on the sparse matrix. "dense" is the usual N x N baseline: the same k-reciprocal weights, the
Jaccard distance of *every* pair into a float32 N x N array, DBSCAN on that array. Each
(method, size) runs in a fresh subprocess; peak RSS is the kernel's high-water mark (VmHWM)
after resetting it (``/proc/self/clear_refs``) once the features are in memory, so it counts
what the step itself allocates on top of the ~0.7 GB torch import and the inputs.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def synthetic_features(n: int, dim: int, per_id: int, seed: int) -> tuple[np.ndarray, np.ndarray,
                                                                          np.ndarray]:
    rng = np.random.default_rng(seed)
    ids = np.arange(n) // per_id
    centres = rng.normal(size=(ids.max() + 1, dim)).astype(np.float32)
    cams = rng.integers(0, 6, n)
    cam_shift = rng.normal(scale=0.5, size=(6, dim)).astype(np.float32)
    feats = centres[ids] + cam_shift[cams] + rng.normal(scale=0.9, size=(n, dim)).astype(
        np.float32)
    return feats, ids, cams


def _vm(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1]) * 1024
    return 0


def worker(method: str, n: int, dim: int, per_id: int, seed: int) -> dict:
    import torch
    from sklearn.cluster import DBSCAN
    from sklearn.metrics import adjusted_rand_score

    from reid_ext.evaluation.rerank import _min_overlap, k_reciprocal_weights_features
    from reid_ext.uda.camera_norm import camera_normalize
    from reid_ext.uda.cluster import cluster_dbscan, sparse_jaccard_distance

    torch.set_num_threads(2)
    feats, ids, cams = synthetic_features(n, dim, per_id, seed)
    feats, _ = camera_normalize(feats, cams)
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    before = _vm("VmRSS")
    start = time.perf_counter()
    if method == "sparse":
        dist = sparse_jaccard_distance(feats, 20, 6, num_neighbors=40)
        t_dist = time.perf_counter() - start
        labels = cluster_dbscan(dist, eps=0.6, min_samples=4).labels
        stored = dist.nnz
    else:
        weights = k_reciprocal_weights_features(feats, 20, 6)
        by_column = weights.tocsc()
        dense = np.empty((n, n), np.float32)
        step = max(1, (1 << 22) // n)
        for a in range(0, n, step):
            o = _min_overlap(weights[a:a + step], by_column)
            dense[a:a + step] = 1 - o / (2 - o)
        t_dist = time.perf_counter() - start
        labels = DBSCAN(eps=0.6, min_samples=4, metric="precomputed").fit_predict(dense)
        stored = n * n
    total = time.perf_counter() - start
    return {"method": method, "n": n, "dim": dim, "distance_s": round(t_dist, 1),
            "total_s": round(total, 1), "peak_rss_mb": round(_vm("VmHWM") / 2**20),
            "extra_mb": round((_vm("VmHWM") - before) / 2**20), "stored": int(stored),
            "clusters": int(labels.max() + 1), "outliers": float(np.mean(labels < 0)),
            "ari": round(float(adjusted_rand_score(ids, labels)), 4)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[20000, 100000])
    parser.add_argument("--dense-sizes", type=int, nargs="*", default=[20000])
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--per-id", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="")
    parser.add_argument("--worker", nargs=2, metavar=("METHOD", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], int(args.worker[1]), args.dim, args.per_id,
                                args.seed)))
        return 0
    rows = []
    jobs = [("dense", n) for n in args.dense_sizes] + [("sparse", n) for n in args.sizes]
    for method, n in sorted(jobs, key=lambda j: j[1]):
        out = subprocess.run([sys.executable, __file__, "--worker", method, str(n), "--dim",
                              str(args.dim), "--per-id", str(args.per_id), "--seed",
                              str(args.seed)], capture_output=True, text=True,
                             env={"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "2",
                                  "MKL_NUM_THREADS": "2", "PATH": "/usr/bin:/bin"})
        if out.returncode != 0:
            print(f"{method} {n}: failed\n{out.stderr[-2000:]}")
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(json.dumps(row), flush=True)
    print("\n| method | N | dim | distance s | total s | peak RSS MB | extra MB | stored "
          "entries | clusters | outliers | ARI |\n|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['method']} | {r['n']} | {r['dim']} | {r['distance_s']} | {r['total_s']} | "
              f"{r['peak_rss_mb']} | {r['extra_mb']} | {r['stored']:.2e} | {r['clusters']} | "
              f"{r['outliers']:.3f} | {r['ari']} |")
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
