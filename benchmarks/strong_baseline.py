"""CE + triplet_hard + center (the strong baseline) against CE alone, equal epochs and seeds.

    PYTHONPATH=. python benchmarks/strong_baseline.py [--seeds 1 2] [--epochs 10]

Trains configs/strong_baseline_synthetic.yaml twice per seed (its loss terms, then softmax
alone) and prints R1/mAP/mINP per run and the mean over seeds, as a markdown table.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import reid_ext  # noqa: F401
from reid_ext.config import load_config
from reid_ext.runner import run

CONFIG = "configs/strong_baseline_synthetic.yaml"
CE_ONLY = "[{'name': 'softmax', 'weight': 1.0, 'kwargs': {'eps': 0.1}}]"


def train_once(seed: int, epochs: int, ce_only: bool, root: str) -> dict[str, float]:
    opts = ["train.seed", str(seed), "train.max_epoch", str(epochs), "data.root", root,
            "data.save_dir", tempfile.mkdtemp(prefix="strong_baseline_")]
    if ce_only:
        opts += ["loss.terms", CE_ONLY]
    start = time.perf_counter()
    engine = run(load_config(CONFIG, opts))
    result = engine.last_results["synthetic_person"]
    return {"R1": result["rank1"], "mAP": result["mAP"], "mINP": result["mINP"],
            "seconds": time.perf_counter() - start}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--root", default="reid-data")
    args = parser.parse_args()
    rows = {"CE + triplet_hard + center": [], "CE alone": []}
    for seed in args.seeds:
        rows["CE + triplet_hard + center"].append(train_once(seed, args.epochs, False, args.root))
        rows["CE alone"].append(train_once(seed, args.epochs, True, args.root))
    print(f"\n| loss terms ({args.epochs} epochs, seeds {args.seeds}) | R1 | mAP | mINP | "
          f"train+eval s |")
    print("|---|---|---|---|---|")
    for name, runs in rows.items():
        cells = []
        for key in ("R1", "mAP", "mINP", "seconds"):
            values = [r[key] for r in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            fmt = "{:.0f} ± {:.0f}" if key == "seconds" else "{:.3f} ± {:.3f}"
            cells.append(fmt.format(statistics.mean(values), spread))
        print(f"| {name} | " + " | ".join(cells) + " |")
        for seed, r in zip(args.seeds, runs):
            print(f"|   seed {seed} | {r['R1']:.3f} | {r['mAP']:.3f} | {r['mINP']:.3f} | "
                  f"{r['seconds']:.0f} |")


if __name__ == "__main__":
    main()
