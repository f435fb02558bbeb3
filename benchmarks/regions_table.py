"""Keypoint-region models (GLAD, Spindle Net, AlignedReID) against a plain ResNet-18 + BNNeck.

    PYTHONPATH=. python benchmarks/regions_table.py [--seeds 1 2] [--epochs 6] [--speed-only]

Accuracy: each model of ``--models`` is trained from scratch on ``synthetic_person`` with its
ground-truth keypoints (the synthetic configs of configs/{glad,spindle,aligned}_synthetic.yaml,
whose loss terms are softmax + triplet_hard; AlignedReID adds triplet_local_dp), the baseline
``resnet18_bnneck`` with the same softmax + triplet_hard terms and the same data, sampler,
optimiser and epochs. ``--dataset col780`` uses the col780 configs instead (MediaPipe
keypoint cache). AlignedReID is ranked twice: global distance, and global + DP local
distance (``test.local_distance``).

The defaults fit a ~15 min CPU budget: 16 training identities (256 images), 64x32 inputs,
6 epochs; the numbers say how the models start learning, not what they reach.

Speed: inference images/s (eval forward, batch ``--speed-batch``, median of 3 after 1
warm-up) of each model and of stock torchreid resnet18 / resnet50, one after the other in
this process, at ``--speed-height`` x ``--speed-width`` (128x64).

Prints markdown tables (mean ± stdev over seeds, then each run).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from typing import Any

import torch

import reid_ext  # noqa: F401
from reid_ext.benchmarking.measure import (
    attach_training_meter,
    count_parameters,
    images_per_second,
    median_seconds,
)
from reid_ext.config import load_config
from reid_ext.models.factory import build_model
from reid_ext.runner import build_engine, engine_run_kwargs

CONFIGS = {"glad_r18": "glad", "spindle_r18": "spindle", "aligned_r18": "aligned",
           "resnet18_bnneck": "glad"}  # the baseline borrows GLAD's recipe, keypoints unused
BASE_TERMS = ("[{'name': 'softmax', 'weight': 1.0, 'kwargs': {'eps': 0.1}}, "
              "{'name': 'triplet_hard', 'weight': 1.0, 'kwargs': {'margin': 0.3}}]")
SPEED_MODELS = ("resnet18", "resnet50", "resnet18_bnneck", "aligned_r18", "glad_r18",
                "spindle_r18", "aligned_r50")
SPEED_MODELS_R50 = ("glad", "spindle")  # --speed-r50: 4x / ~2.5x a ResNet-50, slow on CPU


def train_once(model: str, seed: int, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Train ``model`` once; one result row per ranking (AlignedReID: global, global+local)."""
    config = f"configs/{CONFIGS[model]}_{args.dataset}.yaml"
    opts = ["model.name", model, "train.seed", str(seed), "train.max_epoch", str(args.epochs),
            "train.stepsize", f"[{max(1, args.epochs - 1)}]", "data.workers", "0",
            "data.save_dir", tempfile.mkdtemp(prefix=f"regions_{model}_"),
            "test.local_distance", str(model.startswith("aligned")),
            "data.height", str(args.height), "data.width", str(args.width)]
    if args.dataset == "synthetic":
        opts += ["data.root", args.root,
                 "data.options.synthetic_person.num_train_ids", str(args.train_ids),
                 "data.options.synthetic_person.num_test_ids", str(args.train_ids)]
    if model == "resnet18_bnneck":
        opts += ["loss.terms", BASE_TERMS]
    if args.keypoints and CONFIGS[model] != "aligned":
        opts += ["aux.keypoints", args.keypoints]
    cfg = load_config(config, opts)
    start = time.perf_counter()
    engine = build_engine(cfg)
    meter = attach_training_meter(engine, engine.device)
    engine.run(**engine_run_kwargs(cfg))
    seconds = time.perf_counter() - start
    target = cfg.data.targets[0]
    result = engine.last_results[target]
    rows = [{"model": model + (" (global + local DP)" if model.startswith("aligned") else ""),
             "R1": result["rank1"], "mAP": result["mAP"], "mINP": result["mINP"],
             "train img/s": meter.images_per_second, "seconds": seconds}]
    fallback = getattr(engine.model, "fallback_count", None)
    if fallback is not None:
        seen = int(engine.model.images_seen)
        print(f"{model}: keypoint fallbacks {fallback.tolist()} of {seen} images")
    if model.startswith("aligned"):
        # the global-only ranking of the same trained model
        engine.local_distance_weight = 0.0
        kwargs = engine_run_kwargs(cfg)
        kwargs["test_only"] = True
        engine.run(**kwargs)
        result = engine.last_results[target]
        rows.append({"model": model + " (global)", "R1": result["rank1"], "mAP": result["mAP"],
                     "mINP": result["mINP"], "train img/s": meter.images_per_second,
                     "seconds": seconds})
    return rows


def speed_table(args: argparse.Namespace) -> None:
    height, width = args.speed_height, args.speed_width
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(args.speed_batch, 3, height, width, generator=generator)
    keypoints = torch.rand(args.speed_batch, 17, 3, generator=generator)
    keypoints = keypoints * torch.tensor([width * 0.6, height * 0.8, 0.0]) + torch.tensor(
        [width * 0.2, height * 0.1, 1.0])
    print(f"\n| model | params (M) | infer img/s (batch {args.speed_batch}, {height}x{width}) |")
    print("|---|---|---|")
    for name in SPEED_MODELS + (SPEED_MODELS_R50 if args.speed_r50 else ()):
        torch.manual_seed(0)
        model = build_model(name, num_classes=100, loss="softmax", pretrained=False).eval()
        aux = {"keypoints": keypoints} if "keypoints" in getattr(model, "aux_inputs", ()) else {}

        def forward(model: torch.nn.Module = model, aux: dict = aux) -> None:
            with torch.no_grad():
                model(images, **aux)

        seconds = median_seconds(forward, warmup=1, repeats=3, device=torch.device("cpu"))
        print(f"| {name} | {count_parameters(model) / 1e6:.1f} | "
              f"{images_per_second(args.speed_batch, seconds):.1f} |", flush=True)


def summarise(rows: list[dict[str, Any]], args: argparse.Namespace) -> None:
    print(f"\n| model ({args.dataset}, {args.epochs} epochs, seeds {args.seeds}) | R1 | mAP | "
          f"mINP | train img/s | train+eval s |")
    print("|---|---|---|---|---|---|")
    names = list(dict.fromkeys(r["model"] for r in rows))
    for name in names:
        runs = [r for r in rows if r["model"] == name]
        cells = []
        for key in ("R1", "mAP", "mINP", "train img/s", "seconds"):
            values = [r[key] for r in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            fmt = "{:.1f} ± {:.1f}" if key in ("train img/s", "seconds") else "{:.3f} ± {:.3f}"
            cells.append(fmt.format(statistics.mean(values), spread))
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\n| run | R1 | mAP | mINP |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['model']} seed {r['seed']} | {r['R1']:.3f} | {r['mAP']:.3f} | "
              f"{r['mINP']:.3f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(CONFIGS),
                        choices=list(CONFIGS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--dataset", choices=("synthetic", "col780"), default="synthetic")
    parser.add_argument("--root", default="reid-data", help="synthetic data root")
    parser.add_argument("--keypoints", default="",
                        help="keypoint cache dir overriding the config's aux.keypoints (col780)")
    parser.add_argument("--train-ids", type=int, default=16,
                        help="synthetic identities for training (and as many for testing)")
    parser.add_argument("--height", type=int, default=64, help="training input height")
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--speed-height", type=int, default=128)
    parser.add_argument("--speed-width", type=int, default=64)
    parser.add_argument("--speed-batch", type=int, default=16)
    parser.add_argument("--speed-r50", action="store_true", help="also time glad and spindle")
    parser.add_argument("--speed-only", action="store_true")
    parser.add_argument("--no-speed", action="store_true")
    args = parser.parse_args()
    if not args.no_speed:
        speed_table(args)
    if args.speed_only:
        return
    rows = []
    for seed in args.seeds:
        for model in args.models:
            for row in train_once(model, seed, args):
                rows.append({**row, "seed": seed})
                print(f"{row['model']} seed {seed}: R1 {row['R1']:.3f} mAP {row['mAP']:.3f} "
                      f"({row['seconds']:.0f} s)", flush=True)
    summarise(rows, args)


if __name__ == "__main__":
    main()
