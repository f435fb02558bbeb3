"""Evaluate a trained checkpoint with a yaml config, printing R1/R5/mAP/mINP.

    python tools/test.py --config-file configs/quickstart.yaml \
        --weights log/quickstart/model/model.pth.tar-12
"""
from __future__ import annotations

import argparse
import sys

import reid_ext  # noqa: F401  (registers models, datasets, samplers, losses)
from reid_ext.checkpoint import WeightsMismatchError, load_matching_weights
from reid_ext.config import ConfigError, load_config
from reid_ext.images import UnreadableImageError
from reid_ext.runner import build_engine, engine_run_kwargs


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", help="yaml config used for training")
    parser.add_argument("--weights", required=True, help="checkpoint to evaluate")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config_file or None,
                          [*args.opts, "test.evaluate", "True", "model.pretrained", "False"])
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    try:
        engine = build_engine(cfg)
        load_matching_weights(engine.model, args.weights, model_name=cfg.model.name)
        engine.run(**engine_run_kwargs(cfg))
    except (WeightsMismatchError, FileNotFoundError, UnreadableImageError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
