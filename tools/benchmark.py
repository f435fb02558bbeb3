"""Benchmark models on one dataset under one budget: a table (csv + markdown) and a plot.

    python tools/benchmark.py --dataset synthetic_person \
        --models resnet50,osnet_x0_25,resnet50_bnneck,bignet@128x48 --epochs 10 \
        --out log/benchmark [--resume] [KEY VALUE ...]

Each model is trained (or, with --weights-dir, loaded) with the same data, seed, budget and
loss terms (default softmax + triplet), evaluated with the same protocol and timed, each in its
own child process. Writes OUT/results.csv, OUT/results.md, OUT/environment.json,
OUT/accuracy_vs_speed.png and OUT/<model>/{result.json,log.txt,config.yaml}. A model may carry
its own input size as NAME@HxW; models with a fixed input size (BigNet) use theirs. KEY VALUE
overrides (after the options) apply to every model, e.g. data.height 128 data.width 64.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from reid_ext.benchmarking.specs import parse_model_list
from reid_ext.benchmarking.suite import BenchmarkOptions, command_line, run_benchmark
from reid_ext.config import ConfigError
from reid_ext.registry import UnknownNameError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", required=True, help="dataset name (source and target)")
    parser.add_argument("--models", required=True,
                        help="comma-separated model names, each optionally NAME@HxW")
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs for every model (default: config, else 10)")
    parser.add_argument("--config-file", default="", help="base yaml config for every model")
    parser.add_argument("--out", default="log/benchmark", help="output folder")
    parser.add_argument("--resume", action="store_true",
                        help="skip models whose OUT/<model>/result.json exists")
    parser.add_argument("--seed", type=int, default=None, help="train.seed for every model")
    parser.add_argument("--batch-size", type=int, default=None, help="train.batch_size")
    parser.add_argument("--pretrained", action="store_true",
                        help="start from ImageNet weights (needs them locally or internet)")
    parser.add_argument("--amp", action="store_true", help="mixed precision (train.amp)")
    parser.add_argument("--weights-dir", default="",
                        help="evaluate checkpoints from this folder (e.g. an earlier OUT) "
                             "instead of training")
    parser.add_argument("--timing-warmup", type=int, default=3, help="untimed forwards")
    parser.add_argument("--timing-repeats", type=int, default=10,
                        help="timed forwards per batch size (the median is reported)")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch CPU threads per model (0: torch's default)")
    parser.add_argument("--no-isolate", action="store_true",
                        help="run models in this process (debugging; memory peaks then mix)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE config overrides")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        options = BenchmarkOptions(
            dataset=args.dataset, models=parse_model_list(args.models), out_dir=Path(args.out),
            config_file=args.config_file or None, opts=list(args.opts), epochs=args.epochs,
            seed=args.seed, batch_size=args.batch_size, pretrained=args.pretrained,
            amp=args.amp, resume=args.resume,
            weights_dir=Path(args.weights_dir) if args.weights_dir else None,
            timing_warmup=args.timing_warmup, timing_repeats=args.timing_repeats,
            cpu_threads=args.threads, isolate=not args.no_isolate,
            command=command_line(["python", "tools/benchmark.py",
                                  *(sys.argv[1:] if argv is None else argv)]),
        )
        rows = run_benchmark(options)
    except (ConfigError, UnknownNameError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"results: {options.out_dir / 'results.md'}")
    return 1 if any(r["status"] == "failed" for r in rows) else 0


if __name__ == "__main__":
    sys.exit(main())
