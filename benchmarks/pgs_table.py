"""Ablation of pose-guided segmentation attention on synthetic_tiger (docs/benchmarks.md).

Trains ``configs/pgs_synthetic_tiger.yaml`` for each variant and seed under the same budget and
reports Re-ID mAP / Rank-1 on the test identities and the segmentation branch's mIoU on the
held-out (query + gallery) images against the class maps drawn from their keypoints.

Variants: ``<structure>:<attention>`` (``III:soft``, ``III:hard``, ``I:soft`` ...) or ``none``
(the same ResNet trunk without segmentation branch and part pathways: global pathway only,
triplet + ID loss). Each run writes ``OUT/<variant>_s<seed>.json``; ``--resume`` skips runs
whose file exists. The table (mean and the per-seed values) goes to ``OUT/table.md``.

usage: python benchmarks/pgs_table.py --out OUT [--variants III:soft III:hard none ...]
       [--seeds 1 2] [--epochs 6] [--height 64] [--width 128] [--train-ids 30] [--test-ids 30]
       [--images-per-camera 2] [--cameras 4] [--resume] [--render-only]
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "pgs_synthetic_tiger.yaml"
DEFAULT_VARIANTS = ("III:soft", "III:hard", "none", "I:soft", "II:soft", "IV:soft")


def variant_config(variant: str, seed: int, args: argparse.Namespace, save_dir: Path) -> Any:
    """The benchmark's config of one variant and seed."""
    from reid_ext.config import load_config

    opts = ["data.root", str(args.data_root), "data.save_dir", str(save_dir),
            "data.height", str(args.height), "data.width", str(args.width),
            "train.max_epoch", str(args.epochs), "train.seed", str(seed),
            "train.batch_size", str(args.batch_size),
            "data.options.synthetic_tiger.num_train_ids", str(args.train_ids),
            "data.options.synthetic_tiger.num_test_ids", str(args.test_ids),
            "data.options.synthetic_tiger.images_per_id_per_camera", str(args.images_per_camera),
            "data.options.synthetic_tiger.num_cameras", str(args.cameras),
            "data.options.synthetic_tiger.height", str(args.height),
            "data.options.synthetic_tiger.width", str(args.width)]
    cfg = load_config(CONFIG, opts)
    cfg.defrost()
    if variant == "none":
        cfg.model.kwargs.attention = "none"
        cfg.aux.seg = ""
        cfg.loss.terms = [t for t in cfg.loss.terms if t["name"] != "segmentation_ce"]
    else:
        structure, attention = variant.split(":")
        cfg.model.kwargs.structure = structure
        cfg.model.kwargs.attention = attention
        cfg.aux.seg = structure
        for term in cfg.loss.terms:
            if term["name"] == "segmentation_ce":
                term["kwargs"] = {**term.get("kwargs", {}), "structure": structure}
    cfg.freeze()
    return cfg


@torch.no_grad()
def segmentation_miou(model: torch.nn.Module, loaders: list[Any], num_classes: int) -> float:
    """Mean IoU over the structure's classes (background included) on the loaders' images."""
    confusion = torch.zeros(num_classes, num_classes, dtype=torch.long)
    model.eval()
    for loader in loaders:
        for batch in loader:
            target = batch["seg"]
            logits = model.segment(batch["img"])
            logits = torch.nn.functional.interpolate(logits, size=target.shape[-2:],
                                                     mode="bilinear", align_corners=False)
            pred = logits.argmax(1)
            valid = target >= 0
            confusion += torch.bincount(target[valid] * num_classes + pred[valid],
                                        minlength=num_classes ** 2).view(num_classes, -1)
    tp = confusion.diag().float()
    union = confusion.sum(0).float() + confusion.sum(1).float() - tp
    present = union > 0
    return float((tp[present] / union[present]).mean())


def run_one(variant: str, seed: int, args: argparse.Namespace) -> dict[str, Any]:
    from reid_ext.runner import build_engine

    save_dir = args.out / "runs" / f"{variant.replace(':', '_')}_s{seed}"
    cfg = variant_config(variant, seed, args, save_dir)
    engine = build_engine(cfg)
    start = time.time()
    engine.run(save_dir=str(save_dir), max_epoch=cfg.train.max_epoch, eval_freq=-1,
               ranks=[1, 5], print_freq=1000)
    seconds = time.time() - start
    result = dict(engine.last_results["synthetic_tiger"])
    row: dict[str, Any] = {"variant": variant, "seed": seed, "mAP": result["mAP"],
                           "rank1": result["rank1"], "train_eval_s": round(seconds, 1),
                           "epochs": cfg.train.max_epoch, "miou": None}
    if variant != "none":
        loaders = engine.datamanager.test_loader["synthetic_tiger"]
        num_classes = engine.model.structure.num_classes
        row["miou"] = segmentation_miou(engine.model, [loaders["query"], loaders["gallery"]],
                                        num_classes)
    return row


def table(rows: list[dict[str, Any]], variants: list[str]) -> str:
    def cell(values: list[float | None]) -> str:
        values = [v for v in values if v is not None]
        if not values:
            return "n/a"
        per_seed = " / ".join(f"{100 * v:.1f}" for v in values)
        return f"**{100 * np.mean(values):.1f}** ({per_seed})"

    lines = ["| variant | mAP % | Rank-1 % | seg mIoU % | s per run |",
             "|---|---|---|---|---|"]
    for variant in variants:
        mine = [r for r in rows if r["variant"] == variant]
        if not mine:
            continue
        secs = np.mean([r["train_eval_s"] for r in mine])
        lines.append(f"| {variant} | {cell([r['mAP'] for r in mine])} | "
                     f"{cell([r['rank1'] for r in mine])} | {cell([r['miou'] for r in mine])} "
                     f"| {secs:.0f} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--data-root", type=Path, default=REPO / "reid-data")
    parser.add_argument("--variants", nargs="+", default=list(DEFAULT_VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--height", type=int, default=64)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--train-ids", type=int, default=30)
    parser.add_argument("--test-ids", type=int, default=30)
    parser.add_argument("--images-per-camera", type=int, default=2)
    parser.add_argument("--cameras", type=int, default=4)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--render-only", action="store_true",
                        help="only tabulate the runs already in OUT (runs nothing)")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for seed in args.seeds:  # seed-major: an interrupted run still has every variant once
        for variant in args.variants:
            path = args.out / f"{variant.replace(':', '_')}_s{seed}.json"
            if (args.resume or args.render_only) and path.is_file():
                rows.append(json.loads(path.read_text()))
                continue
            if args.render_only:
                continue
            row = run_one(variant, seed, args)
            path.write_text(json.dumps(row, indent=2) + "\n")
            rows.append(row)
            print(f"== {variant} seed {seed}: {row}", flush=True)
    text = table(rows, args.variants)
    (args.out / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
