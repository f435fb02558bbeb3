"""Evaluation and re-ranking: reid_ext against torchreid on the same inputs, one run.

For each size (queries x gallery, random 512-d features, Market-like identities and cameras)
it times torchreid's python ``evaluate_rank`` and ``re_ranking`` and reid_ext's ``evaluate``
and ``k_reciprocal_rerank``, each call in a fresh subprocess that loads the same saved inputs,
and prints time ratios, peak-RSS ratios and the largest difference of the results. Then it
runs reid_ext's ``k_reciprocal_rerank_features`` alone on a large gallery (default 100k).

Memory: once the inputs are loaded, the worker resets the kernel's peak-RSS mark
(``/proc/self/clear_refs``), so "peak" is the process's highest RSS *during the call* (torch
import and inputs included, as they stay resident) and "extra" is that peak minus the RSS just
before the call -- what the call itself allocates. Without clear_refs (non-Linux) the peak is
``ru_maxrss``, which may then be the torch import's transient peak.

    python benchmarks/evaluation.py                      # 500x2500, 1500x7500, 3368x15913 + 100k
    python benchmarks/evaluation.py --quick              # 300x1500 and a 10k-gallery run
    python benchmarks/evaluation.py --sizes 500x2500 --big-gallery 0
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DEFAULT_SIZES = "500x2500,1500x7500,3368x15913"
IMAGES_PER_ID = 21  # Market-1501's test split: 15,913 gallery images of 751 identities
NUM_CAMS = 6


def _status_mb(field: str) -> float | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return float(line.split()[1]) / 1024  # kB
    except OSError:
        return None
    return None


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark (VmHWM) to the current RSS; False where unsupported."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def current_rss_mb() -> float:
    return _status_mb("VmRSS") or 0.0


def peak_rss_mb() -> float:
    return _status_mb("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# --- worker side: one measured call per process ----------------------------------------------
def run_worker(task: str, data: Path, out: Path) -> None:
    sys.path.insert(0, str(REPO))
    import warnings

    import torch

    from reid_ext import host

    warnings.filterwarnings("ignore")
    ids = np.load(data / "ids.npz")
    id_args = (ids["q_pids"], ids["g_pids"], ids["q_camids"], ids["g_camids"])
    if task.startswith("eval"):
        inputs = (np.load(data / "q_g.npy"),)
    elif task in ("rerank_host", "rerank_ours"):
        inputs = tuple(np.load(data / f"{name}.npy") for name in ("q_g", "q_q", "g_g"))
    else:  # rerank from features
        inputs = tuple(torch.from_numpy(np.load(data / f"{name}.npy")) for name in ("qf", "gf"))
    reset_peak_rss()
    baseline = current_rss_mb()
    start = time.perf_counter()
    if task == "eval_host":
        cmc, m_ap = host.metrics.evaluate_rank(*inputs, *id_args, 50, use_cython=False)
        result = np.append(cmc, m_ap)
    elif task == "eval_ours":
        from reid_ext.evaluation import evaluate

        ranked = evaluate(*inputs, *id_args, 50)
        result = np.append(ranked.cmc, ranked.mAP)
    elif task == "rerank_host":
        result = host.utils.re_ranking(*inputs)
    elif task == "rerank_ours":
        from reid_ext.evaluation import k_reciprocal_rerank

        result = k_reciprocal_rerank(*inputs)
    elif task == "rerank_features_ours":
        from reid_ext.evaluation import k_reciprocal_rerank_features

        result = k_reciprocal_rerank_features(*inputs)
    else:
        raise ValueError(f"unknown task '{task}'")
    seconds = time.perf_counter() - start
    peak = peak_rss_mb()
    if task != "rerank_features_ours":
        np.save(out, result)
    print(json.dumps({"seconds": seconds, "peak_mb": peak, "extra_mb": peak - baseline}))


def measure(task: str, data: Path) -> dict:
    out = data / f"{task}.npy"
    proc = subprocess.run(
        [sys.executable, __file__, "--worker", task, "--data", str(data), "--out", str(out)],
        capture_output=True, text=True, check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"{task} failed:\n{proc.stderr[-3000:]}")
    stats = json.loads(proc.stdout.strip().splitlines()[-1])
    stats["out"] = out
    return stats


# --- parent side: inputs, comparisons, report ------------------------------------------------
def make_inputs(num_q: int, num_g: int, dim: int, data: Path, with_blocks: bool, seed: int) -> None:
    import torch

    sys.path.insert(0, str(REPO))
    from reid_ext.evaluation.neighbors import pairwise_distance_squared

    rng = np.random.default_rng(seed)
    num_ids = max(2, num_g // IMAGES_PER_ID)
    g_pids = rng.integers(0, num_ids, num_g)
    q_pids = rng.integers(0, num_ids, num_q)
    np.savez(
        data / "ids.npz", q_pids=q_pids, g_pids=g_pids,
        q_camids=rng.integers(0, NUM_CAMS, num_q), g_camids=rng.integers(0, NUM_CAMS, num_g),
    )
    gen = torch.Generator().manual_seed(seed)
    qf, gf = torch.randn(num_q, dim, generator=gen), torch.randn(num_g, dim, generator=gen)
    np.save(data / "qf.npy", qf.numpy())
    np.save(data / "gf.npy", gf.numpy())
    if with_blocks:  # torchreid's engine distances: squared euclidean, float32
        np.save(data / "q_g.npy", pairwise_distance_squared(qf, gf).numpy())
        np.save(data / "q_q.npy", pairwise_distance_squared(qf, qf).numpy())
        np.save(data / "g_g.npy", pairwise_distance_squared(gf, gf).numpy())


def compare(label: str, size: str, host_stats: dict, ours: dict) -> str:
    diff = float(np.abs(np.load(host_stats["out"]) - np.load(ours["out"])).max())
    return (
        f"| {label} | {size} | {host_stats['seconds']:.2f} | {ours['seconds']:.2f} | "
        f"{host_stats['seconds'] / ours['seconds']:.1f}x | {host_stats['peak_mb']:.0f} | "
        f"{ours['peak_mb']:.0f} | {ours['peak_mb'] / host_stats['peak_mb']:.2f} | "
        f"{host_stats['extra_mb']:.0f} | {ours['extra_mb']:.0f} | {diff:.1e} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=DEFAULT_SIZES, help="comma list of QxG")
    parser.add_argument("--big-gallery", type=int, default=100_000,
                        help="gallery size of the features-only re-ranking run (0: skip)")
    parser.add_argument("--big-queries", type=int, default=3368)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--quick", action="store_true", help="300x1500 and a 10k gallery")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    parser.add_argument("--out", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        run_worker(args.worker, Path(args.data), Path(args.out))
        return
    if args.quick:
        args.sizes, args.big_gallery = "300x1500", 10_000
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes.split(",") if s]
    print("| task | size (q x g) | torchreid s | reid_ext s | speed-up | torchreid peak MB | "
          "reid_ext peak MB | peak ratio | torchreid extra MB | reid_ext extra MB | max diff |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for num_q, num_g in sizes:
        with tempfile.TemporaryDirectory(prefix="reid_ext_bench_") as tmp:
            data = Path(tmp)
            make_inputs(num_q, num_g, args.dim, data, True, args.seed)
            for task in ("eval", "rerank"):
                host_stats = measure(f"{task}_host", data)
                ours = measure(f"{task}_ours", data)
                print(compare(task, f"{num_q}x{num_g}", host_stats, ours), flush=True)
    if args.big_gallery:
        with tempfile.TemporaryDirectory(prefix="reid_ext_bench_") as tmp:
            data = Path(tmp)
            make_inputs(args.big_queries, args.big_gallery, args.dim, data, False, args.seed)
            stats = measure("rerank_features_ours", data)
            print(f"\nk_reciprocal_rerank_features, {args.big_queries} x {args.big_gallery} "
                  f"(dim {args.dim}): {stats['seconds']:.1f} s, peak RSS "
                  f"{stats['peak_mb'] / 1024:.2f} GiB (extra {stats['extra_mb'] / 1024:.2f} GiB)")


if __name__ == "__main__":
    main()
