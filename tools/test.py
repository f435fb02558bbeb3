"""Evaluate a trained checkpoint with a yaml config, printing R1/R5/mAP/mINP.

    python tools/test.py --config-file configs/quickstart.yaml \
        --weights log/quickstart/model/model.pth.tar-12

A UDA step checkpoint (tools/train_uda.py: ``step<k>/model.pth``) also holds the target's
per-camera feature statistics; ``--camera-norm`` ranks with features normalised by them.
"""
from __future__ import annotations

import argparse
import sys

import reid_ext  # noqa: F401  (registers models, datasets, samplers, losses)
from reid_ext.checkpoint import WeightsMismatchError, load_checkpoint, load_matching_weights
from reid_ext.config import ConfigError, load_config
from reid_ext.images import UnreadableImageError
from reid_ext.runner import build_engine, engine_run_kwargs
from reid_ext.uda.camera_norm import CameraStats


def camera_stats_of(weights: str) -> CameraStats:
    """The ``camera_stats`` a UDA step checkpoint carries; ValueError naming the file if none."""
    checkpoint = load_checkpoint(weights)
    if "camera_stats" not in checkpoint:
        raise ValueError(f"'{weights}' holds no camera_stats (only tools/train_uda.py's step "
                       f"checkpoints, step<k>/model.pth, carry them); drop --camera-norm")
    return CameraStats.from_state_dict(checkpoint["camera_stats"])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", help="yaml config used for training")
    parser.add_argument("--weights", required=True, help="checkpoint to evaluate")
    parser.add_argument("--camera-norm", action="store_true",
                        help="normalise features per camera with the checkpoint's camera_stats "
                             "(UDA step checkpoints)")
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
        if args.camera_norm:
            engine.camera_stats = camera_stats_of(args.weights)
        engine.run(**engine_run_kwargs(cfg))
    except (WeightsMismatchError, FileNotFoundError, UnreadableImageError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
