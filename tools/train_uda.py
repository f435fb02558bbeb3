"""Unsupervised domain adaptation by multi-step pseudo-label refinement.

    python tools/train_uda.py --config-file configs/uda_synthetic.yaml [KEY VALUE ...]

Trains on the labelled source (or loads ``uda.source_checkpoint``), then runs ``uda.steps`` steps
of extract -> camera-normalise -> sparse Jaccard distance -> DBSCAN -> fine-tune on the target's
pseudo-labels. Rerunning the same command after a kill resumes after the last finished step
(``<data.save_dir>/uda_state.pth``); per-step results go to stdout, ``<save_dir>/uda_log.json``
and TensorBoard (``<save_dir>/tb``).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import reid_ext  # noqa: F401  (registers models, datasets, samplers, losses)
from reid_ext.config import ConfigError, load_config
from reid_ext.logfile import tee_stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", help="yaml config")
    parser.add_argument("--stop-after", type=int, default=None,
                        help="end after this step (the run resumes from there when rerun)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config_file or None, args.opts)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    from reid_ext.uda.loop import run_uda  # loads scikit-learn

    save_dir = Path(cfg.data.save_dir)
    with tee_stdout(save_dir / time.strftime("train_uda.log-%Y-%m-%d-%H-%M-%S")):
        print(f"Show configuration\n{cfg}\n")
        history = run_uda(cfg, stop_after=args.stop_after)
    (save_dir / "uda_log.json").write_text(json.dumps(history, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
