"""Write synthetic_tiger in ATRW's plain Re-ID file layout (reid_ext.data.atrw).

usage: python tools/write_atrw.py OUT_DIR [--num-train-ids N] [--num-test-ids N]
       [--images-per-id-per-camera N] [--num-cameras N] [--height H] [--width W] [--seed S]

Then train or test with ``data.sources [atrw]`` and ``data.options.atrw.data_dir OUT_DIR/atrw``.
"""
from __future__ import annotations

import argparse
import sys

from reid_ext.data.atrw import write_synthetic_atrw
from reid_ext.data.synthetic import DEFAULT_OPTIONS


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir")
    for key, value in DEFAULT_OPTIONS["tiger"].items():
        parser.add_argument("--" + key.replace("_", "-"), type=int, default=value)
    args = vars(parser.parse_args(argv))
    out_dir = args.pop("out_dir")
    print(write_synthetic_atrw(out_dir, progress=True, **args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
