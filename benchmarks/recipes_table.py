"""CE alone vs the shipped metric recipes, from scratch, equal budget, several seeds.

For each data set (``col780``: train on ``col780``, test on ``col780_clean``; ``hard``: the
``synthetic_person_hard`` preset), each model and each recipe, trains ``--epochs`` epochs per
seed through reid_ext's engine (configs/strong_baseline_synthetic.yaml with the overrides
below), scores mAP / R1 on the test split, and records whether the collapse detector fired.
Prints a markdown table (mean ± std over seeds, and each seed) and rewrites the block between
``<!-- recipes-table:begin -->`` and ``<!-- recipes-table:end -->`` in docs/benchmarks.md.

    flock /tmp/cpu.lock env OMP_NUM_THREADS=2 PYTHONPATH=. python benchmarks/recipes_table.py \
        --sets col780 hard --epochs 8 --seeds 1 2 3
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import reid_ext  # noqa: E402,F401
from reid_ext.config import load_config  # noqa: E402
from reid_ext.runner import build_engine  # noqa: E402

DOC = REPO / "docs" / "benchmarks.md"
BEGIN, END = "<!-- recipes-table:begin -->", "<!-- recipes-table:end -->"
CONFIG = REPO / "configs" / "strong_baseline_synthetic.yaml"

SETS: dict[str, tuple[str, ...]] = {
    "col780": ("data.root", str(REPO.parent / "shared" / "data"), "data.sources", "['col780']",
               "data.targets", "['col780_clean']", "data.transforms", "['random_flip']"),
    "hard": ("data.sources", "['synthetic_person_hard']",
             "data.targets", "['synthetic_person_hard']", "data.transforms", "['random_flip']"),
}
CE = "{'name': 'softmax', 'weight': 1.0, 'kwargs': {'eps': 0.1}}"
RECIPES: dict[str, str] = {
    "CE alone": f"[{CE}]",
    # the shipped metric recipe (configs/strong_baseline_synthetic.yaml, docs/recipes.md)
    "CE + triplet, warm-up 1 ep": (
        f"[{CE}, {{'name': 'triplet_hard', 'weight': 1.0, "
        "'kwargs': {'margin': 0.3, 'warmup_epochs': 1}}]"),
    "strong baseline (CE + triplet + center)": (
        f"[{CE}, {{'name': 'triplet_hard', 'weight': 1.0, 'kwargs': {{'margin': 0.3}}}}, "
        "{'name': 'center', 'weight': 0.0005, 'kwargs': {'lr': 0.5}}]"),
}
MODELS: dict[str, tuple[str, ...]] = {
    "osnet_x0_25": ("model.name", "osnet_x0_25"),
    "resnet18": ("model.name", "resnet18"),
    "resnet18_bnneck": ("model.name", "resnet18_bnneck"),
    "bnneck(osnet_x0_25)": ("model.name", "bnneck", "model.kwargs.backbone", "osnet_x0_25"),
    "bnneck(resnet18)": ("model.name", "bnneck", "model.kwargs.backbone", "resnet18"),
}


def train_once(data: str, model: str, recipe: str, seed: int, epochs: int, size: tuple[int, int],
               workdir: str) -> dict[str, Any]:
    opts = [*SETS[data], *MODELS[model], "loss.terms", RECIPES[recipe],
            "train.seed", str(seed), "train.max_epoch", str(epochs),
            "train.stepsize", f"[{max(1, int(0.75 * epochs))}]",
            "data.height", str(size[0]), "data.width", str(size[1]),
            "data.workers", "0", "train.print_freq", "100000", "data.save_dir", workdir]
    if data != "col780":  # generate the synthetic set at the training size (cheaper)
        opts += ["data.root", str(Path(tempfile.gettempdir()) / "reid_ext_recipes_data"),
                 "data.options.synthetic_person_hard.height", str(size[0]),
                 "data.options.synthetic_person_hard.width", str(size[1])]
    cfg = load_config(CONFIG, opts)
    engine = build_engine(cfg)
    engine.max_epoch = epochs
    start = time.perf_counter()
    for engine.epoch in range(epochs):
        engine.train(print_freq=cfg.train.print_freq)
    train_s = time.perf_counter() - start
    engine.test(ranks=[1, 5])
    result = engine.last_results[cfg.data.targets[0]]
    last = engine.collapse.last if engine.collapse is not None else {}
    return {"mAP": result["mAP"], "R1": result["rank1"], "train_s": train_s,
            "collapsed": bool(engine.collapse and engine.collapse.fired),
            "final": {k: round(float(v), 4) for k, v in (last or {}).items()}}


def cell(values: list[float]) -> str:
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {spread:.3f}"


def table(results: dict[tuple[str, str, str], list[dict[str, Any]]], seeds: list[int]) -> str:
    lines = ["| set | model | recipe | mAP | R1 | per seed mAP | collapsed runs | train s/run |",
             "|---|---|---|---|---|---|---|---|"]
    for (data, model, recipe), runs in results.items():
        per_seed = " / ".join(f"{r['mAP']:.3f}" for r in runs)
        lines.append(
            f"| {data} | {model} | {recipe} | {cell([r['mAP'] for r in runs])} | "
            f"{cell([r['R1'] for r in runs])} | {per_seed} | "
            f"{sum(r['collapsed'] for r in runs)}/{len(runs)} | "
            f"{statistics.mean(r['train_s'] for r in runs):.0f} |")
    return "\n".join(lines)


def write_doc(block: str) -> None:
    text = DOC.read_text()
    if BEGIN not in text or END not in text:
        raise ValueError(f"{DOC} lacks the markers {BEGIN} / {END}")
    pattern = re.compile(re.escape(BEGIN) + ".*?" + re.escape(END), re.S)
    DOC.write_text(pattern.sub(lambda _m: f"{BEGIN}\n{block}\n{END}", text))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sets", nargs="+", default=list(SETS), choices=list(SETS))
    parser.add_argument("--models", nargs="+", default=list(MODELS)[:3], choices=list(MODELS))
    parser.add_argument("--recipes", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    parser.add_argument("--epochs", type=int, nargs="+", default=[8],
                        help="epochs per set (one value, or one per --sets entry)")
    parser.add_argument("--rows", nargs="+", default=[],
                        help="explicit 'model=recipe' pairs instead of models x recipes")
    parser.add_argument("--size", type=int, nargs=2, default=[128, 64], metavar=("H", "W"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", default="", help="also write every run here")
    parser.add_argument("--resume", action="store_true",
                        help="keep the runs already in --json and run only the missing ones")
    parser.add_argument("--no-doc", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    if args.resume:
        if not args.json:
            parser.error("--resume needs --json (the file holding the earlier runs)")
        if Path(args.json).exists():
            stored = json.loads(Path(args.json).read_text())
            results = {tuple(k.split(" | ")): v for k, v in stored.items()}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="recipes_table_") as tmp:
        epochs = dict(zip(args.sets, args.epochs * len(args.sets)
                          if len(args.epochs) == 1 else args.epochs))
        pairs = [tuple(r.split("=", 1)) for r in args.rows] or \
            [(m, r) for m in args.models for r in args.recipes]
        for model, recipe in pairs:
            if model not in MODELS or recipe not in RECIPES:
                parser.error(f"unknown row {model}={recipe}; models {list(MODELS)}, recipes "
                             f"{list(RECIPES)}")
        # seeds outermost: a run cut short still has every row at the first seeds
        for seed in args.seeds:
            for data in args.sets:
                for model, recipe in pairs:
                    done = [r for r in results.get((data, model, recipe), [])
                            if r.get("seed") == seed]
                    if done:
                        continue
                    run = train_once(data, model, recipe, seed, epochs[data],
                                     tuple(args.size), str(Path(tmp) / "log"))
                    run["seed"] = seed
                    results.setdefault((data, model, recipe), []).append(run)
                    print(f"[{data} {model} {recipe} seed {seed}] mAP {run['mAP']:.3f} "
                          f"R1 {run['R1']:.3f} collapsed {run['collapsed']} "
                          f"{run['train_s']:.0f}s {json.dumps(run['final'])}", flush=True)
                    if args.json:
                        Path(args.json).write_text(json.dumps(
                            {" | ".join(k): v for k, v in results.items()}, indent=1))
    block = table(results, args.seeds)
    command = "python benchmarks/recipes_table.py " + " ".join(
        f"'{a}'" if " " in a else a for a in (argv if argv is not None else sys.argv[1:]))
    block += (f"\n\n`{command}`: epochs per run {epochs}, at {args.size[0]}x{args.size[1]}, "
              f"{args.threads} CPU threads, whole run {(time.perf_counter() - start) / 60:.0f} "
              f"min wall on a shared machine.")
    print(block)
    if not args.no_doc:
        write_doc(block)
    return 0


if __name__ == "__main__":
    sys.exit(main())
