"""Batch-hard triplet loss: reid_ext's masked version vs torchreid's per-anchor loop.

Forward + backward on CPU for P x K batches of D-dimensional features; prints both loss values
(they must agree) and the speed ratio of the medians over repeats.

    PYTHONPATH=. python benchmarks/losses.py [--dim 2048] [--repeats 30] [--threads 2]
"""
from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from reid_ext import host
from reid_ext.losses.metric import triplet_hard


def seconds(loss: Callable, x: torch.Tensor, labels: torch.Tensor) -> float:
    """Wall time of one forward + backward."""
    features = x.clone().requires_grad_()
    start = time.perf_counter()
    loss(features, labels).backward()
    return time.perf_counter() - start


def median_seconds(losses: list[Callable], x: torch.Tensor, labels: torch.Tensor,
                   repeats: int) -> list[float]:
    """Median time of each loss; runs alternate so a shift in machine load hits both alike."""
    times: list[list[float]] = [[] for _ in losses]
    for i in range(repeats + 2):
        for loss, store in zip(losses, times):
            elapsed = seconds(loss, x, labels)
            if i >= 2:  # two warm-up rounds
                store.append(elapsed)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--shapes", default="16x4,64x4", help="comma-separated PxK")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)

    ours, theirs = triplet_hard(margin=0.3), host.losses.TripletLoss(margin=0.3)
    print(f"torch {torch.__version__}, {args.threads} threads, D={args.dim}, "
          f"median of {args.repeats}")
    print(f"{'batch':>9} {'reid_ext':>10} {'torchreid':>10} {'|diff|':>9} "
          f"{'ours ms':>8} {'host ms':>8} {'speed-up':>8}")
    for shape in args.shapes.split(","):
        p, k = (int(v) for v in shape.split("x"))
        x = torch.randn(p * k, args.dim)
        labels = torch.arange(p).repeat_interleave(k)[torch.randperm(p * k)]
        value_ours, value_host = ours(x, labels).item(), theirs(x, labels).item()
        t_ours, t_host = median_seconds([ours, theirs], x, labels, args.repeats)
        print(f"{shape:>9} {value_ours:10.6f} {value_host:10.6f} "
              f"{abs(value_ours - value_host):9.2e} {t_ours * 1e3:8.2f} {t_host * 1e3:8.2f} "
              f"{t_host / t_ours:7.1f}x")


if __name__ == "__main__":
    main()
