"""MGRAN against the same backbone without maps, same loss terms, same seeds, from scratch.

    PYTHONPATH=. python benchmarks/mgran_accuracy.py [--seeds 1 2] [--epochs 6] [--col780]

synthetic_person (ground-truth masks and keypoints): mgran_r18 fast/paper x region/part
alignment against torchreid's stock ``resnet18`` and reid_ext's ``resnet18_bnneck``, all trained
with configs/mgran_synthetic.yaml's loss terms (label-smoothed CE, batch-hard triplet) and
schedule. ``--col780`` adds mgran_r18 (fast, region) against resnet18_bnneck on COL780 with
configs/mgran_col780.yaml (MediaPipe caches; skipped, saying so, when they are absent).
Prints markdown tables (mean ± sample std over seeds, and each seed).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from yacs.config import CfgNode

import reid_ext  # noqa: F401
from reid_ext.config import load_config
from reid_ext.preflight import PreflightError, check_data_ready
from reid_ext.runner import run

SYNTHETIC = "configs/mgran_synthetic.yaml"
COL780 = "configs/mgran_col780.yaml"
# name -> (model.name, model.kwargs); the baselines take no maps.
SYNTHETIC_RUNS: dict[str, tuple[str, dict[str, Any]]] = {
    "mgran_r18 fast, region (RL)": ("mgran_r18", {"mode": "fast", "alignment": "region"}),
    "mgran_r18 fast, part (PL)": ("mgran_r18", {"mode": "fast", "alignment": "part"}),
    "mgran_r18 paper, region (RL)": ("mgran_r18", {"mode": "paper", "alignment": "region"}),
    "mgran_r18 paper, part (PL)": ("mgran_r18", {"mode": "paper", "alignment": "part"}),
    "resnet18_bnneck (no maps)": ("resnet18_bnneck", {}),
    "torchreid resnet18 (no maps)": ("resnet18", {}),
}
COL780_RUNS = {k: SYNTHETIC_RUNS[k] for k in ("mgran_r18 fast, region (RL)",
                                              "resnet18_bnneck (no maps)")}


def configure(path: str, model: str, kwargs: dict[str, Any], seed: int, epochs: int,
              opts: list[str]) -> CfgNode:
    cfg = load_config(path, ["train.seed", str(seed), "train.max_epoch", str(epochs),
                             "data.save_dir", tempfile.mkdtemp(prefix="mgran_acc_"), *opts])
    cfg.defrost()
    cfg.model.name = model
    last_stride = cfg.model.kwargs.get("last_stride", 1)
    cfg.model.kwargs = CfgNode(dict(kwargs))
    if model != "resnet18":  # torchreid's stock resnet18 keeps its own last stride (2)
        cfg.model.kwargs.last_stride = last_stride
    if not model.startswith("mgran"):  # no maps for the baselines
        cfg.aux.mask = cfg.aux.keypoints = ""
    cfg.freeze()
    return cfg


def train_once(cfg: CfgNode) -> dict[str, float]:
    start = time.perf_counter()
    engine = run(cfg)
    result = engine.last_results[cfg.data.targets[0]]
    row = {"R1": result["rank1"], "mAP": result["mAP"], "mINP": result["mINP"],
           "seconds": time.perf_counter() - start}
    print(f"### {cfg.model.name} {dict(cfg.model.kwargs)} seed {cfg.train.seed}: {row}",
          flush=True)
    return row


def table(title: str, rows: dict[str, list[dict[str, float]]], seeds: list[int]) -> str:
    lines = [f"| {title} | R1 | mAP | mINP | train+eval s |", "|---|---|---|---|---|"]
    for name, runs in rows.items():
        cells = []
        for key in ("R1", "mAP", "mINP", "seconds"):
            values = [r[key] for r in runs]
            spread = statistics.stdev(values) if len(values) > 1 else 0.0
            fmt = "{:.0f} ± {:.0f}" if key == "seconds" else "{:.3f} ± {:.3f}"
            cells.append(fmt.format(statistics.mean(values), spread))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
        for seed, r in zip(seeds, runs):
            lines.append(f"|   seed {seed} | {r['R1']:.3f} | {r['mAP']:.3f} | {r['mINP']:.3f} | "
                         f"{r['seconds']:.0f} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--root", default="reid-data", help="synthetic_person's data root")
    parser.add_argument("--size", type=int, nargs=2, default=[128, 64], metavar=("H", "W"),
                        help="input size of the synthetic runs (the config's: 128 64)")
    parser.add_argument("--synthetic-option", nargs=2, action="append", default=[],
                        metavar=("KEY", "VALUE"),
                        help="data.options.synthetic_person.KEY VALUE (e.g. num_train_ids 32)")
    parser.add_argument("--only", nargs="+", help="run only these rows (names as printed)")
    parser.add_argument("--col780", action="store_true", help="also the COL780 comparison")
    parser.add_argument("--col780-rows", nargs="+", default=list(COL780_RUNS),
                        help="rows of the COL780 comparison (names as printed)")
    parser.add_argument("--no-synthetic", action="store_true",
                        help="skip the synthetic_person table (with --col780)")
    parser.add_argument("--col780-epochs", type=int, default=10)
    parser.add_argument("--col780-size", type=int, nargs=2, default=[128, 64], metavar=("H", "W"),
                        help="input size of the COL780 runs (the config's: 128 64)")
    parser.add_argument("--out", help="also write the tables to this markdown file")
    args = parser.parse_args()
    unknown = sorted(set(args.col780_rows) - set(SYNTHETIC_RUNS))
    if unknown:
        parser.error(f"unknown --col780-rows {unknown}; known: {list(SYNTHETIC_RUNS)}")

    synth_opts = ["data.root", args.root, "data.height", str(args.size[0]),
                  "data.width", str(args.size[1])]
    for key, value in args.synthetic_option:
        synth_opts += [f"data.options.synthetic_person.{key}", value]
    wanted = set() if args.no_synthetic else set(args.only or SYNTHETIC_RUNS)
    rows: dict[str, list[dict[str, float]]] = {k: [] for k in SYNTHETIC_RUNS if k in wanted}
    for seed in args.seeds:
        for name in rows:
            model, kwargs = SYNTHETIC_RUNS[name]
            rows[name].append(train_once(configure(SYNTHETIC, model, kwargs, seed, args.epochs,
                                                   synth_opts)))
    options = " ".join(f"{k}={v}" for k, v in args.synthetic_option) or "default size"
    out: list[str] = []

    def emit(text: str) -> None:  # print and save each table as soon as it exists
        out.append(text)
        print("\n" + text, flush=True)
        if args.out:
            Path(args.out).write_text("\n\n".join(out) + "\n")

    if rows:
        emit(table(f"synthetic_person ({options}), {args.size[0]}x{args.size[1]}, "
                   f"{args.epochs} epochs, seeds {args.seeds}", rows, args.seeds))
    if args.col780:
        try:
            check_data_ready(load_config(COL780), config_file=COL780)
        except PreflightError as err:
            emit(f"COL780 skipped: {err}")
        else:
            col = {k: [] for k in args.col780_rows}
            col_opts = ["data.height", str(args.col780_size[0]),
                        "data.width", str(args.col780_size[1]),
                        "train.stepsize", f"[{max(1, int(0.75 * args.col780_epochs))}]"]
            for seed in args.seeds:
                for name in col:
                    model, kwargs = SYNTHETIC_RUNS[name]
                    col[name].append(train_once(configure(COL780, model, kwargs, seed,
                                                          args.col780_epochs, col_opts)))
            emit(table(f"COL780 (MediaPipe maps), {args.col780_size[0]}x{args.col780_size[1]}, "
                       f"{args.col780_epochs} epochs, "
                       f"seeds {args.seeds}", col, args.seeds))


if __name__ == "__main__":
    main()
