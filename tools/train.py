"""Train (and evaluate) a model from a yaml config: torchreid's scripts/main.py for reid_ext.

    python tools/train.py --config-file configs/quickstart.yaml [KEY VALUE ...]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import reid_ext  # noqa: F401  (registers models, datasets, samplers, losses)
from reid_ext.checkpoint import WeightsMismatchError
from reid_ext.collapse import CollapseError
from reid_ext.config import ConfigError, load_config
from reid_ext.distributed import init_distributed, is_main
from reid_ext.divergence import DivergenceError
from reid_ext.images import UnreadableImageError
from reid_ext.logfile import tee_stdout
from reid_ext.preflight import PreflightError, check_data_ready
from reid_ext.runner import run

RUN_ERRORS = (DivergenceError, UnreadableImageError, WeightsMismatchError)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", default="", help="yaml config")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides")
    args = parser.parse_args(argv)
    try:
        cfg = load_config(args.config_file or None, args.opts)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if not args.config_file:
        print("error: a config file is needed, e.g. python tools/train.py --config-file "
              "configs/quickstart.yaml [KEY VALUE ...] (the built-in defaults name "
              "market1501, which is not downloaded automatically)", file=sys.stderr)
        return 2
    log_name = "test.log" if cfg.test.evaluate else "train.log"
    log_name += time.strftime("-%Y-%m-%d-%H-%M-%S")
    try:
        check_data_ready(cfg, args.config_file or None)
    except PreflightError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    init_distributed()  # under torchrun: only rank 0 prints and writes the log
    log = (tee_stdout(Path(cfg.data.save_dir) / log_name) if is_main()
           else contextlib.redirect_stdout(open(os.devnull, "w")))  # noqa: SIM115
    with log:
        print(f"Show configuration\n{cfg}\n")
        try:
            run(cfg)
        except CollapseError as err:  # train.stop_on_collapse: no checkpoint of this model
            saved = sorted(Path(cfg.data.save_dir).glob("*/model.pth.tar-*"),
                           key=lambda p: p.stat().st_mtime)
            last = f"last good checkpoint: {saved[-1]}" if saved else "no checkpoint was saved"
            print(f"stopped: {err}\n{last}", file=sys.stderr)
            return 3
        except RUN_ERRORS as err:
            print(f"error: {err}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
