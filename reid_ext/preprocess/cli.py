"""Command line of ``tools/extract_masks.py`` and ``tools/extract_keypoints.py``.

    python tools/extract_masks.py --source grabcut --config-file configs/x.yaml --out DIR
    python tools/extract_keypoints.py --source torchvision --dataset col780 --root ../shared/data \\
        --weights KeypointRCNN_ResNet50_FPN_Weights.DEFAULT --out DIR

Every split of the dataset(s) is processed. A config whose datasets live in several folders
writes one cache per folder, ``DIR/<dataset name>``. Exit status: 0 done, 1 done but some
images were unreadable, 2 bad arguments or no usable weights (nothing was done),
130 interrupted (re-run the same command to resume).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from reid_ext.preprocess.base import BackendMissingError, SourceError
from reid_ext.registry import KEYPOINT_SOURCES, MASK_SOURCES, UnknownNameError

REGISTRY = {"mask": MASK_SOURCES, "keypoints": KEYPOINT_SOURCES}


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got '{text}'")
    return key, yaml.safe_load(value)


def build_parser(kind: str) -> argparse.ArgumentParser:
    what = "person masks" if kind == "mask" else "keypoints"
    parser = argparse.ArgumentParser(
        description=f"Extract {what} for every image of a dataset into an aux-map cache.",
        epilog=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", default="torchvision",
                        help=f"registered {kind} source (default: torchvision)")
    data = parser.add_argument_group("dataset (a config, or a name and a root)")
    data.add_argument("--config-file", help="training config: its data.sources and targets")
    data.add_argument("--dataset", help="dataset name (e.g. col780, synthetic_person)")
    data.add_argument("--root", help="data root the dataset lives under (with --dataset)")
    data.add_argument("--dataset-option", action="append", type=_key_value, default=[],
                      metavar="KEY=VALUE", help="dataset option (with --dataset), repeatable")
    parser.add_argument("--out", required=True, help="cache directory to fill")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--weights", help="weights file, or a library weights name")
    parser.add_argument("--random-weights", action="store_true",
                        help="random initialisation (tests only; the manifest records it)")
    parser.add_argument("--model", help="model name, for sources that offer several")
    parser.add_argument("--device", help="torch device (sources that use torch)")
    if kind == "mask":
        parser.add_argument("--threshold", type=float,
                            help="binarisation threshold of the soft mask (source default 0.5)")
    parser.add_argument("--source-option", action="append", type=_key_value, default=[],
                        metavar="KEY=VALUE", help="any other source argument, repeatable")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def source_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    kwargs: dict[str, Any] = dict(args.source_option)
    for name in ("weights", "model", "device", "threshold"):
        value = getattr(args, name, None)
        if value is not None:
            kwargs[name] = value
    if args.random_weights:
        kwargs["random_weights"] = True
    return kwargs


def main(kind: str, argv: list[str] | None = None) -> int:
    import reid_ext  # noqa: F401  (datasets)
    from reid_ext.preprocess import keypoints, masks  # noqa: F401  (sources)
    from reid_ext.preprocess.datasets import config_dataset_images, load_dataset_images
    from reid_ext.preprocess.extract import ExtractError, extract

    args = build_parser(kind).parse_args(argv)
    if bool(args.config_file) == bool(args.dataset):
        print("error: pass either --config-file or --dataset (with --root)", file=sys.stderr)
        return 2
    try:
        if args.config_file:
            groups = config_dataset_images(args.config_file)
        else:
            groups = [load_dataset_images(args.dataset, args.root or ".",
                                          dict(args.dataset_option))]
        kwargs = source_kwargs(args)
        builder = REGISTRY[kind].get(args.source)
        sources = []
        for group in groups:
            group_kwargs = dict(kwargs)
            if args.source == "annotations" and "cache_dir" not in group_kwargs:
                if kind not in group.aux_dirs:
                    raise SourceError(f"dataset {group.name} carries no {kind} annotations; pass "
                                      f"--source-option cache_dir=DIR")
                group_kwargs["cache_dir"] = group.aux_dirs[kind]
            sources.append(builder(**group_kwargs))  # weights are checked here, before any work
    except (SourceError, BackendMissingError, UnknownNameError, FileNotFoundError, KeyError,
            ValueError, TypeError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    status = 0
    for group, source in zip(groups, sources):
        out = Path(args.out) if len(groups) == 1 else Path(args.out) / group.names[0]
        if source.random_weights:
            print(f"warning: {source.name} runs with RANDOM weights; the cache is for tests only",
                  file=sys.stderr)
        try:
            summary = extract(source, group.root, group.impaths, out,
                              batch_size=args.batch_size, config=args.config_file or "",
                              dataset=group.name, progress=not args.no_progress)
        except ExtractError as err:
            print(f"error: {err}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print(f"\ninterrupted: {out} holds what was written so far; run the same command "
                  f"again to resume", file=sys.stderr)
            return 130
        print(summary.format())
        status = max(status, 1 if summary.failed else 0)
    return status
